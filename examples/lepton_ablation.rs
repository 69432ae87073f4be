//! What each of Lepton's learned parts gives in the synthetic data center,
//! on the report seeds 1–5: Lepton's strategy as `lepton demo` runs it,
//! then with one part replaced by what an operator would configure —
//! kube-scheduler's most-allocated scoring in place of the `lifetime`
//! policy, and the tuned fixed spare (0.5 % of each shape, at least two)
//! in place of the spare by forecast — and, last, the **oracle**: the
//! `lifetime` policy told every task's true duration, the most a perfect
//! lifetime prediction could give (an upper bound, not a result: no
//! scheduler knows it). `--trace` runs Lepton and the oracle on the DLRM
//! trace's report days 16–30 instead, and Lepton with VMs ready the
//! minute they start, no spare and emptied VMs released at once: not a
//! strategy, but what those timers cost against the lower bound.
//!
//! The oracle gives each task a kind of its own (`app` = its id) and
//! starts the policy with [`lepton::policies::MIN_SEEN`] finished runs of
//! that kind at its true length, so its prediction is the task's duration
//! to within a histogram bin (±4.4 %). On the trace a task alive at the
//! window's end is told the length it runs in the simulation.
//!
//! Run: `cargo run --release --example lepton_ablation [-- --trace]`

use lepton::policies::{task_kind, KubeResources, LifetimeAware, LifetimePredictor, MIN_SEEN};
use lepton::sim::scenario::{
    datacenter_strategies, lower_bound_cost, run_datacenter, Consolidation, DatacenterConfig,
    FleetWorld, Spare, Strategy, StrategyReport, TraceWindow, Tuning, DATACENTER_TUNING,
    TRACE_TUNING,
};
use lepton::sim::{dlrm_trace_path, lifetime_history, read_dlrm};
use lepton::Policy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|arg| arg == "--trace") {
        return trace();
    }
    println!("seed  bound  lepton  most-allocated  fixed-spare  oracle   (cost USD; avoidable misses, late starts)");
    for seed in 1..=5 {
        let world = FleetWorld::generate(&DatacenterConfig {
            seed,
            ..DatacenterConfig::default()
        })?;
        let (oracle_world, oracle) = oracle(&world);
        let variants: [(&FleetWorld, Strategy); 4] = [
            (
                &world,
                lepton(Box::new(LifetimeAware::new()), &DATACENTER_TUNING),
            ),
            (
                &world,
                lepton(Box::new(KubeResources::BINPACK), &DATACENTER_TUNING),
            ),
            (
                &world,
                Strategy {
                    spare_forecast: None,
                    spare: Spare {
                        share: 0.005,
                        min: 2,
                    },
                    ..lepton(Box::new(LifetimeAware::new()), &DATACENTER_TUNING)
                },
            ),
            (
                &oracle_world,
                lepton(
                    Box::new(LifetimeAware::with_history(oracle)),
                    &DATACENTER_TUNING,
                ),
            ),
        ];
        let mut line = format!("{seed:>4} {:>6.0}", lower_bound_cost(&world));
        for (world, strategy) in variants {
            line += &cell(&run_datacenter(world, strategy)?);
        }
        println!("{line}");
    }
    Ok(())
}

/// Lepton and the oracle on the DLRM trace's report days, as the demo
/// runs Lepton there: the policy starts from the lifetimes that ended
/// before the window.
fn trace() -> Result<(), Box<dyn std::error::Error>> {
    let instances = read_dlrm(&dlrm_trace_path())?;
    let window = TraceWindow::REPORT;
    let world = FleetWorld::from_dlrm(&instances, window, &DatacenterConfig::default())?;
    let (oracle_world, oracle) = oracle(&world);
    let history = lifetime_history(&instances, window);
    println!(
        "DLRM days 16-30, bound {:.0}: cost USD (avoidable misses, late starts)",
        lower_bound_cost(&world)
    );
    let learned = run_datacenter(
        &world,
        lepton(
            Box::new(LifetimeAware::with_history(history)),
            &TRACE_TUNING,
        ),
    )?;
    println!("lepton {}", cell(&learned));
    let told = run_datacenter(
        &oracle_world,
        lepton(Box::new(LifetimeAware::with_history(oracle)), &TRACE_TUNING),
    )?;
    println!("oracle {}", cell(&told));
    // Not a strategy: what start-up, spare and the release delay cost.
    // VMs ready the minute they start, no spare, emptied VMs released at once.
    let instant = DatacenterConfig {
        startup_min: 0,
        ..DatacenterConfig::default()
    };
    let untimed_world = FleetWorld::from_dlrm(&instances, window, &instant)?;
    let untimed = Tuning {
        lepton: Spare::NONE,
        lepton_release: Some(Consolidation {
            after_min: 0,
            replace: false,
            evict: false,
        }),
        ..TRACE_TUNING
    };
    let policy = LifetimeAware::with_history(lifetime_history(&instances, window));
    let report = run_datacenter(&untimed_world, lepton(Box::new(policy), &untimed))?;
    println!(
        "no start-up, no spare, instant release {} (x{:.3} the bound)",
        cell(&report),
        report.cost / lower_bound_cost(&untimed_world)
    );
    Ok(())
}

/// Lepton's strategy, placing by `policy`.
fn lepton(policy: Box<dyn Policy>, tuning: &Tuning) -> Strategy {
    datacenter_strategies("", policy, tuning).1
}

/// `world` with every task of a kind of its own, and a predictor that
/// has seen each kind run exactly its true length.
fn oracle(world: &FleetWorld) -> (FleetWorld, LifetimePredictor) {
    let mut told = world.clone();
    let mut predictor = LifetimePredictor::new();
    for task in &mut told.tasks {
        let spec = task
            .spec
            .clone()
            .with_config("app", format!("oracle-{}", task.spec.id.0));
        let minutes = match task.ends_at_min {
            Some(end) => end.saturating_sub(task.arrival_min),
            None => task.duration_min,
        };
        let kind = task_kind(&spec);
        for _ in 0..MIN_SEEN {
            predictor.observe(&kind, (minutes * 60) as f64);
        }
        task.spec = spec;
    }
    (told, predictor)
}

/// One strategy's cost, avoidable misses and late starts.
fn cell(report: &StrategyReport) -> String {
    let avoidable = report.deadline_misses - report.unavoidable_misses;
    format!(
        "  {:>6.0} ({avoidable}, {})",
        report.cost, report.slo_violations
    )
}
