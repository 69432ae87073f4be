//! `lepton replay`: a timed replay in virtual time, tasks arriving and
//! leaving, nodes failing and recovering.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use lepton::policies::build;
use lepton::sim::{
    default_horizon_s, read_workload, run_timed, TimedConfig, TimedResult, TimedTask,
};
use lepton::{NodeId, NodeSpec, TaskId, TaskSpec};

use super::plot::{draw_panels, Axes, Curve};
use super::say;
use super::{check_parent_dir, check_plot_path, decimal, whole, wrote};
use super::{CliError, Format, OutputArgs, PolicyFiles, TraceArgs};

/// A timed replay: tasks arrive and leave, nodes fail and recover.
///
/// Tasks go through one policy at their arrival times, in virtual time:
/// each waits until it fits, runs its duration and leaves.
///
/// The workload is the Alibaba trace's pod list (its creation and deletion
/// times) or your own JSON workload (--workload FILE; the format is in
/// docs/WORKLOAD.md).
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// A JSON workload, nodes and timed tasks (docs/WORKLOAD.md); replaces
    /// --node-list and --pod-list.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["node_list", "pod_list"])]
    workload: Option<PathBuf>,
    #[command(flatten)]
    trace: TraceArgs,
    /// The policy (a name `lepton policies` lists).
    #[arg(long, default_value = "fgd")]
    policy: String,
    #[command(flatten)]
    policy_files: PolicyFiles,
    /// Seeds the node failures and random policies.
    #[arg(long, alias = "seeds", value_parser = whole::<0, { u64::MAX }>, default_value_t = 42)]
    seed: u64,
    /// Divides arrival times (a decimal above 0, e.g. 2.5), durations
    /// unchanged: the same tasks arrive this many times faster, multiplying
    /// the load (the trace's own pace barely uses 1% of its GPUs).
    #[arg(long, value_parser = decimal, default_value_t = 1.0)]
    arrival_scale: f64,
    /// Node failures per node per hour of virtual time, a decimal from 0
    /// to 60 (0: none). A failed node's tasks start again elsewhere.
    #[arg(long, value_parser = decimal, default_value_t = 0.0)]
    node_failure_rate: f64,
    /// Seconds a failed node stays down.
    #[arg(long, value_parser = whole::<0, 31_536_000>, default_value_t = 600)]
    recovery_s: u64,
    /// Seconds between samples of the cluster (at most 2,000,000 samples).
    #[arg(long, value_parser = whole::<1, { u64::MAX }>, default_value_t = 600)]
    sample_every_s: u64,
    /// Stop at this virtual time, in seconds. Default: when nothing is
    /// left to happen, at the latest at twice what a perfect packing of
    /// the workload would take (printed), so that long tasks restarted by
    /// node failures cannot keep a run going for ever.
    #[arg(long, value_parser = whole::<1, { lepton::sim::MAX_TIME_S }>)]
    horizon_s: Option<u64>,
    #[command(flatten)]
    output: OutputArgs,
    /// Also write utilization, waiting tasks and waits over time to this
    /// SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Also write one CSV row per task to this file: its name, arrival,
    /// node, start, end, wait (seconds), placements and final state.
    #[arg(long, value_name = "FILE.csv")]
    placements: Option<PathBuf>,
}

