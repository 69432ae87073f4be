//! A node standing for a pool of machines (`NodeSpec::max_task`): it offers
//! the pool's total, but no task larger than one machine lands there.

#![allow(clippy::unwrap_used)]

use lepton_test_support as support;

use lepton_core::model::Dimension;
use lepton_core::scheduler::TaskState;
use lepton_core::{
    ClusterState, CoreScheduler, Misfit, NodeId, NodeSpec, Resources, Scheduler, TaskId, TaskSpec,
};
use support::first_fit;
use support::invariants::check_invariants;

/// Three machines of 2 cores and 1 GiB, as one node.
fn pool() -> NodeSpec {
    NodeSpec::new(NodeId(1), Resources::new(6_000, 3_072))
        .with_max_task(Resources::new(2_000, 1_024))
}

fn server() -> NodeSpec {
    NodeSpec::new(NodeId(2), Resources::new(4_000, 8_192))
}

#[test]
fn a_task_larger_than_one_machine_is_a_misfit_naming_the_dimension() {
    let mut cluster = ClusterState::new();
    cluster.add_node(pool()).unwrap();
    let node = cluster.node(NodeId(1)).unwrap();
    // The node is empty: a rule, not a question of free capacity.
    let check = |task: &TaskSpec| cluster.feasible(task, None).check(node);
    let small = TaskSpec::new(TaskId(1), Resources::new(2_000, 1_024));
    assert_eq!(check(&small), Ok(()));
    let wide = TaskSpec::new(TaskId(2), Resources::new(2_001, 512));
    assert_eq!(
        check(&wide),
        Err(Misfit::LargerThanOneTask(Dimension::CpuMilli))
    );
    let tall = TaskSpec::new(TaskId(3), Resources::new(1_000, 1_025));
    assert_eq!(
        check(&tall),
        Err(Misfit::LargerThanOneTask(Dimension::MemoryMib))
    );
}

#[test]
fn the_scheduler_places_large_tasks_elsewhere_or_keeps_them_queued() {
    let mut scheduler = CoreScheduler::new(first_fit());
    scheduler.add_node(&pool()).unwrap();
    scheduler.add_node(&server()).unwrap();
    // First fit tries the pool first.
    let small = TaskSpec::new(TaskId(1), Resources::new(1_000, 512));
    let large = TaskSpec::new(TaskId(2), Resources::new(3_000, 512));
    let huge = TaskSpec::new(TaskId(3), Resources::new(5_000, 512));
    for task in [&small, &large, &huge] {
        scheduler.submit(task).unwrap();
    }
    let placed: Vec<(TaskId, NodeId)> = scheduler
        .schedule()
        .iter()
        .map(|a| (a.task, a.node))
        .collect();
    check_invariants(&scheduler, &[TaskId(1), TaskId(2), TaskId(3)]);
    assert_eq!(
        placed,
        [(TaskId(1), NodeId(1)), (TaskId(2), NodeId(2))],
        "the pool has 5 free cores, but none of its machines has 3 or 5"
    );
    // Fits nowhere: it waits (backing off), unplaced.
    assert!(
        matches!(
            scheduler.task_state(TaskId(3)),
            Some(TaskState::BackingOff { .. })
        ),
        "{:?}",
        scheduler.task_state(TaskId(3))
    );
}

#[test]
fn max_task_is_optional_in_json() {
    let plain: NodeSpec =
        serde_json::from_str(r#"{"id": 1, "capacity": {"cpu_milli": 1000, "memory_mib": 64}}"#)
            .unwrap();
    assert_eq!(plain.max_task, None);
    let pooled: NodeSpec = serde_json::from_str(
        r#"{"id": 1, "capacity": {"cpu_milli": 6000, "memory_mib": 3072},
            "max_task": {"cpu_milli": 2000, "memory_mib": 1024}}"#,
    )
    .unwrap();
    assert_eq!(pooled.max_task, pool().max_task);
}
