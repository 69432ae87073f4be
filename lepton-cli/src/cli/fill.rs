//! `lepton fill`: the FGD paper's fill experiment over policies and seeds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Args;
use lepton::policies::{build, policy_names, PolicyContext, PAPER_POLICIES};
use lepton::sim::{run_fill, FillConfig, FillResult};
use lepton::{NodeSpec, TaskSpec};
use serde::Serialize;

use super::plot::{mean_curve, write_svg};
use super::say;
use super::{check_plot_path, decimal, parse_seeds, whole, wrote};
use super::{CliError, Format, OutputArgs, PolicyFiles, TraceArgs};

/// The FGD paper's fill experiment on the Alibaba GPU trace.
///
/// Pods arrive in a seeded random order (cloned until their GPU requests
/// reach --tune × the cluster's GPUs), each placed or dropped, never
/// leaving; the result is the GPU allocation when the arrived requests
/// reach 100% of the GPUs, one run per policy and seed.
#[derive(Debug, Args)]
pub(crate) struct FillArgs {
    #[command(flatten)]
    trace: TraceArgs,
    /// Policies, comma-separated (names as `lepton policies` lists), or
    /// `all` for the paper's six.
    #[arg(long, default_value = "all")]
    policy: String,
    #[command(flatten)]
    policy_files: PolicyFiles,
    /// Seeds, one run per seed and policy: a range `42-51`, a list `42,45`
    /// or one `42` (at most 10,000; the paper's are 42-51).
    #[arg(long, alias = "seeds", value_name = "SEEDS", default_value = "42-51")]
    seed: String,
    /// Inflation, a decimal from 1 to 10: pods are cloned until their GPU
    /// requests reach tune × the cluster's GPUs (the paper's 1.3).
    #[arg(long, value_parser = decimal, default_value_t = 1.3)]
    tune: f64,
    #[command(flatten)]
    output: OutputArgs,
    /// Also write the allocation curves (the paper's Figure 9a) to this
    /// SVG file (its directory must exist).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Worker threads, 1 to 256. Default: one per core.
    #[arg(long, value_parser = whole::<1, 256>)]
    threads: Option<u64>,
}

/// One policy's results over all seeds.
#[derive(Debug, Serialize)]
struct PolicySummary {
    policy: String,
    /// Mean over seeds of the allocation % at 100% arrived.
    alloc_pct_at_100: f64,
    alloc_pct_at_100_per_seed: Vec<f64>,
    frag_pct_at_100: f64,
    /// Tasks arrived per run (trace tasks plus clones), mean over seeds.
    pods_arrived: usize,
    /// Tasks dropped per run, mean over seeds.
    pods_dropped: usize,
    /// Wall time of this policy's runs, summed.
    wall_s: f64,
    /// Placement decisions per second of this policy's wall time.
    decisions_per_s: f64,
}

/// The inputs every run shares.
struct Experiment {
    nodes: Vec<NodeSpec>,
    tasks: Vec<TaskSpec>,
    context: PolicyContext,
}

pub(crate) fn run(args: FillArgs) -> Result<(), CliError> {
    // Flags first: a typo should not wait for the trace to load.
    let policies = parse_policies(&args.policy)?;
    let seeds = parse_seeds(&args.seed)?;
    FillConfig {
        seed: 0,
        tune: args.tune,
    }
    .validate()?;
    if let Some(path) = &args.plot {
        check_plot_path(path)?;
    }
    let started = Instant::now();
    let (nodes_path, pods_path) = args.trace.paths()?;
    let (nodes, pods) = args.trace.read()?;
    let tasks: Vec<TaskSpec> = pods.into_iter().map(|p| p.spec).collect();
    let context = args.policy_files.context(
        &policies.iter().map(String::as_str).collect::<Vec<_>>(),
        Some(&tasks),
    )?;
    let experiment = Experiment {
        nodes,
        tasks,
        context,
    };
    // A bad name, or rules that let no task on, fail before any run starts.
    let specs: Vec<&TaskSpec> = experiment.tasks.iter().collect();
    for name in &policies {
        let policy = build(name, &experiment.context)?;
        super::check_filter(&*policy, &experiment.nodes, &specs, &pods_path)?;
    }

    let threads = args.threads.map(|n| n as usize);
    let results = run_all(&experiment, &policies, &seeds, args.tune, threads)?;
    let summaries: Vec<PolicySummary> = policies
        .iter()
        .map(|name| summarize(name, &runs_of(&results, name)))
        .collect();
    let trace = Trace {
        nodes: nodes_path.display().to_string(),
        node_count: experiment.nodes.len(),
        pods: pods_path.display().to_string(),
        pod_count: experiment.tasks.len(),
        seeds: args.seed.clone(),
        tune: args.tune,
    };
    if let Some(path) = &args.plot {
        let curves: Vec<_> = policies
            .iter()
            .map(|name| mean_curve(name, &runs_of(&results, name)))
            .collect();
        let title = format!(
            "GPU allocation vs. arrived GPU request: {}, seeds {}, tune {}",
            file_name(&pods_path),
            trace.seeds,
            trace.tune
        );
        write_svg(path, &title, &curves)?;
        wrote(path, "allocation curves, mean over seeds");
    }
    let wall_s = started.elapsed().as_secs_f64();
    match args.output.output {
        Format::Json => {
            let json = serde_json::json!({
                "results": summaries,
                "seeds": seeds,
                "tune": args.tune,
                "nodes": nodes_path,
                "pods": pods_path,
                "wall_s": wall_s,
            });
            say!("{json}")?;
        }
        Format::Table => print_table(&trace, &summaries, wall_s)?,
    }
    Ok(())
}

