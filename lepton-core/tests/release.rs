//! `SchedulerConfig::retry_waiting_on_release`: a task that found no node
//! is tried again at the first cycle after a change could let it fit, not
//! on a timer of its own; a long queue with nothing changing costs nothing,
//! and a change costs what it touches.

#![allow(clippy::unwrap_used)]

use lepton_test_support as support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lepton_core::clock::ManualClock;
use lepton_core::model::Priority;
use lepton_core::scheduler::{SchedulerConfig, TaskState};
use lepton_core::{
    policy_fn, Assignment, CoreScheduler, FeasibleNodes, NodeId, NodeSpec, Placement, Resources,
    Run, Scheduler, TaskId, TaskSpec,
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

/// An event-driven scheduler over one node of `cpu_milli`, with a first-fit
/// policy that counts how often it is asked.
fn counted(cpu_milli: u64) -> (CoreScheduler, ManualClock, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let policy = policy_fn("counted", move |nodes: &FeasibleNodes<'_>| {
        counter.fetch_add(1, Ordering::SeqCst);
        nodes.iter().next().map(|node| Placement::on(node.id()))
    });
    let clock = ManualClock::new();
    let mut config = SchedulerConfig::default();
    config.retry_waiting_on_release = true;
    let mut scheduler = CoreScheduler::builder(Box::new(policy))
        .clock(Arc::new(clock.clone()))
        .config(config)
        .build();
    scheduler
        .add_node(&NodeSpec::new(
            NodeId(1),
            Resources::new(cpu_milli, 1 << 20),
        ))
        .unwrap();
    (scheduler, clock, asked)
}

fn sized(id: u64, cpu_milli: u64) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(cpu_milli, 64))
}

#[test]
fn a_long_queue_costs_nothing_while_nothing_changes() {
    let (mut scheduler, clock, asked) = counted(1_000);
    scheduler.submit(&sized(1, 1_000)).unwrap();
    for id in 2..=10_001 {
        scheduler.submit(&sized(id, 500)).unwrap();
    }
    let placed = scheduler.schedule();
    assert_eq!(placed.len(), 1);
    assert_eq!(asked.swap(0, Ordering::SeqCst), 10_001, "each tried once");
    // Cycles go by; nothing changes: nobody is asked about.
    for _ in 0..100 {
        clock.advance(Duration::from_millis(50));
        assert!(scheduler.schedule().is_empty());
    }
    assert_eq!(asked.swap(0, Ordering::SeqCst), 0);
    // After waiting_recheck, the class's first task alone is tried again.
    clock.advance(Duration::from_secs(60));
    assert!(scheduler.schedule().is_empty());
    assert_eq!(asked.swap(0, Ordering::SeqCst), 1);
    // Room for two: two placed, in arrival order, and one more asked about.
    scheduler.complete(placed[0].run()).unwrap();
    let next: Vec<u64> = scheduler.schedule().iter().map(|a| a.task.0).collect();
    assert_eq!(next, [2, 3]);
    assert_eq!(asked.swap(0, Ordering::SeqCst), 3);
}

#[test]
fn room_on_a_node_wakes_only_what_fits_there() {
    let (mut scheduler, _clock, asked) = counted(1_000);
    scheduler.submit(&sized(1, 600)).unwrap();
    scheduler.submit(&sized(2, 400)).unwrap();
    // Too big for the node whatever runs, and a size that fits once 1 ends.
    scheduler.submit(&sized(3, 900)).unwrap();
    scheduler.submit(&sized(4, 500)).unwrap();
    let first = scheduler.schedule();
    assert_eq!(first.len(), 2);
    asked.store(0, Ordering::SeqCst);
    // Task 2 ends: 400 free, which neither waiting task fits in.
    scheduler.complete(first[1].run()).unwrap();
    assert!(scheduler.schedule().is_empty());
    assert_eq!(asked.swap(0, Ordering::SeqCst), 0);
    // Task 1 ends: 1,000 free; both fit, the older first.
    scheduler.complete(first[0].run()).unwrap();
    let placed: Vec<u64> = scheduler.schedule().iter().map(|a| a.task.0).collect();
    assert_eq!(placed, [3]);
    assert_eq!(asked.swap(0, Ordering::SeqCst), 2, "3 placed, 4 tried");
}

#[test]
fn room_that_lets_a_waiting_task_preempt_wakes_it() {
    let (mut scheduler, _clock, _asked) = counted(1_000);
    let high = Priority(150);
    scheduler
        .submit(&sized(1, 400).with_priority(high))
        .unwrap();
    scheduler
        .submit(&sized(2, 300).with_priority(high))
        .unwrap();
    scheduler
        .submit(&sized(3, 300).with_priority(Priority(50)))
        .unwrap();
    let running = scheduler.schedule();
    assert_eq!(running.len(), 3);
    // Evicting task 3 would free 300 of the 600 it needs: it waits.
    scheduler
        .submit(&sized(4, 600).with_priority(high))
        .unwrap();
    assert!(scheduler.schedule().is_empty());
    // Task 2 ends: 300 free, not enough to fit, enough to preempt task 3.
    scheduler.complete(running[1].run()).unwrap();
    let next = scheduler.schedule();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].task, TaskId(4));
    assert_eq!(next[0].evicts, [Run::new(TaskId(3), 1)]);
}

#[test]
fn a_cancelled_waiting_task_leaves_its_class_to_the_next() {
    let (mut scheduler, _clock, _asked) = counted(1_000);
    scheduler.submit(&sized(1, 1_000)).unwrap();
    scheduler.submit(&sized(2, 1_000)).unwrap();
    scheduler.submit(&sized(3, 1_000)).unwrap();
    let first = scheduler.schedule();
    scheduler.cancel(TaskId(2)).unwrap();
    scheduler.complete(first[0].run()).unwrap();
    let placed: Vec<u64> = scheduler.schedule().iter().map(|a| a.task.0).collect();
    assert_eq!(placed, [3]);
}

#[test]
fn tracked_changes_name_each_task_whose_state_changed_once() {
    let (mut scheduler, _clock, _asked) = counted(1_000);
    assert!(scheduler.take_changes().is_empty(), "untracked: none");
    scheduler.track_changes();
    scheduler.submit(&sized(1, 1_000)).unwrap();
    scheduler.submit(&sized(2, 1_000)).unwrap();
    let submitter = scheduler.submitter();
    submitter.submit(&sized(3, 1_000)).unwrap();
    scheduler.cancel(TaskId(3)).unwrap();
    let first = scheduler.schedule();
    let mut changed = scheduler.take_changes();
    changed.sort();
    // 1 placed, 2 found no node, 3 cancelled before it was taken in.
    assert_eq!(changed, [TaskId(1), TaskId(2), TaskId(3)]);
    // Nothing happens: nothing changed.
    assert!(scheduler.schedule().is_empty());
    assert!(scheduler.take_changes().is_empty());
    scheduler.complete(first[0].run()).unwrap();
    let _ = scheduler.schedule();
    let mut changed = scheduler.take_changes();
    changed.sort();
    assert_eq!(changed, [TaskId(1), TaskId(2)]);
}
