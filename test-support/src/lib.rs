//! Fixtures the workspace's tests share (not published): the simplest
//! policy, scheduler set-ups on a manual clock, and the scheduler's
//! invariants recomputed from scratch ([`invariants`]), used by
//! lepton-core's and lepton-sim's tests and the `scheduler_events` fuzz
//! target, so that all of them check the same thing.

pub mod invariants;

use std::sync::Arc;
use std::time::Duration;

use lepton_core::clock::ManualClock;
use lepton_core::scheduler::{RebalanceConfig, SchedulerConfig};
use lepton_core::{
    policy_fn, Assignment, CoreScheduler, FeasibleNodes, NodeSpec, Placement, Policy, Scheduler,
    TaskSpec,
};

/// The simplest policy: the first feasible node, in cluster order.
pub fn first_fit() -> Box<dyn Policy> {
    Box::new(policy_fn("first-fit", |nodes: &FeasibleNodes<'_>| {
        nodes.iter().next().map(|node| Placement::on(node.id()))
    }))
}

/// A scheduler with `policy` and `config` on a manual clock at 0, with
/// `nodes` added; the clock comes back to move time on.
pub fn scheduler_on(
    policy: Box<dyn Policy>,
    config: SchedulerConfig,
    nodes: &[NodeSpec],
) -> (CoreScheduler, ManualClock) {
    let clock = ManualClock::new();
    let mut scheduler = CoreScheduler::builder(policy)
        .clock(Arc::new(clock.clone()))
        .config(config)
        .build();
    for node in nodes {
        scheduler.add_node(node).expect("a valid node");
    }
    (scheduler, clock)
}

/// Default tunables, with the rebalancer running every 60 s between these
/// thresholds, moving at most `max_moves` tasks per run.
pub fn rebalancing(low: f64, high: f64, max_moves: usize) -> SchedulerConfig {
    let rebalance = RebalanceConfig::new(Duration::from_secs(60), low, high, max_moves)
        .expect("valid thresholds");
    let mut config = SchedulerConfig::default();
    config.rebalance = Some(rebalance);
    config
}

/// Submits every task of `specs`.
pub fn submit(scheduler: &mut CoreScheduler, specs: impl IntoIterator<Item = TaskSpec>) {
    for spec in specs {
        scheduler.submit(&spec).expect("a valid task");
    }
}

/// `(task, node)` of each assignment, by number.
pub fn placed(assignments: &[Assignment]) -> Vec<(u64, u64)> {
    assignments.iter().map(|a| (a.task.0, a.node.0)).collect()
}
