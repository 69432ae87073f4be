//! A scheduler's state saved as JSON and restored into a new scheduler:
//! the same nodes, tasks, attempts, failures and bookings, and the same
//! decisions from there on.

#![allow(clippy::unwrap_used)]

use lepton_test_support as support;

use std::sync::Arc;
use std::time::Duration;

use lepton_core::clock::ManualClock;
use lepton_core::cluster::ClusterNode;
use lepton_core::model::NodeState;
use lepton_core::scheduler::{SchedulerState, TaskState};
use lepton_core::{
    Assignment, CoreScheduler, Error, GpuRequest, Gpus, NodeId, NodeSpec, Resources, Run,
    Scheduler, TaskId, TaskSpec,
};
use support::first_fit;

fn scheduler(clock: &ManualClock) -> CoreScheduler {
    CoreScheduler::builder(first_fit())
        .clock(Arc::new(clock.clone()))
        .build()
}

/// A scheduler with a task in every state.
fn busy(clock: &ManualClock) -> CoreScheduler {
    let mut scheduler = scheduler(clock);
    scheduler
        .add_node(
            &NodeSpec::new(NodeId(1), Resources::new(4_000, 4_096)).with_gpus(Gpus::new("T4", 2)),
        )
        .unwrap();
    scheduler
        .add_node(&NodeSpec::new(NodeId(2), Resources::new(2_000, 2_048)).with_name("small"))
        .unwrap();
    let task = |id: u64, cpu: u64| {
        TaskSpec::new(TaskId(id), Resources::new(cpu, 64)).with_name(format!("t{id}"))
    };
    scheduler.submit(&task(1, 500)).unwrap(); // completes
    scheduler
        .submit(&task(2, 500).with_gpu(GpuRequest::shared(300)))
        .unwrap(); // runs on a GPU share
    scheduler.submit(&task(3, 500)).unwrap(); // fails once, then runs again
    scheduler.submit(&task(4, 500)).unwrap(); // cancelled
    let _placed = scheduler.schedule(); // no backend: runs are reported by hand
    scheduler.complete(Run::new(TaskId(1), 1)).unwrap();
    scheduler
        .fail(Run::new(TaskId(3), 1), "exit code 3")
        .unwrap();
    scheduler.cancel(TaskId(4)).unwrap();
    clock.advance(Duration::from_secs(30));
    let retried = scheduler.schedule();
    assert_eq!(
        retried.iter().map(Assignment::run).collect::<Vec<_>>(),
        [Run::new(TaskId(3), 2)]
    );
    scheduler.submit(&task(5, 9_000)).unwrap(); // fits nowhere: waits
    let _placed = scheduler.schedule(); // no backend: runs are reported by hand
    scheduler.cordon(NodeId(2)).unwrap();
    scheduler
}

#[test]
fn a_saved_state_restores_to_the_same_scheduler() {
    let clock = ManualClock::new();
    let original = busy(&clock);
    let saved = serde_json::to_string(&original.snapshot()).unwrap();
    let state: SchedulerState = serde_json::from_str(&saved).unwrap();
    let mut restored = scheduler(&clock);
    restored.restore(&state).unwrap();

    assert_eq!(serde_json::to_string(&restored.snapshot()).unwrap(), saved);
    // A task waiting out its backoff is restored queued.
    let (before, after) = (original.task_counts(), restored.task_counts());
    assert_eq!((before.backing_off, after.backing_off), (1, 0));
    assert_eq!(after.queued, before.queued + before.backing_off);
    assert_eq!(
        (
            after.running,
            after.completed,
            after.failed,
            after.cancelled
        ),
        (
            before.running,
            before.completed,
            before.failed,
            before.cancelled
        )
    );
    assert_eq!(
        restored.cluster().utilization(),
        original.cluster().utilization()
    );
    assert_eq!(
        restored.failures(TaskId(3)),
        ["attempt 1 on n-1: exit code 3"]
    );
    assert_eq!(
        restored.task_state(TaskId(2)),
        Some(&TaskState::Running { node: NodeId(1) })
    );
    assert_eq!(
        restored
            .cluster()
            .allocation(TaskId(2))
            .map(|a| a.gpus.to_vec()),
        original
            .cluster()
            .allocation(TaskId(2))
            .map(|a| a.gpus.to_vec())
    );
    assert_eq!(
        restored.cluster().node(NodeId(2)).map(ClusterNode::state),
        Some(NodeState::Cordoned)
    );
    // Run ids go on: task 3's next run is its third.
    restored
        .fail(Run::new(TaskId(3), 2), "exit code 3")
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let next: Vec<Run> = restored.schedule().iter().map(Assignment::run).collect();
    assert!(next.contains(&Run::new(TaskId(3), 3)), "{next:?}");
    // Ended tasks stay ended, and their ids taken.
    assert_eq!(restored.task_state(TaskId(1)), Some(&TaskState::Completed));
    assert!(matches!(
        restored.submit(&TaskSpec::new(TaskId(4), Resources::new(1, 1))),
        Err(Error::DuplicateTask { .. })
    ));
}

#[test]
fn a_state_that_does_not_hold_together_is_refused() {
    let clock = ManualClock::new();
    let mut state = busy(&clock).snapshot();
    // Task 2 running on a node the state does not have.
    state.nodes.retain(|node| node.spec.id != NodeId(1));
    let mut restored = scheduler(&clock);
    let error = restored.restore(&state).unwrap_err();
    assert!(matches!(error, Error::UnknownNode { .. }), "{error}");
}
