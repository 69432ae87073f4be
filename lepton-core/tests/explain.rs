//! `CoreScheduler::explain`: a waiting task's refusals, counted per reason,
//! against a recount from how the test built each node.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use lepton_core::cluster::{ClusterNode, NodeFilter};
use lepton_core::model::{Dimension, NodeState, Taint, Toleration};
use lepton_core::scheduler::{Explanation, TaskState};
use lepton_core::{
    CoreScheduler, FeasibleNodes, Misfit, NodeId, NodeSpec, Placement, Policy, Resources,
    Scheduler, TaskId, TaskSpec,
};

/// First fit, with a filter that refuses node `.0` if there is one.
struct FirstFit(Option<NodeId>);

impl Policy for FirstFit {
    fn name(&self) -> &str {
        "first-fit"
    }
    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        nodes.first_fit().map(|node| Placement::on(node.id()))
    }
    fn filter(&self) -> Option<Arc<dyn NodeFilter>> {
        let refused = self.0?;
        let filter = move |_: &TaskSpec, node: &ClusterNode| {
            if node.id() == refused {
                Err(Misfit::Policy(
                    format!("node {} is reserved", refused.0).into(),
                ))
            } else {
                Ok(())
            }
        };
        Some(Arc::new(filter))
    }
}

fn node(id: u64, cores: u64) -> NodeSpec {
    NodeSpec::new(NodeId(id), Resources::new(cores * 1_000, 16_384))
}

/// Nodes 1–3 too small, 4 cordoned, 5 tainted, 6 refused by the filter.
fn scheduler() -> CoreScheduler {
    let mut scheduler = CoreScheduler::new(Box::new(FirstFit(Some(NodeId(6)))));
    for spec in [
        node(1, 2),
        node(2, 2),
        node(3, 1),
        node(4, 8),
        node(5, 8).with_taint(Taint::new("gpu", "true")),
        node(6, 8),
    ] {
        scheduler.add_node(&spec).unwrap();
    }
    scheduler.cordon(NodeId(4)).unwrap();
    scheduler
}

#[test]
fn a_waiting_task_hears_every_nodes_refusal_counted_per_reason() {
    let mut scheduler = scheduler();
    let task = TaskSpec::new(TaskId(7), Resources::new(4_000, 1_024));
    scheduler.submit(&task).unwrap();
    assert!(scheduler.schedule().is_empty());
    let explanation = scheduler.explain(TaskId(7)).unwrap();
    assert!(matches!(
        explanation.state,
        TaskState::BackingOff { attempts: 1, .. }
    ));
    let refusals = explanation.refusals.clone().unwrap();
    assert_eq!(explanation.nodes, 6);
    assert_eq!(refusals.available, 0);
    assert_eq!(
        refusals.reasons,
        vec![
            (Misfit::Insufficient(Dimension::CpuMilli), 3),
            (Misfit::NotReady(NodeState::Cordoned), 1),
            (
                Misfit::Taint {
                    key: "gpu".into(),
                    value: "true".into()
                },
                1
            ),
            (Misfit::Policy("node 6 is reserved".into()), 1),
        ]
    );
    let text = explanation.to_string();
    assert!(
        text.starts_with(
            "task 7 waits: 0/6 nodes are available: 3 not enough free cpu_milli, \
             1 the node is cordoned, not ready, 1 taint gpu=true is not tolerated, \
             1 the policy refuses it: node 6 is reserved; backing off until"
        ),
        "{text}"
    );
    assert!(text.ends_with("(1 attempt found no node)"), "{text}");
}

#[test]
fn room_made_shows_as_an_available_node() {
    let mut scheduler = scheduler();
    let task = TaskSpec::new(TaskId(7), Resources::new(4_000, 1_024));
    scheduler.submit(&task).unwrap();
    assert!(scheduler.schedule().is_empty());
    scheduler.uncordon(NodeId(4)).unwrap();
    let refusals = scheduler.explain(TaskId(7)).unwrap().refusals.unwrap();
    assert_eq!(refusals.available, 1);
    assert_eq!(refusals.reasons.iter().map(|(_, n)| n).sum::<usize>(), 5);
}

