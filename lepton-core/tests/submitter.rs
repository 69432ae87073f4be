//! Submission through [`Submitter`] handles while the scheduler runs: every
//! task accepted is scheduled exactly once, duplicates and invalid tasks are
//! refused at once in the submitting thread, counts never miss a task, and
//! priority order and cancellation hold before a cycle takes a task in.

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

use lepton_test_support as support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use lepton_core::model::Priority;
use lepton_core::scheduler::{Submitter, TaskCounts, TaskState};
use lepton_core::{
    policy_fn, CoreScheduler, Error, FeasibleNodes, GpuRequest, NodeId, NodeSpec, Placement,
    Resources, Scheduler, TaskId, TaskSpec,
};
use support::first_fit;
use support::invariants::check_invariants;

const THREADS: u64 = 4;

fn task(id: u64, priority: u8) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(10, 10)).with_priority(Priority(priority))
}

/// A scheduler with one node that holds a million tasks: no task ever
/// waits for room.
fn scheduler() -> CoreScheduler {
    let mut scheduler = CoreScheduler::new(first_fit());
    let node = NodeSpec::new(NodeId(1), Resources::new(10_000_000, 10_000_000));
    scheduler.add_node(&node).unwrap();
    scheduler
}

#[test]
fn four_threads_submit_while_one_schedules_and_every_task_runs_exactly_once() {
    const PER_THREAD: u64 = 20_000;
    const TOTAL: usize = (THREADS * PER_THREAD) as usize;
    let mut scheduler = scheduler();
    let submitter = scheduler.submitter();
    let accepted = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let mut assigned: HashMap<TaskId, u32> = HashMap::new();
    thread::scope(|scope| {
        let submitters: Vec<_> = (0..THREADS)
            .map(|t| {
                let (submitter, accepted) = (submitter.clone(), &accepted);
                scope.spawn(move || {
                    for i in 0..PER_THREAD {
                        let id = t * PER_THREAD + i;
                        // Priorities vary so that entries overtake each other.
                        assert_eq!(submitter.submit(&task(id, (id % 7) as u8)), Ok(TaskId(id)));
                        accepted.fetch_add(1, Ordering::Release);
                    }
                })
            })
            .collect();
        scope.spawn(|| {
            for submitter in submitters {
                submitter.join().unwrap();
            }
            done.store(true, Ordering::Release);
        });

        let deadline = Instant::now() + Duration::from_secs(120);
        let mut completed = 0;
        while completed < TOTAL {
            assert!(
                Instant::now() < deadline,
                "{completed} of {TOTAL} completed"
            );
            // Every accepted task is counted from then on, taken in or not.
            let acknowledged = accepted.load(Ordering::Acquire);
            let counts = scheduler.task_counts();
            assert!(
                counts.total() >= acknowledged,
                "{counts:?} misses some of {acknowledged} accepted tasks"
            );
            for assignment in scheduler.schedule() {
                *assigned.entry(assignment.task).or_default() += 1;
                scheduler.complete(assignment.run()).unwrap();
                completed += 1;
            }
        }
        assert!(
            done.load(Ordering::Acquire),
            "completed more than was submitted"
        );
    });
    assert_eq!(assigned.len(), TOTAL, "tasks assigned");
    let twice: Vec<_> = assigned.iter().filter(|(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "assigned more than once: {twice:?}");
    assert!(scheduler.schedule().is_empty());
    let counts = scheduler.report().tasks;
    assert_eq!(counts.completed, TOTAL);
    assert_eq!(counts.total(), TOTAL, "{counts:?}");
    let ids: Vec<TaskId> = (0..TOTAL as u64).map(TaskId).collect();
    check_invariants(&scheduler, &ids);
}

#[test]
fn a_duplicate_id_across_threads_is_accepted_exactly_once() {
    const IDS: u64 = 2_000;
    let mut scheduler = scheduler();
    let submitter = scheduler.submitter();
    let barrier = Barrier::new(THREADS as usize);
    let results: Vec<Vec<Result<TaskId, Error>>> = thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (submitter, barrier) = (submitter.clone(), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    (0..IDS)
                        .map(|id| submitter.submit(&task(id, 0)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for id in 0..IDS {
        let task = TaskId(id);
        let outcomes: Vec<_> = results.iter().map(|r| &r[id as usize]).collect();
        assert_eq!(
            outcomes.iter().filter(|r| ***r == Ok(task)).count(),
            1,
            "{task}: {outcomes:?}"
        );
        assert_eq!(
            outcomes
                .iter()
                .filter(|r| ***r == Err(Error::DuplicateTask { task }))
                .count(),
            THREADS as usize - 1
        );
    }
    assert_eq!(scheduler.task_counts().queued, IDS as usize);

    // The scheduler's own submit and the handles share one rule.
    assert_eq!(
        scheduler.submit(&task(7, 0)),
        Err(Error::DuplicateTask { task: TaskId(7) })
    );
    assert_eq!(scheduler.submit(&task(IDS, 0)), Ok(TaskId(IDS)));
    assert_eq!(
        submitter.submit(&task(IDS, 0)),
        Err(Error::DuplicateTask { task: TaskId(IDS) })
    );

    assert_eq!(scheduler.schedule().len(), IDS as usize + 1);
    let ids: Vec<TaskId> = (0..=IDS).map(TaskId).collect();
    check_invariants(&scheduler, &ids);
}

#[test]
fn ids_submitted_before_the_first_handle_are_refused_through_it() {
    let mut scheduler = scheduler();
    scheduler.submit(&task(1, 0)).unwrap();
    let _placed = scheduler.schedule(); // no backend: runs are reported by hand
    scheduler.submit(&task(2, 0)).unwrap();
    let submitter = scheduler.submitter();
    for id in [1, 2] {
        assert_eq!(
            submitter.submit(&task(id, 0)),
            Err(Error::DuplicateTask { task: TaskId(id) })
        );
    }
    assert_eq!(submitter.submit(&task(3, 0)), Ok(TaskId(3)));
    assert_eq!(scheduler.task_counts().total(), 3);
}

#[test]
fn an_invalid_task_is_refused_at_once_and_claims_nothing() {
    let scheduler = scheduler();
    let submitter = scheduler.submitter();
    let errors = thread::spawn(move || {
        let nothing = TaskSpec::new(TaskId(1), Resources::new(0, 0));
        let too_much_gpu =
            TaskSpec::new(TaskId(2), Resources::new(1, 1)).with_gpu(GpuRequest::shared(1_500));
        [submitter.submit(&nothing), submitter.submit(&too_much_gpu)]
    })
    .join()
    .unwrap();
    assert_eq!(
        errors,
        [
            Err(Error::ZeroRequest { task: TaskId(1) }),
            Err(Error::GpuShareTooLarge {
                task: TaskId(2),
                milli: 1_500
            })
        ]
    );
    assert_eq!(scheduler.task_counts(), TaskCounts::default());
    assert_eq!(scheduler.queue_len(), 0);
    assert_eq!(scheduler.task_state(TaskId(1)), None);
    // The refused ids stay free.
    assert_eq!(scheduler.submitter().submit(&task(1, 0)), Ok(TaskId(1)));
}

#[test]
fn a_submission_not_taken_in_yet_is_counted_queued_and_can_be_cancelled() {
    let mut scheduler = scheduler();
    let submitter = scheduler.submitter();
    submitter.submit(&task(1, 0)).unwrap();
    submitter.submit(&task(2, 0)).unwrap();
    let counts = scheduler.report().tasks;
    assert_eq!((counts.queued, counts.total()), (2, 2));
    assert_eq!(scheduler.task_state(TaskId(1)), Some(&TaskState::Queued));
    // Its spec is still in the queue.
    assert!(scheduler.task(TaskId(1)).is_none());
    assert_eq!(scheduler.queue_len(), 2);

    scheduler.cancel(TaskId(1)).unwrap();
    assert_eq!(scheduler.task_state(TaskId(1)), Some(&TaskState::Cancelled));
    let counts = scheduler.task_counts();
    assert_eq!((counts.queued, counts.cancelled), (1, 1));
    assert_eq!(scheduler.stale_queue_entries(), 1);
    assert!(matches!(
        scheduler.cancel(TaskId(1)),
        Err(Error::InvalidTransition { .. })
    ));
    assert_eq!(
        scheduler.cancel(TaskId(3)),
        Err(Error::UnknownTask { task: TaskId(3) })
    );

    let assignments = scheduler.schedule();
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0].task, TaskId(2));
    assert_eq!(scheduler.task_state(TaskId(1)), Some(&TaskState::Cancelled));
    assert!(scheduler.task(TaskId(1)).is_some());
    assert_eq!(scheduler.stale_queue_entries(), 0);
    check_invariants(&scheduler, &[TaskId(1), TaskId(2)]);
}

#[test]
fn handle_and_direct_submissions_are_placed_in_one_priority_order() {
    let mut scheduler = scheduler();
    let submitter = scheduler.submitter();
    let priorities = [3u8, 200, 0, 90, 200, 255, 17, 90];
    for (id, &priority) in (0..).zip(&priorities) {
        if id % 2 == 0 {
            submitter.submit(&task(id, priority)).unwrap();
        } else {
            scheduler.submit(&task(id, priority)).unwrap();
        }
    }
    let order: Vec<(u8, u64)> = scheduler
        .schedule()
        .iter()
        .map(|a| (priorities[a.task.0 as usize], a.task.0))
        .collect();
    // Highest first; FIFO among equals.
    assert_eq!(
        order,
        vec![
            (255, 5),
            (200, 1),
            (200, 4),
            (90, 3),
            (90, 7),
            (17, 6),
            (3, 0),
            (0, 2)
        ]
    );
}

#[test]
fn a_cycle_takes_no_more_entries_than_were_queued_when_it_began() {
    // The policy submits a new task through a handle every time it is
    // asked (up to 20): a cycle that took every entry it could pop would
    // take them all, and with no cap would never end.
    let handle: Arc<std::sync::OnceLock<Submitter>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(100));
    let policy = {
        let (handle, next) = (Arc::clone(&handle), Arc::clone(&next));
        policy_fn("submits-more", move |nodes: &FeasibleNodes<'_>| {
            let id = next.fetch_add(1, Ordering::Relaxed) as u64;
            if id < 120 {
                let submitted = handle.get().unwrap().submit(&task(id, 255));
                assert_eq!(submitted, Ok(TaskId(id)));
            }
            nodes.first_fit().map(|node| Placement::on(node.id()))
        })
    };
    let mut scheduler = CoreScheduler::new(Box::new(policy));
    let node = NodeSpec::new(NodeId(1), Resources::new(1_000, 1_000));
    scheduler.add_node(&node).unwrap();
    handle.set(scheduler.submitter()).unwrap();
    for id in 0..3 {
        scheduler.submit(&task(id, 0)).unwrap();
    }

    // The three queued when the cycle began, though higher priorities arrive.
    let first = scheduler.schedule();
    assert_eq!(first.len(), 3);
    assert_eq!(
        first.iter().map(|a| a.task.0).collect::<Vec<_>>(),
        // The first arrival (100) outranks the tasks still queued.
        vec![0, 100, 101]
    );
    assert_eq!(scheduler.task_counts().queued, 3);
    let second = scheduler.schedule();
    assert_eq!(second.len(), 3);
}

#[test]
fn a_handle_refuses_tasks_once_its_scheduler_is_dropped() {
    let scheduler = scheduler();
    let handle = scheduler.submitter();
    assert_eq!(handle.submit(&task(1, 5)), Ok(TaskId(1)));
    drop(scheduler);
    assert_eq!(
        handle.submit(&task(2, 5)),
        Err(Error::SchedulerDropped { task: TaskId(2) })
    );
    // A clone made before the drop refuses too.
    assert!(handle.clone().submit(&task(3, 5)).is_err());
}
