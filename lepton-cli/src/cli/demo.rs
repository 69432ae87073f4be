//! `lepton demo`: the article's scenarios, Lepton against the baselines a
//! user would otherwise run, as tables, JSON and an HTML report.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use lepton::policies::{build, PolicyContext};
use lepton::sim::scenario::{
    compare_datacenter, compare_datacenter_with, compare_dlrm, compare_edge, compare_fleet,
    compare_hybrid, DatacenterComparison, DatacenterConfig, EdgeComparison, EdgeConfig, FleetWorld,
    HybridComparison, HybridConfig, TraceWindow, Versus,
};
use lepton::sim::{dlrm_trace_path, read_dlrm, read_workload};

use super::report;
use super::say;
use super::{whole, wrote, CliError, Format, OutputArgs, PolicyFiles};

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// 1,000 VMs over one day: traditional, three Kubernetes setups,
    /// Karpenter and Lepton.
    Datacenter,
    /// The same strategies on a real trace: Alibaba's DLRM serving
    /// instances (NSDI '25), days 16–30, on an autoscaled pool.
    DatacenterTrace,
    /// Edge sites and a central cloud: nearest-site-first, cloud-only,
    /// class-aware and Lepton.
    Edge,
    /// Owned, on-demand and spot VMs: on-prem first then on demand, the
    /// spot rule and Lepton.
    Hybrid,
    /// Every scenario.
    All,
}

/// Which days of the trace `datacenter-trace` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Days {
    /// Days 16–30: what the docs report (nothing is tuned on them).
    Report,
    /// Days 0–15: where the strategies' spares were tuned.
    Tuning,
    /// The whole trace.
    All,
}

impl Days {
    fn window(self) -> TraceWindow {
        match self {
            Days::Report => TraceWindow::REPORT,
            Days::Tuning => TraceWindow::TUNING,
            Days::All => TraceWindow::WHOLE,
        }
    }
}

/// The article's scenarios against the baselines, with an HTML report (the
/// default command).
///
/// A data center of VMs (traditional round robin, three Kubernetes setups,
/// Karpenter and Lepton), the same on Alibaba's DLRM serving trace, edge
/// sites with a central cloud, and a hybrid cloud of owned, on-demand and
/// spot VMs; docs/SCENARIOS.md describes each.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// The scenario.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// Seeds the fleets, the tasks and the failures of every scenario.
    #[arg(long, alias = "seeds", value_parser = whole::<0, { u64::MAX }>, default_value_t = DatacenterConfig::default().seed)]
    seed: u64,
    /// VMs in the data center, 10 to 100,000 (default 1,000).
    #[arg(long, value_parser = whole::<10, 100_000>)]
    vms: Option<u64>,
    /// Tasks arriving over the day, in each scenario, 1 to 2,000,000
    /// (default: 20,000 in the data center and at the edge, 12,000 in the
    /// hybrid cloud).
    #[arg(long, value_parser = whole::<1, 2_000_000>)]
    tasks: Option<u64>,
    /// Hours of arrivals, in each scenario, 1 to 720 (default 24).
    #[arg(long, value_parser = whole::<1, 720>)]
    hours: Option<u64>,
    /// Edge sites in the edge scenario, 2 to 1,000 (default 8).
    #[arg(long, value_parser = whole::<2, 1_000>)]
    sites: Option<u64>,
    /// Lepton's placement policy in the data centers (a name `lepton
    /// policies` lists; default lifetime).
    #[arg(long)]
    policy: Option<String>,
    #[command(flatten)]
    policy_files: PolicyFiles,
    /// Your own data center instead of the built-in one: nodes (with
    /// `price_per_hour`) and tasks (with `duration_s`) in the JSON workload
    /// format (see `lepton replay --help`).
    #[arg(long)]
    workload: Option<PathBuf>,
    /// Another trace of the DLRM format for `datacenter-trace` (default:
    /// the one shipped in data/alibaba-dlrm-2025).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// The trace's days `datacenter-trace` runs.
    #[arg(long, value_enum)]
    days: Option<Days>,
    #[command(flatten)]
    output: OutputArgs,
    /// The directory the HTML report goes to (`DIR/index.html`).
    #[arg(long, value_name = "DIR", default_value = "lepton-report")]
    out: PathBuf,
}

