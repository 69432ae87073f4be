//! One feasibility stage on every path: a policy's `filter` holds for
//! normal placement, drains, preemption and the rebalancer alike.

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

use lepton_test_support as support;

use std::sync::Arc;

use lepton_core::clock::Timestamp;
use lepton_core::cluster::{ClusterNode, NodeFilter};
use lepton_core::model::Priority;
use lepton_core::scheduler::{SchedulerConfig, TaskState};
use lepton_core::{
    FeasibleNodes, Misfit, NodeId, NodeSpec, Placement, Policy, Resources, Run, Scheduler, TaskId,
    TaskSpec,
};
use support::{first_fit, placed, rebalancing, scheduler_on, submit};

/// First fit among the nodes of one zone: its filter refuses every other
/// zone. With `obey: false` its `select` goes around the view it is given
/// and picks from the whole cluster (a buggy policy).
struct ZonePolicy {
    zone: &'static str,
    obey: bool,
}

/// Zone `zone` only.
fn zone_filter(zone: &'static str) -> impl NodeFilter {
    move |_: &TaskSpec, node: &ClusterNode| {
        if node.spec().zone.as_deref() == Some(zone) {
            Ok(())
        } else {
            Err(Misfit::Policy("another zone".into()))
        }
    }
}

impl Policy for ZonePolicy {
    fn name(&self) -> &str {
        "zone"
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let node = if self.obey {
            nodes.first_fit()
        } else {
            let unfiltered = nodes.cluster().feasible(nodes.task(), None);
            unfiltered.first_fit()
        };
        node.map(|node| Placement::on(node.id()))
    }

    fn filter(&self) -> Option<Arc<dyn NodeFilter>> {
        Some(Arc::new(zone_filter(self.zone)))
    }
}

fn in_zone_a() -> Box<dyn Policy> {
    Box::new(ZonePolicy {
        zone: "a",
        obey: true,
    })
}

fn node(id: u64, cores: u64, zone: &str) -> NodeSpec {
    NodeSpec::new(NodeId(id), Resources::new(cores * 1_000, 65_536)).with_zone(zone)
}

fn task(id: u64, cores: u64, priority: u8) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(cores * 1_000, 1_024))
        .with_priority(Priority(priority))
}

#[test]
fn a_choice_its_own_filter_refuses_is_a_policy_error() {
    let buggy = Box::new(ZonePolicy {
        zone: "a",
        obey: false,
    });
    let nodes = [node(1, 4, "b"), node(2, 4, "a")];
    let (mut scheduler, _clock) = scheduler_on(buggy, SchedulerConfig::default(), &nodes);
    scheduler.submit(&task(1, 1, 128)).unwrap();
    assert!(scheduler.schedule().is_empty());
    let report = scheduler.report();
    assert_eq!(report.policy_errors, 1);
    assert_eq!(
        report.last_policy_error.as_deref(),
        Some("task t-1 does not fit on node n-1: the policy refuses it: another zone")
    );
    assert!(matches!(
        scheduler.task_state(TaskId(1)),
        Some(TaskState::BackingOff { .. })
    ));
}

#[test]
fn preemption_ranks_only_among_nodes_the_filter_admits() {
    let nodes = [node(1, 4, "b"), node(2, 4, "a")];
    // Placed before the zone rule: one task in zone b, two in zone a.
    let (mut scheduler, _clock) = scheduler_on(first_fit(), SchedulerConfig::default(), &nodes);
    submit(
        &mut scheduler,
        [task(1, 4, 10), task(2, 2, 10), task(3, 2, 10)],
    );
    assert_eq!(placed(&scheduler.schedule()), [(1, 1), (2, 2), (3, 2)]);
    let runs: Vec<Run> = (1..=3)
        .map(|id| scheduler.current_run(TaskId(id)).unwrap())
        .collect();

    scheduler.set_policy(in_zone_a());
    scheduler.submit(&task(9, 4, 200)).unwrap();
    let assignments = scheduler.schedule();
    // One victim in zone b would be cheaper; the filter leaves only zone a,
    // where both tasks must go.
    assert_eq!(assignments[0].node, NodeId(2), "{assignments:?}");
    assert_eq!(assignments[0].evicts, [runs[1], runs[2]]);
    assert_eq!(scheduler.report().preemptions, 2);
}

#[test]
fn the_rebalancer_moves_only_to_nodes_the_filter_admits() {
    let nodes = [node(1, 10, "a"), node(2, 10, "b"), node(3, 10, "a")];
    let (mut scheduler, clock) = scheduler_on(in_zone_a(), rebalancing(0.5, 0.55, 2), &nodes);
    // Node 3 runs a little (10 %), node 1 is full, node 2 (zone b) is idle.
    scheduler.cordon(NodeId(1)).unwrap();
    scheduler.submit(&task(100, 1, 128)).unwrap();
    assert_eq!(placed(&scheduler.schedule()), [(100, 3)]);
    scheduler.uncordon(NodeId(1)).unwrap();
    scheduler.cordon(NodeId(3)).unwrap();
    submit(&mut scheduler, (1..=5).map(|id| task(id, 2, id as u8)));
    assert_eq!(scheduler.schedule().len(), 5);
    scheduler.uncordon(NodeId(3)).unwrap();

    clock.set(Timestamp::from_secs(60));
    // The coldest node is node 2, in zone b; the moves go to node 3.
    assert_eq!(placed(&scheduler.schedule()), [(1, 3), (2, 3)]);
}

#[test]
fn drains_move_only_to_nodes_the_filter_admits() {
    let nodes = [node(1, 4, "a"), node(2, 8, "b"), node(3, 4, "a")];
    let (mut scheduler, _clock) = scheduler_on(in_zone_a(), SchedulerConfig::default(), &nodes);
    submit(&mut scheduler, (1..=3).map(|id| task(id, 1, 128)));
    assert_eq!(placed(&scheduler.schedule()), [(1, 1), (2, 1), (3, 1)]);
    let drained = scheduler.drain(NodeId(1)).unwrap();
    assert_eq!(placed(&drained.moved), [(1, 3), (2, 3), (3, 3)]);
}
