//! `CoreScheduler::plan`: a dry run says where tasks would go, whom they
//! would preempt and why the rest would wait, and changes nothing.

#![allow(clippy::unwrap_used)]

use lepton_test_support as support;

use lepton_core::model::{Dimension, Priority};
use lepton_core::{
    CoreScheduler, Misfit, NodeId, NodeSpec, Resources, Scheduler, TaskId, TaskSpec,
};

fn task(id: u64, cores: u64, priority: u8) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(cores * 1_000, 1_024))
        .with_priority(Priority(priority))
}

/// Node 1: 8 cores, node 2: 4; task 1 (6 cores, priority 0) runs on node 1.
fn scheduler() -> CoreScheduler {
    let mut scheduler = CoreScheduler::new(support::first_fit());
    for (id, cores) in [(1, 8), (2, 4)] {
        let node = NodeSpec::new(NodeId(id), Resources::new(cores * 1_000, 16_384));
        scheduler.add_node(&node).unwrap();
    }
    scheduler.submit(&task(1, 6, 0)).unwrap();
    let placed = scheduler.schedule();
    assert_eq!(placed[0].node, NodeId(1));
    scheduler
}

#[test]
fn a_plan_places_preempts_and_explains_without_changing_anything() {
    let scheduler = scheduler();
    let before = serde_json::to_string(&scheduler.snapshot()).unwrap();
    let tasks = [
        task(10, 3, 0),  // fits on node 2
        task(11, 7, 5),  // fits nowhere free; preempts task 1 on node 1
        task(12, 16, 0), // fits nowhere at all
    ];
    let plan = scheduler.plan(support::first_fit(), &tasks).unwrap();

    let placed: Vec<_> = plan
        .placed
        .iter()
        .map(|p| (p.task, p.node, p.preempts.clone()))
        .collect();
    assert!(
        placed.contains(&(TaskId(10), NodeId(2), vec![])),
        "{placed:?}"
    );
    assert!(
        placed.contains(&(TaskId(11), NodeId(1), vec![TaskId(1)])),
        "{placed:?}"
    );
    assert_eq!(plan.waiting.len(), 1);
    let waits = &plan.waiting[0];
    assert_eq!(waits.task, TaskId(12));
    let refusals = waits.refusals.clone().unwrap();
    assert_eq!(
        refusals.reasons,
        vec![(Misfit::Insufficient(Dimension::CpuMilli), 2)]
    );

    // Nothing changed: the same state, no new task known.
    assert_eq!(
        serde_json::to_string(&scheduler.snapshot()).unwrap(),
        before
    );
    assert_eq!(scheduler.task_state(TaskId(10)), None);
}

#[test]
fn a_plan_refuses_what_submit_refuses() {
    let scheduler = scheduler();
    // Task 1 exists already.
    let error = scheduler
        .plan(support::first_fit(), &[task(1, 1, 0)])
        .unwrap_err();
    assert!(error.to_string().contains('1'), "{error}");
}
