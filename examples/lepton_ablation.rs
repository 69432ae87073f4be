//! What each of Lepton's learned parts gives in the synthetic data center,
//! on the report seeds 1–5: Lepton's strategy as `lepton demo` runs it,
//! then with one part replaced by what an operator would configure —
//! kube-scheduler's most-allocated scoring in place of the `lifetime`
//! policy, and the tuned fixed spare (0.5 % of each shape, at least two)
//! in place of the spare by forecast.
//!
//! Run: `cargo run --release --example lepton_ablation`

use lepton::policies::{KubeResources, LifetimeAware};
use lepton::sim::scenario::{
    datacenter_strategies, lower_bound_cost, run_datacenter, DatacenterConfig, FleetWorld, Spare,
    Strategy, DATACENTER_TUNING,
};
use lepton::Policy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("seed  bound  lepton  most-allocated  fixed-spare   (cost USD; avoidable misses, late starts)");
    for seed in 1..=5 {
        let world = FleetWorld::generate(&DatacenterConfig {
            seed,
            ..DatacenterConfig::default()
        })?;
        let lepton =
            |policy: Box<dyn Policy>| datacenter_strategies("", policy, &DATACENTER_TUNING).1;
        let variants: [Strategy; 3] = [
            lepton(Box::new(LifetimeAware::new())),
            lepton(Box::new(KubeResources::BINPACK)),
            Strategy {
                spare_forecast: None,
                spare: Spare {
                    share: 0.005,
                    min: 2,
                },
                ..lepton(Box::new(LifetimeAware::new()))
            },
        ];
        let mut line = format!("{seed:>4} {:>6.0}", lower_bound_cost(&world));
        for strategy in variants {
            let report = run_datacenter(&world, strategy)?;
            let avoidable = report.deadline_misses - report.unavoidable_misses;
            line += &format!(
                "  {:>6.0} ({avoidable}, {})",
                report.cost, report.slo_violations
            );
        }
        println!("{line}");
    }
    Ok(())
}
