//! `lepton chaos`: the scheduler against node crashes, launch errors and
//! duplicated or late reports, checked by replaying the event log.

use clap::Args;
use lepton::policies::by_name;
use lepton::sim::{run_chaos, ChaosConfig, ChaosReport};

use super::say;
use super::{CliError, Format};

/// Runs a chaos experiment and prints what the independent checker found.
/// Fails (exit 1) when a task was lost, ran twice or a node was
/// over-committed.
#[derive(Debug, Args)]
pub(crate) struct ChaosArgs {
    /// Nodes in the synthetic cluster, 1 to 100,000.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    nodes: u64,
    /// Tasks submitted over the run, 1 to 2,000,000 (100,000 take about 6 s
    /// and 113 MiB).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=2_000_000))]
    tasks: u64,
    /// Share of nodes that crash once during the run, in [0, 1].
    #[arg(long, default_value_t = 0.1)]
    node_failure_rate: f64,
    /// Probability that a launch fails, in [0, 1].
    #[arg(long, default_value_t = 0.05)]
    launch_error_rate: f64,
    /// Probability that a completion is delivered twice, in [0, 1].
    #[arg(long, default_value_t = 0.05)]
    duplicate_rate: f64,
    /// The placement policy.
    #[arg(long, default_value = "bestfit")]
    policy: String,
    /// Seeds every random choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub(crate) fn run(args: ChaosArgs) -> Result<(), CliError> {
    let config = ChaosConfig {
        nodes: args.nodes,
        tasks: args.tasks,
        node_failure_rate: args.node_failure_rate,
        launch_error_rate: args.launch_error_rate,
        duplicate_rate: args.duplicate_rate,
        seed: args.seed,
    };
    let report = run_chaos(by_name(&args.policy)?, &config)?;
    match args.format {
        Format::Json => say!(
            "{}",
            serde_json::to_string(&report).map_err(|e| CliError::Output(e.to_string()))?
        )?,
        Format::Text => print_text(&report)?,
    }
    if report.lost + report.ran_twice + report.overcommitted > 0 {
        return Err(CliError::Scenario(format!(
            "the checker found {} lost, {} run twice, {} over-commitments",
            report.lost, report.ran_twice, report.overcommitted
        )));
    }
    Ok(())
}

fn print_text(r: &ChaosReport) -> Result<(), CliError> {
    say!(
        "{} tasks: {} completed, {} failed after retries (at most {} failed attempts for one task)",
        r.tasks,
        r.completed,
        r.failed_after_retries,
        r.max_retries_seen
    )?;
    say!(
        "checker: lost {}, ran twice {}, over-committed {}",
        r.lost,
        r.ran_twice,
        r.overcommitted
    )?;
    say!(
        "injected: {} node crashes ({} detected by silence), {} launch errors; {} reports refused as duplicate, late or stale",
        r.node_crashes, r.silent_nodes, r.launch_errors, r.refused_reports
    )?;
    say!(
        "{} preemptions, {} rebalancing moves; {} virtual s in {:.2} s",
        r.preemptions,
        r.moves,
        r.virtual_s,
        r.wall_s
    )?;
    Ok(())
}
