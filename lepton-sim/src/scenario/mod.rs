//! The article's scenarios, built in and seeded: a data center of 1,000 VMs
//! over one day (more to come: edge, hybrid cloud). Each runs Lepton and
//! the baselines a user would otherwise run on the same generated workload
//! and reports the same figures for each; `docs/SCENARIOS.md` says what
//! every baseline is and why the comparison is fair.

mod datacenter;

pub use datacenter::{
    run_datacenter, DatacenterConfig, DatacenterWorld, ScenarioTask, Strategy, StrategyReport,
    TimelinePoint, VmShape, VM_SHAPES,
};

/// The `q`-quantile (nearest rank) of sorted `values`; 0 when empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