pub(crate) fn run(args: DemoArgs) -> Result<(), CliError> {
    // Flags first: a bad value should not wait for a run.
    let configs = Configs::of(&args)?;
    let context = args.policy_files.context(&[&configs.policy], None)?;
    build(&configs.policy, &context)?;
    report::check_out_dir(&args.out)?;
    let started = Instant::now();
    let ran = run_scenarios(&args, &configs, &context)?;
    let wall_s = started.elapsed().as_secs_f64();
    let results = report::Results {
        datacenter: ran.datacenter.as_ref(),
        trace: ran.trace.as_ref(),
        edge: ran.edge.as_ref(),
        hybrid: ran.hybrid.as_ref(),
    };
    let page = report::write(&args.out, &results)?;
    wrote(&page, "the HTML report");
    match args.output.output {
        Format::Json => {
            let json = serde_json::json!({
                "scenarios": results.json()?,
                "report": page,
                "wall_s": wall_s,
            });
            say!("{json}")?;
        }
        Format::Table => {
            for datacenter in [&ran.datacenter, &ran.trace].into_iter().flatten() {
                print_table(datacenter)?;
            }
            if let Some(edge) = &ran.edge {
                print_edge(edge)?;
            }
            if let Some(hybrid) = &ran.hybrid {
                print_hybrid(hybrid)?;
            }
            say!("wall time {wall_s:.1} s")?;
        }
    }
    Ok(())
}

/// Each scenario's settings, from the flags, checked.
struct Configs {
    datacenter: DatacenterConfig,
    edge: EdgeConfig,
    hybrid: HybridConfig,
    /// Lepton's policy in the data center.
    policy: String,
}

impl Configs {
    fn of(args: &DemoArgs) -> Result<Configs, CliError> {
        refuse_unread_flags(args)?;
        // The parsers bounded every size far below `usize::MAX`.
        let size = |value: u64| value as usize;
        let default = DatacenterConfig::default();
        let tasks = |own: usize| args.tasks.map_or(own, size);
        let hours = args.hours.unwrap_or(default.hours);
        let datacenter = DatacenterConfig {
            seed: args.seed,
            vms: args.vms.map_or(default.vms, size),
            tasks: tasks(default.tasks),
            hours,
            ..DatacenterConfig::default()
        };
        datacenter.validate()?;
        let edge_default = EdgeConfig::default();
        let edge = EdgeConfig {
            seed: args.seed,
            sites: args.sites.map_or(edge_default.sites, size),
            tasks: tasks(default.tasks),
            hours,
            ..edge_default
        };
        edge.validate()?;
        let hybrid_default = HybridConfig::default();
        let hybrid = HybridConfig {
            seed: args.seed,
            tasks: tasks(hybrid_default.tasks),
            hours,
            ..hybrid_default
        };
        hybrid.validate()?;
        Ok(Configs {
            datacenter,
            edge,
            hybrid,
            policy: args.policy.clone().unwrap_or_else(|| "lifetime".to_owned()),
        })
    }
}

/// Refuses a flag that no scenario of this run reads: `--sites` without
/// the edge, `--vms` without the data center, `--policy` without either
/// data center, `--trace` and `--days` without the trace's,
/// `--tasks` and `--hours` with the trace's alone, and with `--workload`
/// (which is the data center) `--vms`, and `--tasks` and `--hours` unless
/// another scenario runs.
fn refuse_unread_flags(args: &DemoArgs) -> Result<(), CliError> {
    let runs = |one| args.scenario == one || args.scenario == Scenario::All;
    let scenario = args
        .scenario
        .to_possible_value()
        .map_or(String::new(), |v| v.get_name().to_owned());
    let unread =
        |flag: &str, why: &str| Err(CliError::Usage(format!("{flag} is not read here: {why}")));
    let not_run = |owner: &str| format!("it is {owner}, and --scenario {scenario} does not run it");
    if args.sites.is_some() && !runs(Scenario::Edge) {
        return unread("--sites", &not_run("the edge scenario's"));
    }
    if args.vms.is_some() && !runs(Scenario::Datacenter) {
        return unread("--vms", &not_run("the data center's"));
    }
    if args.policy.is_some() && !runs(Scenario::Datacenter) && !runs(Scenario::DatacenterTrace) {
        return unread("--policy", &not_run("the data centers'"));
    }
    for (flag, given) in [
        ("--trace", args.trace.is_some()),
        ("--days", args.days.is_some()),
    ] {
        if given && !runs(Scenario::DatacenterTrace) {
            return unread(flag, &not_run("datacenter-trace's"));
        }
    }
    if args.scenario == Scenario::DatacenterTrace {
        for (flag, given) in [
            ("--tasks", args.tasks.is_some()),
            ("--hours", args.hours.is_some()),
        ] {
            if given {
                return unread(
                    flag,
                    "the trace's instances and times are datacenter-trace's tasks",
                );
            }
        }
    }
    if args.workload.is_none() {
        return Ok(());
    }
    if !runs(Scenario::Datacenter) {
        return unread(
            "--workload",
            &format!("it replaces the data center, and --scenario {scenario} does not run it"),
        );
    }
    if args.vms.is_some() {
        return unread(
            "--vms",
            "the workload's nodes are the data center (--workload)",
        );
    }
    for (flag, given) in [
        ("--tasks", args.tasks.is_some()),
        ("--hours", args.hours.is_some()),
    ] {
        if given && args.scenario == Scenario::Datacenter {
            return unread(
                flag,
                "the workload's tasks and arrivals are the data center's (--workload)",
            );
        }
    }
    Ok(())
}

