//! `lepton scale`: a synthetic cluster and queue of a given size, to see
//! what Lepton costs in memory and time at that size.

use std::time::Instant;

use clap::Args;
use lepton::policies::by_name;
use lepton::sim::{synthetic_nodes, synthetic_task};
use lepton::{CoreScheduler, Scheduler, SeededRng};

use super::say;
use super::CliError;

/// Builds a synthetic cluster, queues synthetic tasks, optionally schedules
/// them, and reports times and peak memory.
#[derive(Debug, Args)]
pub(crate) struct ScaleArgs {
    /// Nodes in the cluster, 1 to 1,000,000 (100,000 take about 120 MiB).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    nodes: u64,
    /// Tasks submitted to the queue, 0 to 10,000,000 (1,000,000 take about
    /// 510 MiB).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    tasks: u64,
    /// The policy for `--schedule`.
    #[arg(long, default_value = "bestfit")]
    policy: String,
    /// Also run one scheduling cycle over the whole queue.
    #[arg(long)]
    schedule: bool,
    /// Seeds the synthetic cluster and tasks.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub(crate) fn run(args: ScaleArgs) -> Result<(), CliError> {
    let mut scheduler = CoreScheduler::new(by_name(&args.policy)?);

    let started = Instant::now();
    for node in synthetic_nodes(args.nodes, args.seed) {
        scheduler.add_node(&node)?;
    }
    let add_s = started.elapsed().as_secs_f64();

    // Tasks are drawn one at a time, so only the scheduler holds them.
    let started = Instant::now();
    let mut rng = SeededRng::new(args.seed);
    for id in 0..args.tasks {
        scheduler.submit(&synthetic_task(id, &mut rng))?;
    }
    let submit_s = started.elapsed().as_secs_f64();
    say!("{} nodes added in {add_s:.2} s", args.nodes)?;
    say!(
        "{} tasks queued in {submit_s:.2} s ({:.0} submissions/s); queue length {}",
        args.tasks,
        args.tasks as f64 / submit_s.max(1e-9),
        scheduler.queue_len()
    )?;

    if args.schedule {
        let started = Instant::now();
        let placed = scheduler.schedule().len();
        let cycle_s = started.elapsed().as_secs_f64();
        let report = scheduler.report();
        say!(
            "one cycle with {}: {placed} placed, {} backing off, in {cycle_s:.2} s ({:.0} decisions/s); CPU {:.1}% used",
            report.policy,
            report.tasks.backing_off,
            args.tasks as f64 / cycle_s.max(1e-9),
            report.utilization.cpu * 100.0
        )?;
    }
    match peak_resident_mib() {
        Some(mib) => say!("peak resident memory {mib:.0} MiB")?,
        None => say!("peak resident memory: unknown on this system")?,
    }
    Ok(())
}

/// The process's peak resident set (`VmHWM` in `/proc/self/status`), Linux only.
fn peak_resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
