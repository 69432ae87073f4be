//! Backfill: a large task reserves the node that frees soonest, small
//! tasks that end in time fill the room around it, and — when every task
//! ends within its time limit — the reserved task starts when its
//! reservation does.

use std::sync::Arc;

use proptest::prelude::*;

use crate::clock::{ManualClock, Timestamp};
use crate::scheduler::testing::{placed, scheduler_on};
use crate::scheduler::{SchedulerConfig, TaskState};
use crate::{CoreScheduler, NodeId, Resources, Scheduler, TaskId, TaskSpec};

fn scheduler(cores: &[u64], backfill: bool) -> (CoreScheduler, Arc<ManualClock>) {
    let config = SchedulerConfig {
        backfill,
        preemption: false,
        ..SchedulerConfig::default()
    };
    scheduler_on(cores, config, None)
}

/// `cores` for at most `limit_s` seconds (none: without limit).
fn task(id: u64, cores: u64, limit_s: Option<u64>) -> TaskSpec {
    let mut spec = TaskSpec::new(TaskId(id), Resources::new(cores * 1_000, 64));
    spec.timeout_ms = limit_s.map(|s| s * 1_000);
    spec
}

fn seconds(s: u64) -> Timestamp {
    Timestamp(s * 1_000_000)
}

#[test]
fn a_large_task_reserves_and_small_ones_fill_around_it_in_time() {
    for backfill in [false, true] {
        let (mut scheduler, clock) = scheduler(&[8], backfill);
        scheduler.submit(&task(1, 6, Some(100))).unwrap();
        assert_eq!(placed(&mut scheduler), [1]);
        scheduler.submit(&task(2, 8, Some(100))).unwrap();
        assert!(placed(&mut scheduler).is_empty());
        // Ends before the node is needed: fills the room either way.
        scheduler.submit(&task(3, 1, Some(50))).unwrap();
        // Would still run then, or may run for ever: only without backfill.
        scheduler.submit(&task(4, 1, Some(200))).unwrap();
        scheduler.submit(&task(5, 1, None)).unwrap();
        let filled = placed(&mut scheduler);
        if !backfill {
            assert_eq!(filled, [3, 4]);
            assert_eq!(scheduler.reservation(), None);
            continue;
        }
        assert_eq!(filled, [3]);
        let reservation = scheduler.reservation().unwrap();
        assert_eq!(
            (reservation.task, reservation.node, reservation.start),
            (TaskId(2), NodeId(1), seconds(100))
        );
        let why = scheduler.explain(TaskId(2)).unwrap().to_string();
        assert!(
            why.contains("; node 1 is reserved for it from 100.000000s"),
            "{why}"
        );
        // Task 1 ends at its limit, task 3 before: task 2 starts on time.
        clock.set(seconds(50));
        scheduler
            .complete(scheduler.current_run(TaskId(3)).unwrap())
            .unwrap();
        assert!(placed(&mut scheduler).is_empty());
        clock.set(seconds(100));
        scheduler
            .complete(scheduler.current_run(TaskId(1)).unwrap())
            .unwrap();
        assert_eq!(placed(&mut scheduler), [2]);
        assert_eq!(scheduler.reservation(), None);
    }
}

proptest! {
    /// Tasks of random sizes and time limits, each run lasting exactly its
    /// limit (the longest it may): whenever a reservation's start comes,
    /// the cycle at that second starts its task.
    #[test]
    fn a_reserved_task_starts_when_its_reservation_does(
        tasks in proptest::collection::vec((1..=8u64, 5..=60u64, 0..30u64), 1..30),
    ) {
        let (mut scheduler, clock) = scheduler(&[8, 8], true);
        let mut ends: Vec<(u64, TaskId)> = Vec::new();
        for now in 0..600u64 {
            clock.set(seconds(now));
            for (i, &(cores, limit, at)) in tasks.iter().enumerate() {
                if at == now {
                    scheduler.submit(&task(i as u64, cores, Some(limit))).unwrap();
                }
            }
            for &(_, id) in ends.iter().filter(|(end, _)| *end == now) {
                scheduler.complete(scheduler.current_run(id).unwrap()).unwrap();
            }
            let due = scheduler.reservation().filter(|r| r.start <= seconds(now));
            for assignment in scheduler.schedule() {
                let limit = tasks[assignment.task.0 as usize].1;
                ends.push((now + limit, assignment.task));
            }
            if let Some(reservation) = due {
                prop_assert!(
                    matches!(scheduler.task_state(reservation.task), Some(TaskState::Running { .. })),
                    "{:?} not started at {}s", reservation, now
                );
            }
        }
        let counts = scheduler.task_counts();
        prop_assert_eq!(counts.completed + counts.running, tasks.len());
    }
}