#[test]
fn tasks_that_do_not_wait_and_unknown_ones() {
    let mut scheduler = scheduler();
    let task = TaskSpec::new(TaskId(8), Resources::new(1_000, 1_024));
    scheduler.submit(&task).unwrap();
    let placed = scheduler.schedule();
    assert_eq!(placed.len(), 1);
    let explanation = scheduler.explain(TaskId(8)).unwrap();
    assert_eq!(explanation.refusals, None);
    assert_eq!(explanation.to_string(), "task 8 runs on node 1");
    assert_eq!(scheduler.explain(TaskId(99)), None::<Explanation>);

    // Accepted through a handle, not yet taken in by a cycle: no spec yet.
    let submitter = scheduler.submitter();
    submitter
        .submit(&TaskSpec::new(TaskId(9), Resources::new(1_000, 1)))
        .unwrap();
    let waiting = scheduler.explain(TaskId(9)).unwrap();
    assert_eq!(waiting.refusals, None);
    assert_eq!(
        waiting.to_string(),
        "task 9 waits: submitted, not yet taken in by a cycle; queued for the next cycle"
    );
}

/// A node as the property test builds it: cores, GiB, cordoned, tainted.
type Built = (u64, u64, bool, bool);

/// Each node's first refusal of a task asking `cores` and `gib` (tolerating
/// the taint or not), recounted from how the test built the nodes, in the
/// order a node checks: its state, then CPU, memory, then taints.
fn recount(
    nodes: &[Built],
    cores: u64,
    gib: u64,
    tolerates: bool,
) -> (usize, Vec<(Misfit, usize)>) {
    let mut available = 0;
    let mut reasons: Vec<(Misfit, usize)> = Vec::new();
    for &(node_cores, node_gib, cordoned, tainted) in nodes {
        let refusal = if cordoned {
            Some(Misfit::NotReady(NodeState::Cordoned))
        } else if node_cores < cores {
            Some(Misfit::Insufficient(Dimension::CpuMilli))
        } else if node_gib < gib {
            Some(Misfit::Insufficient(Dimension::MemoryMib))
        } else if tainted && !tolerates {
            Some(Misfit::Taint {
                key: "gpu".into(),
                value: "true".into(),
            })
        } else {
            None
        };
        match refusal {
            None => available += 1,
            Some(misfit) => match reasons.iter_mut().find(|(m, _)| *m == misfit) {
                Some((_, count)) => *count += 1,
                None => reasons.push((misfit, 1)),
            },
        }
    }
    reasons.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
    (available, reasons)
}

proptest::proptest! {
    /// On random clusters, a task that waits hears exactly the refusals a
    /// recount from the nodes' making gives; one that found a node had one.
    #[test]
    fn refusals_match_a_recount_of_the_nodes(
        nodes in proptest::collection::vec((1u64..9, 1u64..9, proptest::bool::weighted(0.2), proptest::bool::weighted(0.3)), 1..40),
        cores in 1u64..10,
        gib in 1u64..10,
        tolerates in proptest::bool::ANY,
    ) {
        let mut scheduler = CoreScheduler::new(Box::new(FirstFit(None)));
        for (i, &(node_cores, node_gib, cordoned, tainted)) in nodes.iter().enumerate() {
            let id = NodeId(i as u64 + 1);
            let mut spec = NodeSpec::new(id, Resources::new(node_cores * 1_000, node_gib * 1_024));
            if tainted {
                spec = spec.with_taint(Taint::new("gpu", "true"));
            }
            scheduler.add_node(&spec).unwrap();
            if cordoned {
                scheduler.cordon(id).unwrap();
            }
        }
        let mut task = TaskSpec::new(TaskId(1), Resources::new(cores * 1_000, gib * 1_024));
        if tolerates {
            task = task.with_toleration(Toleration::key("gpu"));
        }
        scheduler.submit(&task).unwrap();
        let placed = !scheduler.schedule().is_empty();
        let (available, reasons) = recount(&nodes, cores, gib, tolerates);
        let explanation = scheduler.explain(TaskId(1)).unwrap();
        if placed {
            proptest::prop_assert!(available > 0);
            proptest::prop_assert_eq!(explanation.refusals, None);
        } else {
            let refusals = explanation.refusals.unwrap();
            proptest::prop_assert_eq!(refusals.available, 0);
            proptest::prop_assert_eq!(available, 0);
            proptest::prop_assert_eq!(refusals.reasons, reasons);
        }
    }
}
