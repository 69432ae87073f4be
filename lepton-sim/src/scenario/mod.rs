//! The article's scenarios, built in and seeded: a data center of 1,000 VMs
//! over one day, edge sites with a central cloud, and a hybrid cloud of
//! owned, on-demand and spot VMs. Each runs Lepton and
//! the baselines a user would otherwise run on the same generated workload
//! and reports the same figures for each (`compare_*`: the contestants);
//! `docs/SCENARIOS.md` says what every baseline is and why the comparison
//! is fair.

mod compare;
mod datacenter;
mod edge;
mod hybrid;

pub use compare::{
    compare_datacenter, compare_datacenter_with, compare_dlrm, compare_edge, compare_fleet,
    compare_hybrid, compare_trace, datacenter_strategies, datacenter_tuning, DatacenterComparison,
    EdgeComparison, FleetComparison, HybridComparison, Size, Tuning, Versus, DATACENTER_TUNING,
    HYBRID_SPARE, TRACE_TUNING,
};
pub(crate) use datacenter::run_datacenter_while;
pub use datacenter::{
    floor_cover_cost, lower_bound_cost, run_datacenter, AutoscalerRules, Consolidation,
    DatacenterConfig, FleetWorld, Pool, ScenarioTask, Spare, Strategy, StrategyReport,
    TimelinePoint, TraceWindow, VmShape, DLRM_SHAPES, START_OBJECTIVE_MIN, VM_SHAPES,
};
pub(crate) use edge::{latency_ms, run_edge_with};
pub use edge::{
    run_edge, run_edge_reserving, EdgeConfig, EdgeReport, EdgeStrategy, EdgeTask, EdgeWorld, Site,
    BATCH_OBJECTIVE_MS, CLOUD_MS, CLOUD_USD_PER_VCPU_HOUR, EDGE_RESERVE, INTERACTIVE_OBJECTIVE_MS,
    OTHER_SITE_BASE_MS, PER_HOP_MS, SAME_SITE_MS,
};
pub use hybrid::{HybridConfig, TierPolicy, FLEXIBLE_SLACK_MIN, HYBRID_SHAPES};

/// The `q`-quantile (nearest rank) of sorted `values`; 0 when empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
