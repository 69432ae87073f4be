//! `SchedulerConfig::retry_waiting_on_release`: a task that found no node
//! is tried again at the first cycle after resources are freed, not only
//! when its backoff ends.

#![allow(clippy::unwrap_used)]

use lepton_test_support as support;

use std::sync::Arc;

use lepton_core::clock::ManualClock;
use lepton_core::scheduler::{SchedulerConfig, TaskState};
use lepton_core::{
    Assignment, CoreScheduler, NodeId, NodeSpec, Resources, Run, Scheduler, TaskId, TaskSpec,
};
use support::first_fit;

fn scheduler(retry_on_release: bool) -> (CoreScheduler, ManualClock) {
    let clock = ManualClock::new();
    let mut config = SchedulerConfig::default();
    config.retry_waiting_on_release = retry_on_release;
    let mut scheduler = CoreScheduler::builder(first_fit())
        .clock(Arc::new(clock.clone()))
        .config(config)
        .build();
    scheduler
        .add_node(&NodeSpec::new(NodeId(1), Resources::new(1_000, 1_024)))
        .unwrap();
    (scheduler, clock)
}

fn task(id: u64) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(1_000, 64))
}

/// Places task 1, leaves task 2 waiting, completes task 1 a little later
/// (before task 2's backoff ends); what the next cycle places.
fn after_a_completion(retry_on_release: bool) -> Vec<Run> {
    let (mut scheduler, clock) = scheduler(retry_on_release);
    scheduler.submit(&task(1)).unwrap();
    scheduler.submit(&task(2)).unwrap();
    let first: Vec<Run> = scheduler.schedule().iter().map(Assignment::run).collect();
    assert_eq!(first, [Run::new(TaskId(1), 1)]);
    assert!(matches!(
        scheduler.task_state(TaskId(2)),
        Some(TaskState::BackingOff { .. })
    ));
    clock.advance(std::time::Duration::from_millis(100));
    scheduler.complete(Run::new(TaskId(1), 1)).unwrap();
    scheduler.schedule().iter().map(Assignment::run).collect()
}

#[test]
fn a_waiting_task_is_placed_as_soon_as_room_is_freed() {
    assert_eq!(after_a_completion(true), [Run::new(TaskId(2), 1)]);
}

#[test]
fn off_by_default_the_waiting_task_keeps_its_backoff() {
    assert!(!SchedulerConfig::default().retry_waiting_on_release);
    assert_eq!(after_a_completion(false), []);
}

#[test]
fn a_failed_run_keeps_its_retry_delay_even_when_room_is_freed() {
    let (mut scheduler, _clock) = scheduler(true);
    scheduler.submit(&task(1)).unwrap();
    // No backend: runs are reported by hand.
    let _placed = scheduler.schedule();
    // Its failure frees the node, but a failed task waits its retry delay.
    scheduler
        .fail(Run::new(TaskId(1), 1), "exit code 1")
        .unwrap();
    assert!(scheduler.schedule().is_empty());
}