pub(crate) fn run(args: ReplayArgs) -> Result<(), CliError> {
    if !(args.arrival_scale.is_finite() && args.arrival_scale > 0.0) {
        return Err(CliError::Usage(format!(
            "--arrival-scale {} is out of range: a decimal above 0",
            args.arrival_scale
        )));
    }
    let config = TimedConfig {
        seed: args.seed,
        node_failure_rate_per_hour: args.node_failure_rate,
        node_recovery_s: args.recovery_s,
        sample_every_s: args.sample_every_s,
        horizon_s: args.horizon_s,
        ..TimedConfig::default()
    };
    config.validate()?;
    if let Some(path) = &args.plot {
        check_plot_path(path)?;
    }
    if let Some(path) = &args.placements {
        check_parent_dir(path, "--placements")?;
    }
    let trace = match &args.workload {
        Some(workload) => vec![("--workload", workload.clone())],
        None => {
            let (node_list, pod_list) = args.trace.paths()?;
            vec![("--node-list", node_list), ("--pod-list", pod_list)]
        }
    };
    let mut inputs = args.policy_files.inputs();
    inputs.extend(trace.iter().map(|(flag, path)| (*flag, path.as_path())));
    let outputs: Vec<(&str, &std::path::Path)> =
        [("--plot", &args.plot), ("--placements", &args.placements)]
            .into_iter()
            .filter_map(|(flag, path)| path.as_deref().map(|p| (flag, p)))
            .collect();
    super::check_outputs(&outputs, &inputs)?;
    let started = Instant::now();
    let (nodes, tasks) = load(&args)?;
    let tasks: Vec<TimedTask> = tasks
        .into_iter()
        .map(|task| {
            let arrival_s = (task.arrival_s as f64 / args.arrival_scale).round() as u64;
            TimedTask::new(task.spec, arrival_s, task.duration_s)
        })
        .collect();
    let specs: Vec<TaskSpec> = tasks.iter().map(|t| t.spec.clone()).collect();
    let context = args.policy_files.context(&[&args.policy], Some(&specs))?;
    let workload = context.target_workload.clone().unwrap_or_default();
    let policy = build(&args.policy, &context)?;
    let tasks_path = trace
        .last()
        .map_or(Path::new(""), |(_, path)| path.as_path());
    super::check_filter(
        &*policy,
        &nodes,
        &specs.iter().collect::<Vec<_>>(),
        tasks_path,
    )?;
    let load_s = started.elapsed().as_secs_f64();
    let horizon_s = args
        .horizon_s
        .unwrap_or_else(|| default_horizon_s(&nodes, &tasks));
    let spinner = super::spinner(format!(
        "replaying {} tasks on {} nodes, up to {} s of virtual time",
        tasks.len(),
        nodes.len(),
        super::thousands(horizon_s)
    ));
    let result = run_timed(&nodes, &tasks, &workload, policy, &config)?;
    spinner.finish_and_clear();
    if let Some(path) = &args.plot {
        write_plot(path, &result)?;
        wrote(path, "utilization, waiting tasks and waits over time");
    }
    if let Some(path) = &args.placements {
        write_placements(path, &result, &nodes, &specs)?;
        wrote(path, &format!("{} tasks, one row each", result.tasks.len()));
    }
    match args.output.output {
        Format::Json => {
            let mut json = serde_json::to_value(&result)
                .map_err(|e| CliError::Output(format!("cannot write JSON: {e}")))?;
            json["load_s"] = serde_json::json!(load_s);
            say!("{json}")?;
        }
        Format::Table => print_text(&result, nodes.len(), load_s)?,
    }
    Ok(())
}

fn print_text(result: &TimedResult, nodes: usize, load_s: f64) -> Result<(), CliError> {
    let peak =
        |f: fn(&lepton::sim::TimedSample) -> f64| result.samples.iter().map(f).fold(0.0, f64::max);
    say!(
        "policy {} seed {} on {nodes} nodes",
        result.policy,
        result.seed
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
        "wait: mean {:.1} s, p99 {:.1} s, max {:.1} s; most pending at once {}",
        result.mean_wait_s,
        result.p99_wait_s,
        result.max_wait_s,
        result.max_pending
    )?;
    say!(
        "peak use: GPU {:.1}%, CPU {:.1}%, memory {:.1}%",
        peak(|s| s.gpu_alloc_pct),
        peak(|s| s.cpu_pct),
        peak(|s| s.memory_pct)
    )?;
    let end = if result.stopped_at_horizon {
        format!(
            "stopped at the horizon, {} s of virtual time",
            super::thousands(result.horizon_s)
        )
    } else {
        format!(
            "ended by itself at {} s of virtual time (horizon {} s)",
            super::thousands(result.end_s as u64),
            super::thousands(result.horizon_s)
        )
    };
    say!(
        "node failures {}, evictions {}; {end}; wall {:.2} s loading + {:.2} s replaying",
        result.node_failures,
        result.evictions,
        load_s,
        result.wall.as_secs_f64()
    )?;
    Ok(())
}

fn load(args: &ReplayArgs) -> Result<(Vec<NodeSpec>, Vec<TimedTask>), CliError> {
    if let Some(path) = &args.workload {
        let workload = read_workload(path)?;
        let specs: Vec<&TaskSpec> = workload.tasks.iter().map(|t| &t.spec).collect();
        super::check_fit(&workload.nodes, &specs, path, path)?;
        return Ok((workload.nodes, workload.tasks));
    }
    let (_, pods_path) = args.trace.paths()?;
    let (nodes, pods) = args.trace.read()?;
    let tasks = TimedTask::from_trace_pods(&pods).ok_or_else(|| {
        CliError::Usage(format!(
            "{} has no creation times, so it cannot be replayed in time (use `lepton fill`)",
            pods_path.display()
        ))
    })?;
    Ok((nodes, tasks))
}

