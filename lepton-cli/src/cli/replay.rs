//! `lepton replay`: a timed replay in virtual time, tasks arriving and
//! leaving, nodes failing and recovering.

use std::path::PathBuf;

use clap::Args;
use lepton::policies::build;
use lepton::sim::{read_workload, run_timed, TimedConfig, TimedTask};
use lepton::NodeSpec;

use super::say;
use super::{CliError, Format, InputArgs};

/// Replays tasks at their arrival times through one policy.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// A JSON workload (nodes and timed tasks); replaces --nodes/--pods.
    #[arg(long, conflicts_with_all = ["nodes", "pods"])]
    workload: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
    /// The policy.
    #[arg(long, default_value = "fgd")]
    policy: String,
    /// Seeds the run (node failures, random policies).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Divides arrival times, durations unchanged: the same tasks arrive this
    /// many times faster, multiplying the load (the trace's own pace barely
    /// uses 1% of its cluster's GPUs).
    #[arg(long, default_value_t = 1)]
    arrival_scale: u64,
    /// Node failures per node per hour of virtual time (0: none).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    node_failure_rate: f64,
    /// Seconds a failed node stays down.
    #[arg(long, default_value_t = 600)]
    recovery_s: u64,
    /// Seconds between samples of the cluster.
    #[arg(long, default_value_t = 600)]
    sample_every_s: u64,
    /// Stop at this virtual time, in seconds.
    #[arg(long)]
    horizon_s: Option<u64>,
    /// Output format: `json` prints the whole result with its samples.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub(crate) fn run(args: ReplayArgs) -> Result<(), CliError> {
    let (nodes, tasks) = load(&args)?;
    if args.arrival_scale == 0 {
        return Err(CliError::Usage("--arrival-scale must be at least 1".into()));
    }
    let tasks: Vec<TimedTask> = tasks
        .into_iter()
        .map(|task| {
            TimedTask::new(
                task.spec,
                task.arrival_s / args.arrival_scale,
                task.duration_s,
            )
        })
        .collect();
    let specs: Vec<_> = tasks.iter().map(|t| t.spec.clone()).collect();
    let context = args.input.policy_context(&specs)?;
    let workload = context.target_workload.clone().unwrap_or_default();
    let config = TimedConfig {
        seed: args.seed,
        node_failure_rate_per_hour: args.node_failure_rate,
        node_recovery_s: args.recovery_s,
        sample_every_s: args.sample_every_s,
        horizon_s: args.horizon_s,
        ..TimedConfig::default()
    };
    let policy = build(&args.policy, &context)?;
    let result = run_timed(&nodes, &tasks, &workload, policy, &config)?;
    match args.format {
        Format::Json => {
            let json = serde_json::to_string(&result)
                .map_err(|e| CliError::Output(format!("cannot write JSON: {e}")))?;
            say!("{json}")?;
        }
        Format::Text => {
            let peak = |f: fn(&lepton::sim::TimedSample) -> f64| {
                result.samples.iter().map(f).fold(0.0, f64::max)
            };
            say!(
                "policy {} seed {} on {} nodes",
                result.policy,
                result.seed,
                nodes.len()
            )?;
            say!(
                "tasks: {} submitted, {} completed, {} failed, {} running and {} pending at the end; {} runs timed out",
                result.tasks_submitted,
                result.tasks_completed,
                result.tasks_failed,
                result.tasks_running_at_end,
                result.tasks_pending_at_end,
                result.timeouts
            )?;
            say!(
                "wait: mean {:.1} s, max {:.1} s; most pending at once {}",
                result.mean_wait_s,
                result.max_wait_s,
                result.max_pending
            )?;
            say!(
                "peak use: GPU {:.1}%, CPU {:.1}%, memory {:.1}%",
                peak(|s| s.gpu_alloc_pct),
                peak(|s| s.cpu_pct),
                peak(|s| s.memory_pct)
            )?;
            say!(
                "node failures {}, evictions {}; virtual end {:.0} s; wall {:.2} s",
                result.node_failures,
                result.evictions,
                result.end_s,
                result.wall.as_secs_f64()
            )?;
        }
    }
    Ok(())
}

fn load(args: &ReplayArgs) -> Result<(Vec<NodeSpec>, Vec<TimedTask>), CliError> {
    if let Some(path) = &args.workload {
        let workload = read_workload(path)?;
        return Ok((workload.nodes, workload.tasks));
    }
    let (_, pods_path) = args.input.paths()?;
    let (nodes, pods) = args.input.read_trace()?;
    let tasks = TimedTask::from_trace_pods(&pods).ok_or_else(|| {
        CliError::Usage(format!(
            "{} has no creation times, so it cannot be replayed in time (use `lepton fill`)",
            pods_path.display()
        ))
    })?;
    Ok((nodes, tasks))
}
