//! `lepton scale`: a synthetic cluster and queue of a given size, to see
//! what Lepton costs in memory and time at that size.

use std::time::Instant;

use clap::Args;
use lepton::policies::build;
use lepton::rng::SeededRng;
use lepton::sim::{synthetic_nodes, synthetic_task};
use lepton::{CoreScheduler, Scheduler};
use serde::Serialize;

use super::say;
use super::{whole, CliError, Format, OutputArgs, PolicyFiles};

/// A synthetic cluster and queue of a given size: time and memory.
///
/// Builds the cluster, queues the tasks, optionally schedules them in one
/// cycle, and reports the times and the peak resident memory.
#[derive(Debug, Args)]
pub(crate) struct ScaleArgs {
    /// Nodes in the cluster, 1 to 1,000,000 (100,000 take about 120 MiB).
    #[arg(long, value_parser = whole::<1, 1_000_000>, default_value_t = 100_000)]
    nodes: u64,
    /// Tasks submitted to the queue, 0 to 10,000,000 (1,000,000 take about
    /// 510 MiB).
    #[arg(long, value_parser = whole::<0, 10_000_000>, default_value_t = 1_000_000)]
    tasks: u64,
    /// The policy for --schedule (a name `lepton policies` lists).
    #[arg(long, default_value = "bestfit")]
    policy: String,
    #[command(flatten)]
    policy_files: PolicyFiles,
    /// Also run one scheduling cycle over the whole queue.
    #[arg(long)]
    schedule: bool,
    /// Seeds the synthetic cluster and tasks.
    #[arg(long, alias = "seeds", value_parser = whole::<0, { u64::MAX }>, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    output: OutputArgs,
}

/// What a scale run measured.
#[derive(Debug, Default, Serialize)]
struct ScaleReport {
    nodes: u64,
    tasks: u64,
    add_nodes_s: f64,
    submit_s: f64,
    submissions_per_s: f64,
    queue_length: usize,
    /// With --schedule: the policy, the tasks placed in one cycle, and its time.
    policy: Option<String>,
    placed: Option<usize>,
    backing_off: Option<usize>,
    cycle_s: Option<f64>,
    decisions_per_s: Option<f64>,
    cpu_used_pct: Option<f64>,
    /// Peak resident memory (Linux), MiB.
    peak_resident_mib: Option<f64>,
}

pub(crate) fn run(args: ScaleArgs) -> Result<(), CliError> {
    let context = args.policy_files.context(&[&args.policy], None)?;
    let mut scheduler = CoreScheduler::new(build(&args.policy, &context)?);
    let spinner = super::spinner(format!(
        "{} nodes and {} tasks",
        super::thousands(args.nodes),
        super::thousands(args.tasks)
    ));
    let mut report = ScaleReport {
        nodes: args.nodes,
        tasks: args.tasks,
        ..ScaleReport::default()
    };

    let started = Instant::now();
    for node in synthetic_nodes(args.nodes, args.seed) {
        scheduler.add_node(&node)?;
    }
    report.add_nodes_s = started.elapsed().as_secs_f64();

    // Tasks are drawn one at a time, so only the scheduler holds them.
    let started = Instant::now();
    let mut rng = SeededRng::new(args.seed);
    for id in 0..args.tasks {
        scheduler.submit(&synthetic_task(id, &mut rng))?;
    }
    report.submit_s = started.elapsed().as_secs_f64();
    report.submissions_per_s = args.tasks as f64 / report.submit_s.max(1e-9);
    report.queue_length = scheduler.queue_len();

    if args.schedule {
        let started = Instant::now();
        let placed = scheduler.schedule().len();
        let cycle_s = started.elapsed().as_secs_f64();
        let stats = scheduler.report();
        report.policy = Some(stats.policy.clone());
        report.placed = Some(placed);
        report.backing_off = Some(stats.tasks.backing_off);
        report.cycle_s = Some(cycle_s);
        report.decisions_per_s = Some(args.tasks as f64 / cycle_s.max(1e-9));
        report.cpu_used_pct = Some(stats.utilization.cpu * 100.0);
    }
    report.peak_resident_mib = peak_resident_mib();
    spinner.finish_and_clear();
    match args.output.output {
        Format::Json => say!(
            "{}",
            serde_json::to_string(&report).map_err(|e| CliError::Output(e.to_string()))?
        ),
        Format::Table => print_text(&report),
    }
}

fn print_text(r: &ScaleReport) -> Result<(), CliError> {
    say!("{} nodes added in {:.2} s", r.nodes, r.add_nodes_s)?;
    say!(
        "{} tasks queued in {:.2} s ({:.0} submissions/s); queue length {}",
        r.tasks,
        r.submit_s,
        r.submissions_per_s,
        r.queue_length
    )?;
    if let (Some(policy), Some(placed), Some(backing_off), Some(cycle_s)) =
        (&r.policy, r.placed, r.backing_off, r.cycle_s)
    {
        say!(
            "one cycle with {policy}: {placed} placed, {backing_off} backing off, in {cycle_s:.2} s ({:.0} decisions/s); CPU {:.1}% used",
            r.decisions_per_s.unwrap_or_default(),
            r.cpu_used_pct.unwrap_or_default()
        )?;
    }
    match r.peak_resident_mib {
        Some(mib) => say!("peak resident memory {mib:.0} MiB"),
        None => say!("peak resident memory: unknown on this system"),
    }
}

/// The process's peak resident set (`VmHWM` in `/proc/self/status`), Linux only.
fn peak_resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