/// What a fill experiment ran on, for its header.
struct Trace {
    nodes: String,
    node_count: usize,
    pods: String,
    pod_count: usize,
    seeds: String,
    tune: f64,
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Runs every (policy, seed) pair on `threads` workers; results in job order.
fn run_all(
    experiment: &Experiment,
    policies: &[String],
    seeds: &[u64],
    tune: f64,
    threads: Option<usize>,
) -> Result<Vec<FillResult>, CliError> {
    let jobs: Vec<(&str, u64)> = policies
        .iter()
        .flat_map(|name| seeds.iter().map(move |&seed| (name.as_str(), seed)))
        .collect();
    let results: Mutex<Vec<Option<Result<FillResult, CliError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let progress = super::progress_bar(jobs.len(), "runs");
    let workers =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let workload = experiment
        .context
        .target_workload
        .clone()
        .unwrap_or_default();
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(policy, seed)) = jobs.get(index) else {
                    break;
                };
                let config = FillConfig { seed, tune };
                let result = build(policy, &experiment.context)
                    .map_err(CliError::from)
                    .and_then(|policy| {
                        run_fill(
                            &experiment.nodes,
                            &experiment.tasks,
                            &workload,
                            policy,
                            &config,
                        )
                        .map_err(CliError::from)
                    });
                lock(&results)[index] = Some(result);
                progress.inc(1);
            });
        }
    });
    progress.finish_and_clear();
    results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .map(|slot| slot.unwrap_or_else(|| Err(CliError::Output("a run did not finish".into()))))
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn runs_of<'a>(results: &'a [FillResult], policy: &str) -> Vec<&'a FillResult> {
    results.iter().filter(|r| r.policy == policy).collect()
}

fn parse_policies(text: &str) -> Result<Vec<String>, CliError> {
    if text == "all" {
        return Ok(PAPER_POLICIES.iter().map(|s| s.to_string()).collect());
    }
    let names: Vec<String> = text.split(',').map(|s| s.trim().to_owned()).collect();
    let valid = policy_names();
    for (index, name) in names.iter().enumerate() {
        if names[..index].contains(name) {
            return Err(CliError::Usage(format!(
                "policy {name:?} is given twice in --policy {text:?}"
            )));
        }
        if !valid.contains(name) {
            return Err(CliError::Usage(format!(
                "unknown policy {name:?}; valid names: {}, or all",
                valid.join(", ")
            )));
        }
    }
    Ok(names)
}

fn summarize(policy: &str, runs: &[&FillResult]) -> PolicySummary {
    let count = runs.len().max(1);
    let mean = |f: fn(&FillResult) -> f64| runs.iter().map(|r| f(r)).sum::<f64>() / count as f64;
    let wall_s: f64 = runs.iter().map(|r| r.wall.as_secs_f64()).sum();
    let decisions: usize = runs.iter().map(|r| r.tasks_arrived).sum();
    PolicySummary {
        policy: policy.to_owned(),
        alloc_pct_at_100: mean(|r| r.alloc_pct_at_100),
        alloc_pct_at_100_per_seed: runs.iter().map(|r| r.alloc_pct_at_100).collect(),
        frag_pct_at_100: mean(|r| r.frag_pct_at_100),
        pods_arrived: decisions / count,
        pods_dropped: runs.iter().map(|r| r.tasks_dropped).sum::<usize>() / count,
        wall_s,
        decisions_per_s: decisions as f64 / wall_s.max(1e-9),
    }
}

fn print_table(trace: &Trace, summaries: &[PolicySummary], wall_s: f64) -> Result<(), CliError> {
    say!(
        "fill: {} nodes ({}), {} pods ({}); seeds {}; tune {} (pods cloned until their GPU requests reach {} x the cluster's GPUs)",
        trace.node_count, trace.nodes, trace.pod_count, trace.pods, trace.seeds, trace.tune, trace.tune
    )?;
    say!("alloc@100%: GPUs allocated, % of the cluster's, when the pods arrived so far request 100% of them (the FGD paper's metric); frag%: GPU fragmentation then; arrived, dropped: pods per run (dropped: fit nowhere when they arrived); means over seeds")?;
    say!(
        "{:<12} {:>11} {:>8} {:>9} {:>9} {:>9} {:>13}",
        "policy",
        "alloc@100%",
        "frag%",
        "arrived",
        "dropped",
        "wall s",
        "decisions/s"
    )?;
    for s in summaries {
        say!(
            "{:<12} {:>11.2} {:>8.2} {:>9} {:>9} {:>9.2} {:>13.0}",
            s.policy,
            s.alloc_pct_at_100,
            s.frag_pct_at_100,
            s.pods_arrived,
            s.pods_dropped,
            s.wall_s,
            s.decisions_per_s
        )?;
    }
    say!(
        "total wall time {wall_s:.2} s, loading included (runs in parallel; a policy's wall s sums its runs)"
    )?;
    Ok(())
}