/// Utilization (%), waiting tasks, and the mean wait of the tasks placed in
/// each sample interval, over time in hours.
fn write_plot(path: &Path, result: &TimedResult) -> Result<(), CliError> {
    let hours = |s: u64| s as f64 / 3_600.0;
    let series = |f: fn(&lepton::sim::TimedSample) -> f64| -> Vec<(f64, f64)> {
        result
            .samples
            .iter()
            .map(|s| (hours(s.time_s), f(s)))
            .collect()
    };
    let use_curves: Vec<Curve> = vec![
        ("GPU %".into(), series(|s| s.gpu_alloc_pct)),
        ("CPU %".into(), series(|s| s.cpu_pct)),
        ("memory %".into(), series(|s| s.memory_pct)),
    ];
    let queue_curves: Vec<Curve> = vec![
        ("waiting tasks".into(), series(|s| s.pending as f64)),
        ("running tasks".into(), series(|s| s.running as f64)),
    ];
    // The mean wait of the tasks first placed in each sample interval.
    let every = result.samples.get(1).map_or(1, |s| s.time_s.max(1)) as f64;
    let mut sums = vec![(0.0, 0usize); result.samples.len().max(1)];
    for task in &result.tasks {
        if let (Some(start), Some(wait)) = (task.start_s, task.wait_s()) {
            let slot = ((start / every) as usize).min(sums.len() - 1);
            sums[slot].0 += wait;
            sums[slot].1 += 1;
        }
    }
    let waits: Vec<(f64, f64)> = sums
        .iter()
        .enumerate()
        .filter(|(_, (_, count))| *count > 0)
        .map(|(slot, (sum, count))| (hours((slot as f64 * every) as u64), sum / *count as f64))
        .collect();
    let wait_curves: Vec<Curve> = vec![("mean wait of tasks placed, s".into(), waits)];
    let end_h = hours(result.end_s as u64).max(1e-3);
    let title = format!(
        "Replay with {} (seed {}): use of the cluster",
        result.policy, result.seed
    );
    let use_axes = Axes {
        caption: &title,
        x_desc: "virtual time (hours)",
        y_desc: "% of the capacity of nodes up",
        x: 0.0..end_h,
        y: 0.0..100.0,
        whole_x: false,
    };
    let queue_axes = Axes {
        x: 0.0..end_h,
        ..Axes::fitting(
            "Tasks waiting and running",
            "virtual time (hours)",
            "tasks",
            &queue_curves,
        )
    };
    let wait_axes = Axes {
        x: 0.0..end_h,
        ..Axes::fitting(
            "Waits: first placement - arrival",
            "virtual time (hours)",
            "seconds",
            &wait_curves,
        )
    };
    draw_panels(
        path,
        &[
            (&use_axes, &use_curves),
            (&queue_axes, &queue_curves),
            (&wait_axes, &wait_curves),
        ],
    )
}

/// One CSV row per task, as the Kubernetes scheduler simulator reports per
/// pod.
fn write_placements(
    path: &Path,
    result: &TimedResult,
    nodes: &[NodeSpec],
    specs: &[TaskSpec],
) -> Result<(), CliError> {
    let node_names: HashMap<NodeId, String> = nodes
        .iter()
        .map(|n| {
            (
                n.id,
                csv_field(n.name.clone().unwrap_or_else(|| n.id.0.to_string())),
            )
        })
        .collect();
    let names: HashMap<TaskId, String> = specs
        .iter()
        .map(|s| {
            (
                s.id,
                csv_field(s.name.clone().unwrap_or_else(|| s.id.0.to_string())),
            )
        })
        .collect();
    let fail =
        |e: std::io::Error| CliError::Output(format!("cannot write {}: {e}", path.display()));
    let mut out: Vec<u8> = Vec::new();
    let seconds = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v}"));
    writeln!(
        out,
        "task,arrival_s,node,start_s,end_s,wait_s,placements,state"
    )
    .map_err(fail)?;
    for task in &result.tasks {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            names.get(&task.task).map_or("", String::as_str),
            task.arrival_s,
            task.node
                .and_then(|node| node_names.get(&node))
                .map_or("", String::as_str),
            seconds(task.start_s),
            seconds(task.end_s),
            seconds(task.wait_s()),
            task.placements,
            task.state
        )
        .map_err(fail)?;
    }
    super::write_atomically(path, &out)
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn csv_field(text: String) -> String {
    let text = super::printable(&text).into_owned();
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}
