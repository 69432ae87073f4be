//! `lepton fill`: the FGD paper's fill experiment over policies and seeds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{Args, ValueEnum};
use lepton::policies::{build, PolicyContext, PAPER_POLICIES, POLICY_NAMES};
use lepton::{
    read_openb_nodes, read_openb_pods, run_fill, FillConfig, FillResult, TargetWorkload, TaskSpec,
};
use serde::Serialize;

use crate::{parse_seeds, trace_path, CliError};

/// Replays a trace in the paper's fill mode and reports GPU allocation.
#[derive(Debug, Args)]
pub(crate) struct FillArgs {
    /// Node list (openb CSV). Default: the trace's GPU nodes.
    #[arg(long)]
    nodes: Option<PathBuf>,
    /// Pod list (openb CSV). Default: the trace's default pod list.
    #[arg(long)]
    pods: Option<PathBuf>,
    /// Policies, comma-separated, or `all` for the paper's six.
    #[arg(long, default_value = "all")]
    policy: String,
    /// Seeds: `42-51`, `42,43` or `42`.
    #[arg(long, default_value = "42-51")]
    seeds: String,
    /// Inflation: clones until requested GPUs reach tune × capacity.
    #[arg(long, default_value_t = 1.3)]
    tune: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// One policy's results over all seeds.
#[derive(Debug, Serialize)]
struct PolicySummary {
    policy: String,
    alloc_pct_at_100: f64,
    alloc_pct_at_100_per_seed: Vec<f64>,
    frag_pct_at_100: f64,
    pods_arrived: usize,
    pods_dropped: usize,
    decisions: usize,
    wall_s: f64,
}

pub(crate) fn run(args: FillArgs) -> Result<(), CliError> {
    let nodes_path = args
        .nodes
        .unwrap_or_else(|| trace_path("openb_node_list_gpu_node.csv"));
    let pods_path = args
        .pods
        .unwrap_or_else(|| trace_path("openb_pod_list_default.csv"));
    let nodes = read_openb_nodes(&nodes_path)?;
    let pods: Vec<TaskSpec> = read_openb_pods(&pods_path)?
        .into_iter()
        .map(|p| p.spec)
        .collect();
    let policies = parse_policies(&args.policy)?;
    let seeds = parse_seeds(&args.seeds)?;
    let context = PolicyContext {
        target_workload: Some(Arc::new(TargetWorkload::from_tasks(&pods, 0.95))),
    };
    // Fail on a bad name before any run starts.
    for name in &policies {
        build(name, &context)?;
    }

    let jobs: Vec<(usize, u64)> = (0..policies.len())
        .flat_map(|p| seeds.iter().map(move |&seed| (p, seed)))
        .collect();
    let results: Mutex<Vec<Option<FillResult>>> = Mutex::new(vec![None; jobs.len()]);
    let first_error: Mutex<Option<CliError>> = Mutex::new(None);
    let next = AtomicUsize::new(0);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let job = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(policy, seed)) = jobs.get(job) else {
                    break;
                };
                let config = FillConfig {
                    seed,
                    tune: args.tune,
                };
                let outcome = build(&policies[policy], &context)
                    .map_err(CliError::from)
                    .and_then(|p| {
                        run_fill(
                            &nodes,
                            &pods,
                            context
                                .target_workload
                                .as_deref()
                                .unwrap_or(&TargetWorkload::default()),
                            p,
                            &config,
                        )
                        .map_err(CliError::from)
                    });
                match outcome {
                    Ok(result) => lock(&results)[job] = Some(result),
                    Err(error) => {
                        lock(&first_error).get_or_insert(error);
                    }
                }
            });
        }
    });
    if let Some(error) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(error);
    }
    let results: Vec<FillResult> = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let summaries: Vec<PolicySummary> = policies
        .iter()
        .map(|name| summarize(name, results.iter().filter(|r| &r.policy == name)))
        .collect();
    match args.format {
        Format::Json => {
            let json =
                serde_json::json!({ "results": summaries, "seeds": seeds, "tune": args.tune });
            println!("{json}");
        }
        Format::Text => print_table(&summaries, started.elapsed().as_secs_f64()),
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn parse_policies(text: &str) -> Result<Vec<String>, CliError> {
    if text == "all" {
        return Ok(PAPER_POLICIES.iter().map(|s| s.to_string()).collect());
    }
    let names: Vec<String> = text.split(',').map(|s| s.trim().to_owned()).collect();
    for name in &names {
        if !POLICY_NAMES.contains(&name.as_str()) {
            return Err(CliError::Usage(format!(
                "unknown policy {name:?}; valid names: {}, or all",
                POLICY_NAMES.join(", ")
            )));
        }
    }
    Ok(names)
}

fn summarize<'a>(policy: &str, runs: impl Iterator<Item = &'a FillResult>) -> PolicySummary {
    let runs: Vec<&FillResult> = runs.collect();
    let mean = |f: fn(&FillResult) -> f64| {
        runs.iter().map(|r| f(r)).sum::<f64>() / runs.len().max(1) as f64
    };
    PolicySummary {
        policy: policy.to_owned(),
        alloc_pct_at_100: mean(|r| r.alloc_pct_at_100),
        alloc_pct_at_100_per_seed: runs.iter().map(|r| r.alloc_pct_at_100).collect(),
        frag_pct_at_100: mean(|r| r.frag_pct_at_100),
        pods_arrived: runs.iter().map(|r| r.tasks_arrived).sum(),
        pods_dropped: runs.iter().map(|r| r.tasks_dropped).sum(),
        decisions: runs.iter().map(|r| r.tasks_arrived).sum(),
        wall_s: runs.iter().map(|r| r.wall.as_secs_f64()).sum(),
    }
}

fn print_table(summaries: &[PolicySummary], total_wall_s: f64) {
    println!(
        "{:<12} {:>10} {:>8} {:>10} {:>9} {:>14}",
        "policy", "alloc@100%", "frag%", "arrived", "wall s", "decisions/s"
    );
    for s in summaries {
        println!(
            "{:<12} {:>10.2} {:>8.2} {:>10} {:>9.2} {:>14.0}",
            s.policy,
            s.alloc_pct_at_100,
            s.frag_pct_at_100,
            s.pods_arrived,
            s.wall_s,
            s.decisions as f64 / s.wall_s.max(1e-9)
        );
    }
    println!("total wall time {total_wall_s:.2} s (runs in parallel; per-policy wall s is the sum of its runs)");
}
