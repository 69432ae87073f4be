//! Adopting a run that already exists (a backend still holds it after a
//! restart): the task is running as that attempt, its resources booked,
//! and run ids are never reused.

#![allow(clippy::unwrap_used)]

use lepton_test_support as support;

use lepton_core::clock::ManualClock;
use lepton_core::scheduler::TaskState;
use lepton_core::{
    Assignment, CoreScheduler, Error, NodeId, NodeSpec, Placement, Resources, Run, Scheduler,
    TaskId, TaskSpec,
};
use support::first_fit;

fn scheduler() -> CoreScheduler {
    scheduler_on(ManualClock::new())
}

fn scheduler_on(clock: ManualClock) -> CoreScheduler {
    let mut scheduler = CoreScheduler::builder(first_fit())
        .clock(std::sync::Arc::new(clock))
        .build();
    scheduler
        .add_node(&NodeSpec::new(NodeId(1), Resources::new(4_000, 4_096)))
        .unwrap();
    scheduler
}

fn task(id: u64, cpu_milli: u64) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(cpu_milli, 64))
}

#[test]
fn an_adopted_run_runs_holds_its_resources_and_the_next_attempt_is_new() {
    let clock = ManualClock::new();
    let mut scheduler = scheduler_on(clock.clone());
    scheduler
        .adopt(
            &task(7, 3_000),
            Run::new(TaskId(7), 3),
            &Placement::on(NodeId(1)),
        )
        .unwrap();
    assert_eq!(
        scheduler.task_state(TaskId(7)),
        Some(&TaskState::Running { node: NodeId(1) })
    );
    assert_eq!(
        scheduler.current_run(TaskId(7)),
        Some(Run::new(TaskId(7), 3))
    );
    assert_eq!(scheduler.task_counts().running, 1);
    // Its 3 cores are booked: a 2-core task waits.
    scheduler.submit(&task(8, 2_000)).unwrap();
    assert!(scheduler.schedule().is_empty());
    // Its run fails: the retry is attempt 4, never a reused id.
    scheduler
        .fail(Run::new(TaskId(7), 3), "exit code 1")
        .unwrap();
    clock.advance(std::time::Duration::from_secs(2));
    let assignments = scheduler.schedule();
    assert!(
        assignments
            .iter()
            .any(|a| a.run() == Run::new(TaskId(8), 1)),
        "{assignments:?}"
    );
    scheduler.complete(Run::new(TaskId(8), 1)).unwrap();
    // Past the retry's backoff.
    clock.advance(std::time::Duration::from_secs(20));
    let retry = scheduler.schedule();
    assert_eq!(
        retry.iter().map(Assignment::run).collect::<Vec<_>>(),
        [Run::new(TaskId(7), 4)]
    );
    scheduler.complete(Run::new(TaskId(7), 4)).unwrap();
    assert_eq!(scheduler.task_state(TaskId(7)), Some(&TaskState::Completed));
}

#[test]
fn adoption_refuses_what_cannot_be_true_and_books_nothing_then() {
    let mut scheduler = scheduler();
    let on = Placement::on(NodeId(1));
    let refused = [
        scheduler.adopt(&task(1, 1_000), Run::new(TaskId(1), 0), &on),
        scheduler.adopt(&task(1, 1_000), Run::new(TaskId(2), 1), &on),
        scheduler.adopt(
            &task(1, 1_000),
            Run::new(TaskId(1), 1),
            &Placement::on(NodeId(9)),
        ),
        scheduler.adopt(&task(1, 9_000), Run::new(TaskId(1), 1), &on),
    ];
    assert!(
        matches!(refused[0], Err(Error::StaleRun { .. })),
        "{refused:?}"
    );
    assert!(
        matches!(refused[1], Err(Error::StaleRun { .. })),
        "{refused:?}"
    );
    assert!(
        matches!(refused[2], Err(Error::UnknownNode { .. })),
        "{refused:?}"
    );
    assert!(
        matches!(refused[3], Err(Error::DoesNotFit { .. })),
        "{refused:?}"
    );
    assert_eq!(scheduler.task_counts().total(), 0);
    assert_eq!(scheduler.cluster().utilization().cpu, 0.0);
    scheduler
        .adopt(&task(1, 1_000), Run::new(TaskId(1), 1), &on)
        .unwrap();
    assert!(matches!(
        scheduler.adopt(&task(1, 1_000), Run::new(TaskId(1), 1), &on),
        Err(Error::DuplicateTask { .. })
    ));
    assert!(matches!(
        scheduler.submit(&task(1, 1_000)),
        Err(Error::DuplicateTask { .. })
    ));
    // Through a submission handle the id is claimed too.
    let handle = scheduler.submitter();
    scheduler
        .adopt(&task(2, 1_000), Run::new(TaskId(2), 5), &on)
        .unwrap();
    assert!(matches!(
        handle.submit(&task(2, 1_000)),
        Err(Error::DuplicateTask { .. })
    ));
    assert_eq!(scheduler.task_counts().running, 2);
}