/// The scenarios a demo ran (`None`: not asked for).
struct Ran {
    datacenter: Option<DatacenterComparison>,
    trace: Option<DatacenterComparison>,
    edge: Option<EdgeComparison>,
    hybrid: Option<HybridComparison>,
}

/// Runs the scenarios `args` asks for, with a progress bar.
fn run_scenarios(
    args: &DemoArgs,
    configs: &Configs,
    context: &PolicyContext,
) -> Result<Ran, CliError> {
    let wanted = |one| args.scenario == one || args.scenario == Scenario::All;
    let count = [
        Scenario::Datacenter,
        Scenario::DatacenterTrace,
        Scenario::Edge,
        Scenario::Hybrid,
    ]
    .into_iter()
    .filter(|&one| wanted(one))
    .count();
    let bar = super::progress_bar(count, "scenarios");
    let mut ran = Ran {
        datacenter: None,
        trace: None,
        edge: None,
        hybrid: None,
    };
    if wanted(Scenario::Datacenter) {
        bar.set_message("data center");
        let config = &configs.datacenter;
        ran.datacenter = Some(match &args.workload {
            Some(path) => {
                let workload = read_workload(path)?;
                let world = FleetWorld::from_workload(&workload.nodes, &workload.tasks, config)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
                compare_fleet(&world, &configs.policy, build(&configs.policy, context)?)?
            }
            None => datacenter(config, &configs.policy, context)?,
        });
        bar.inc(1);
    }
    if wanted(Scenario::DatacenterTrace) {
        bar.set_message("data center on the DLRM trace");
        let path = args.trace.clone().unwrap_or_else(dlrm_trace_path);
        let instances = read_dlrm(&path)?;
        let window = args.days.unwrap_or(Days::Report).window();
        let rules = DatacenterConfig {
            seed: args.seed,
            ..DatacenterConfig::default()
        };
        let world = FleetWorld::from_dlrm(&instances, window, &rules)
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
        ran.trace = Some(compare_dlrm(
            &world,
            &instances,
            window,
            &configs.policy,
            context,
        )?);
        bar.inc(1);
    }
    if wanted(Scenario::Edge) {
        bar.set_message("edge");
        ran.edge = Some(compare_edge(&configs.edge)?);
        bar.inc(1);
    }
    if wanted(Scenario::Hybrid) {
        bar.set_message("hybrid cloud");
        ran.hybrid = Some(compare_hybrid(&configs.hybrid)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(ran)
}

/// The data center under the three strategies.
fn datacenter(
    config: &DatacenterConfig,
    policy: &str,
    context: &PolicyContext,
) -> Result<DatacenterComparison, CliError> {
    let comparison = match policy {
        "lifetime" => compare_datacenter(config)?,
        name => compare_datacenter_with(config, name, build(name, context)?)?,
    };
    Ok(comparison)
}

fn print_table(result: &DatacenterComparison) -> Result<(), CliError> {
    say!("{}: {}", result.scenario, report::describe(result))?;
    say!("{}", super::table::datacenter(result).text())?;
    if let Some(line) = super::table::lower_bound(result) {
        say!("{line}")?;
    }
    print_versus(&result.vs_best_baseline, &result.vs_baselines)
}

/// Lepton against the best baseline, then against the first (the one the
/// scenario was written against), if another.
fn print_versus(best: &Versus, each: &[Versus]) -> Result<(), CliError> {
    let first = each.first().filter(|first| first.baseline != best.baseline);
    for versus in std::iter::once(best).chain(first) {
        say!(
            "lepton vs {}: cost {:+.1}%, utilization {:+.1}%, avoidable misses {:+}, late starts {:+}",
            versus.baseline,
            -versus.cost_reduction_pct,
            versus.utilization_gain_pct,
            versus.avoidable_misses_delta,
            versus.slo_violations_delta
        )?;
    }
    Ok(())
}

fn print_edge(result: &EdgeComparison) -> Result<(), CliError> {
    let c = &result.config;
    say!(
        "{}: {} sites × {} nodes, {} cloud nodes, {} tasks over {} h, seed {}",
        result.scenario,
        c.sites,
        c.nodes_per_site,
        c.cloud_nodes,
        c.tasks,
        c.hours,
        result.seed
    )?;
    say!("{}", super::table::edge(result).text())?;
    Ok(())
}

fn print_hybrid(result: &HybridComparison) -> Result<(), CliError> {
    let c = &result.config;
    say!(
        "{}: {} owned, {} on-demand, {} spot VMs, {} tasks over {} h, seed {}",
        result.scenario,
        c.owned_vms,
        c.on_demand_vms,
        c.spot_vms,
        c.tasks,
        c.hours,
        result.seed
    )?;
    say!("{}", super::table::hybrid(result).text())?;
    if let Some(line) = super::table::lower_bound(result) {
        say!("{line}")?;
    }
    print_versus(&result.vs_best_baseline, &result.vs_baselines)
}
