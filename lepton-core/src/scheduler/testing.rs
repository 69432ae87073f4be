//! What the scheduler's unit tests share: a first-fit policy and a
//! scheduler on nodes of given sizes, on a manual clock.

use std::sync::Arc;

use crate::admission::Admission;
use crate::clock::ManualClock;
use crate::scheduler::SchedulerConfig;
use crate::{
    policy_fn, CoreScheduler, FeasibleNodes, NodeId, NodeSpec, Placement, Policy, Resources,
    Scheduler,
};

/// The first feasible node.
pub(super) fn first_fit() -> Box<dyn Policy> {
    Box::new(policy_fn("first-fit", |nodes: &FeasibleNodes<'_>| {
        nodes.iter().next().map(|node| Placement::on(node.id()))
    }))
}

/// A first-fit scheduler with `config` (and `queues`, if any) on nodes
/// `n-1`, `n-2`, … of these many cores and 16 GiB each, on a manual clock
/// at 0; the clock comes back to move time on.
pub(super) fn scheduler_on(
    cores: &[u64],
    config: SchedulerConfig,
    queues: Option<&Admission>,
) -> (CoreScheduler, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let mut builder = CoreScheduler::builder(first_fit())
        .clock(clock.clone())
        .config(config);
    if let Some(queues) = queues {
        builder = builder.queues(queues);
    }
    let mut scheduler = builder.build();
    for (id, &cores) in (1..).zip(cores) {
        let node = NodeSpec::new(NodeId(id), Resources::new(cores * 1_000, 16_384));
        scheduler.add_node(&node).unwrap();
    }
    (scheduler, clock)
}

/// The ids one cycle places, in order.
pub(super) fn placed(scheduler: &mut CoreScheduler) -> Vec<u64> {
    let mut ids: Vec<u64> = scheduler.schedule().iter().map(|a| a.task.0).collect();
    ids.sort_unstable();
    ids
}
