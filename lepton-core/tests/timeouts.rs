//! Timeouts are enforced by the scheduler on its own clock: a run that
//! outlives its task's `timeout_ms` is ended, the policy hears
//! `Outcome::TimedOut`, the task is retried within its budget or fails, and
//! late reports about the ended run change nothing.

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

use lepton_test_support as support;

use std::sync::{Arc, Mutex};

use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::policy::{Feedback, Outcome};
use lepton_core::scheduler::TaskState;
use lepton_core::{
    CoreScheduler, Error, FeasibleNodes, NodeId, NodeSpec, Placement, Policy, Resources, Scheduler,
    TaskId, TaskSpec,
};
use support::first_fit;

/// First fit that records every outcome it is told about.
struct Recording {
    inner: Box<dyn Policy>,
    outcomes: Arc<Mutex<Vec<(TaskId, Outcome)>>>,
}

impl Policy for Recording {
    fn name(&self) -> &str {
        "recording"
    }
    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        self.inner.select(nodes)
    }
    fn observe(&mut self, feedback: &Feedback<'_>) {
        let mut outcomes = self.outcomes.lock().unwrap();
        outcomes.push((feedback.task.id, feedback.outcome));
    }
}

struct Setup {
    scheduler: CoreScheduler,
    clock: ManualClock,
    outcomes: Arc<Mutex<Vec<(TaskId, Outcome)>>>,
}

fn setup() -> Setup {
    let clock = ManualClock::new();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let policy = Recording {
        inner: first_fit(),
        outcomes: outcomes.clone(),
    };
    let mut scheduler = CoreScheduler::builder(Box::new(policy))
        .clock(Arc::new(clock.clone()))
        .build();
    for id in 1..=2 {
        let node = NodeSpec::new(NodeId(id), Resources::new(4_000, 8_192));
        scheduler.add_node(&node).unwrap();
    }
    Setup {
        scheduler,
        clock,
        outcomes,
    }
}

fn at(seconds_and_millis: (u64, u64)) -> Timestamp {
    Timestamp(seconds_and_millis.0 * 1_000_000 + seconds_and_millis.1 * 1_000)
}

#[test]
fn a_run_past_its_timeout_is_ended_retried_and_finally_failed() {
    let Setup {
        mut scheduler,
        clock,
        outcomes,
    } = setup();
    let spec = TaskSpec::new(TaskId(1), Resources::new(1_000, 1_024)).with_timeout_ms(2_500);
    scheduler.submit(&spec).unwrap();

    // Batch budget: 3 retries, 5 s apart. Each run gets the whole 2.5 s.
    let mut started = Timestamp::ZERO;
    for attempt in 1..=4 {
        clock.set(started);
        let assignments = scheduler.schedule();
        assert_eq!(assignments.len(), 1, "attempt {attempt}");
        let run = assignments[0].run();
        assert_eq!(run.attempt, attempt);

        clock.set(started.saturating_add(std::time::Duration::from_millis(2_499)));
        assert_eq!(scheduler.expire_timeouts(), vec![], "not yet due");
        assert_eq!(
            scheduler.next_timeout_due(),
            Some(started.saturating_add(std::time::Duration::from_millis(2_500)))
        );
        clock.set(started.saturating_add(std::time::Duration::from_millis(2_500)));
        assert_eq!(scheduler.expire_timeouts(), vec![run], "due");
        assert_eq!(scheduler.report().timeouts, u64::from(attempt));
        // The run's own late report changes nothing.
        assert!(scheduler.complete(run).is_err());
        assert_eq!(scheduler.cluster().allocation_count(), 0, "freed");
        started = started.saturating_add(std::time::Duration::from_millis(7_500));
    }
    match scheduler.task_state(TaskId(1)) {
        Some(TaskState::Failed { reasons }) => {
            assert_eq!(reasons.len(), 4);
            assert!(
                reasons[0].ends_with("timed out after 2500 ms"),
                "{reasons:?}"
            );
        }
        other => panic!("expected failed, got {other:?}"),
    }
    let told = outcomes.lock().unwrap().clone();
    assert_eq!(told, vec![(TaskId(1), Outcome::TimedOut); 4]);
}

#[test]
fn runs_that_end_in_time_or_have_no_timeout_are_never_timed_out() {
    let Setup {
        mut scheduler,
        clock,
        outcomes,
    } = setup();
    let quick = TaskSpec::new(TaskId(1), Resources::new(1_000, 1_024)).with_timeout_ms(1_000);
    let unbounded = TaskSpec::new(TaskId(2), Resources::new(1_000, 1_024));
    scheduler.submit(&quick).unwrap();
    scheduler.submit(&unbounded).unwrap();
    let assignments = scheduler.schedule();
    assert_eq!(assignments.len(), 2);
    clock.set(at((0, 900)));
    scheduler.complete(assignments[0].run()).unwrap();
    clock.set(at((3_600, 0)));
    assert_eq!(scheduler.expire_timeouts(), vec![]);
    assert_eq!(scheduler.report().timeouts, 0);
    assert_eq!(scheduler.task_state(TaskId(1)), Some(&TaskState::Completed));
    assert!(matches!(
        scheduler.task_state(TaskId(2)),
        Some(TaskState::Running { .. })
    ));
    assert_eq!(
        outcomes.lock().unwrap().clone(),
        vec![(TaskId(1), Outcome::Completed)]
    );
}

#[test]
fn a_moved_task_gets_a_new_deadline_and_the_old_one_is_void() {
    let Setup {
        mut scheduler,
        clock,
        ..
    } = setup();
    let spec = TaskSpec::new(TaskId(1), Resources::new(1_000, 1_024)).with_timeout_ms(10_000);
    scheduler.submit(&spec).unwrap();
    let first = scheduler.schedule().remove(0);
    clock.set(at((6, 0)));
    let drained = scheduler.drain(first.node).unwrap();
    assert_eq!(drained.moved.len(), 1);
    let second = drained.moved[0].run();
    // The first run's deadline (10 s) passes: nothing is ended.
    clock.set(at((10, 0)));
    assert_eq!(scheduler.expire_timeouts(), vec![]);
    // The second run's deadline is 10 s after its placement at 6 s.
    clock.set(at((16, 0)));
    assert_eq!(scheduler.expire_timeouts(), vec![second]);
}

#[test]
fn a_zero_timeout_is_refused_naming_the_task() {
    let Setup { mut scheduler, .. } = setup();
    let spec = TaskSpec::new(TaskId(5), Resources::new(1_000, 1_024)).with_timeout_ms(0);
    let error = scheduler.submit(&spec).unwrap_err();
    assert_eq!(error, Error::ZeroTimeout { task: TaskId(5) });
    assert!(error.to_string().contains("t-5"), "{error}");
    assert_eq!(scheduler.report().tasks.total(), 0);
}
