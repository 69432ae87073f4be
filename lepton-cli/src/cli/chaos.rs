//! `lepton chaos`: the scheduler against node crashes, launch errors and
//! duplicated or late reports, checked by replaying the event log.

use clap::Args;
use lepton::policies::build;
use lepton::sim::{run_chaos, ChaosConfig, ChaosReport};

use super::say;
use super::{decimal, whole, CliError, Format, OutputArgs, PolicyFiles};

/// Node crashes, launch errors and duplicated reports, checked by an
/// independent replay of the event log.
///
/// Prints what the checker found, and fails (exit 1) when a task was lost,
/// ran twice or a node was over-committed.
///
/// Tasks arrive over 100,000 / (0.03 × nodes) virtual seconds; the run
/// ends when every task has completed or failed, or at its time limit
/// (twice that span plus six hours), when tasks still queued, retrying or
/// running are counted as unfinished: the scheduler still holds them.
#[derive(Debug, Args)]
pub(crate) struct ChaosArgs {
    /// Nodes in the synthetic cluster, 1 to 100,000.
    #[arg(long, value_parser = whole::<1, 100_000>, default_value_t = 1_000)]
    nodes: u64,
    /// Tasks submitted over the run, 1 to 2,000,000 (100,000 take about 6 s
    /// and 113 MiB).
    #[arg(long, value_parser = whole::<1, 2_000_000>, default_value_t = 100_000)]
    tasks: u64,
    /// Share of the nodes that crash once during the run, a decimal from 0
    /// to 1 (`--node-failure-rate` is the older name).
    #[arg(long, alias = "node-failure-rate", value_parser = decimal, default_value_t = 0.1)]
    crash_share: f64,
    /// Probability that a launch fails, a decimal from 0 to 1.
    #[arg(long, value_parser = decimal, default_value_t = 0.05)]
    launch_error_rate: f64,
    /// Probability that a completion is reported twice, a decimal from 0
    /// to 1.
    #[arg(long, value_parser = decimal, default_value_t = 0.05)]
    duplicate_rate: f64,
    /// Share of the tasks that come in gangs of 2 to 4 that must start
    /// together, a decimal from 0 to 1.
    #[arg(long, value_parser = decimal, default_value_t = 0.0)]
    gang_share: f64,
    /// Tenant queues the tasks are spread over (each at most 40 % of the
    /// cluster, all at most 90 %), 0 to 1,000; 0: none.
    #[arg(long, value_parser = whole::<0, 1_000>, default_value_t = 0)]
    queues: u64,
    /// The placement policy (a name `lepton policies` lists).
    #[arg(long, default_value = "bestfit")]
    policy: String,
    #[command(flatten)]
    policy_files: PolicyFiles,
    /// Seeds every random choice.
    #[arg(long, alias = "seeds", value_parser = whole::<0, { u64::MAX }>, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn run(args: ChaosArgs) -> Result<(), CliError> {
    let config = ChaosConfig {
        nodes: args.nodes,
        tasks: args.tasks,
        node_failure_rate: args.crash_share,
        launch_error_rate: args.launch_error_rate,
        duplicate_rate: args.duplicate_rate,
        gang_share: args.gang_share,
        queues: u32::try_from(args.queues).unwrap_or(u32::MAX),
        seed: args.seed,
    };
    config.validate()?;
    let policy = build(
        &args.policy,
        &args.policy_files.context(&[&args.policy], None)?,
    )?;
    let spinner = super::spinner(format!(
        "{} tasks on {} nodes under chaos",
        super::thousands(args.tasks),
        super::thousands(args.nodes)
    ));
    let report = run_chaos(policy, &config)?;
    spinner.finish_and_clear();
    match args.output.output {
        Format::Json => say!(
            "{}",
            serde_json::to_string(&report).map_err(|e| CliError::Output(e.to_string()))?
        )?,
        Format::Table => print_text(&report)?,
    }
    let tenancy = report.gangs_partly_started + report.queues_over_maximum;
    if report.lost + report.ran_twice + report.overcommitted + tenancy > 0 {
        return Err(CliError::Scenario(format!(
            "the checker found {} lost, {} run twice, {} over-commitments, {} gangs partly \
             started, {} queues over their maximum",
            report.lost,
            report.ran_twice,
            report.overcommitted,
            report.gangs_partly_started,
            report.queues_over_maximum
        )));
    }
    Ok(())
}

fn print_text(r: &ChaosReport) -> Result<(), CliError> {
    say!(
        "{} tasks: {} completed, {} failed after retries (at most {} failed attempts for one task), {} unfinished",
        r.tasks,
        r.completed,
        r.failed_after_retries,
        r.max_retries_seen,
        r.unfinished
    )?;
    if r.unfinished > 0 {
        say!(
            "the run reached its limit of {} virtual s with {} tasks still queued, retrying or running: unfinished, not lost (the scheduler still holds them)",
            r.limit_s,
            r.unfinished
        )?;
    }
    say!(
        "checker: lost {}, ran twice {}, over-committed {}",
        r.lost,
        r.ran_twice,
        r.overcommitted
    )?;
    if r.gangs > 0 || r.queues_over_maximum > 0 {
        say!(
            "{} gangs, {} cycles started part of one; {} cycle ends with a queue over its maximum",
            r.gangs,
            r.gangs_partly_started,
            r.queues_over_maximum
        )?;
    }
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
