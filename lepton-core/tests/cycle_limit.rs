//! `SchedulerConfig::max_tasks_per_cycle`: a cycle takes at most that many
//! queued tasks, highest priority first, and leaves the rest, counted as
//! queued, to the next; what the cycles place together is what one
//! unlimited cycle places.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lepton_test_support as support;

use lepton_core::clock::ManualClock;
use lepton_core::model::Priority;
use lepton_core::scheduler::{SchedulerConfig, TaskState};
use lepton_core::{
    Assignment, CoreScheduler, NodeId, NodeSpec, Resources, Scheduler, TaskId, TaskSpec,
};
use proptest::prelude::*;

fn task(id: u64, cores: u64, priority: u8) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(cores * 1_000, 1_024))
        .with_priority(Priority(priority))
}

/// First fit over nodes of the given cores, cycles of at most `limit`
/// tasks, on a clock that stands still (no backoff ends between cycles).
fn scheduler(limit: Option<usize>, nodes: &[u64], preemption: bool) -> CoreScheduler {
    let mut config = SchedulerConfig::default();
    config.max_tasks_per_cycle = limit.map(|l| NonZeroUsize::new(l).expect("a limit above 0"));
    config.preemption = preemption;
    let mut scheduler = CoreScheduler::builder(support::first_fit())
        .clock(Arc::new(ManualClock::new()))
        .config(config)
        .build();
    for (id, &cores) in (1..).zip(nodes) {
        let node = NodeSpec::new(NodeId(id), Resources::new(cores * 1_000, 1 << 20));
        scheduler.add_node(&node).expect("a valid node");
    }
    scheduler
}

fn placed(assignments: &[Assignment]) -> Vec<(TaskId, NodeId)> {
    assignments.iter().map(|a| (a.task, a.node)).collect()
}

#[test]
fn a_limited_cycle_takes_the_highest_priorities_first_and_leaves_the_rest_queued() {
    let mut scheduler = scheduler(Some(3), &[64], false);
    // Ids 1..=10 at priorities 1..=10: the highest id goes first.
    for id in 1..=10 {
        scheduler
            .submit(&task(id, 1, id as u8))
            .expect("a valid task");
    }

    let mut cycles = Vec::new();
    loop {
        let assignments = scheduler.schedule();
        if assignments.is_empty() {
            break;
        }
        let tasks: Vec<u64> = assignments.iter().map(|a| a.task.0).collect();
        cycles.push((
            tasks,
            scheduler.cycle_cut_short(),
            scheduler.report().tasks.queued,
        ));
    }
    assert_eq!(
        cycles,
        vec![
            (vec![10, 9, 8], true, 7),
            (vec![7, 6, 5], true, 4),
            (vec![4, 3, 2], true, 1),
            (vec![1], false, 0),
        ]
    );
    assert!(!scheduler.cycle_cut_short());
}

#[test]
fn handle_submissions_beyond_the_limit_wait_for_the_next_cycle() {
    let mut scheduler = scheduler(Some(2), &[64], false);
    let submitter = scheduler.submitter();
    for id in 1..=5 {
        submitter.submit(&task(id, 1, 0)).expect("a valid task");
    }
    assert_eq!(scheduler.schedule().len(), 2);
    assert!(scheduler.cycle_cut_short());
    assert_eq!(scheduler.report().tasks.queued, 3);
    // Taken in or not, a waiting submission is queued, and cancellable.
    scheduler.cancel(TaskId(5)).expect("a queued task");
    assert_eq!(scheduler.schedule().len(), 2);
    assert_eq!(scheduler.schedule().len(), 0);
    assert_eq!(scheduler.task_state(TaskId(5)), Some(&TaskState::Cancelled));
    assert_eq!(scheduler.report().tasks.running, 4);
}

#[test]
fn a_task_evicted_in_a_limited_cycle_is_taken_again_in_it() {
    // One node of 4 cores, full with task 1 (priority 0).
    let mut scheduler = scheduler(Some(1), &[4], true);
    scheduler.submit(&task(1, 4, 0)).expect("a valid task");
    assert_eq!(placed(&scheduler.schedule()), vec![(TaskId(1), NodeId(1))]);

    // Task 2 (priority 5) evicts it: the cycle of one task also takes the
    // evicted one back, which fits nowhere and backs off.
    scheduler.submit(&task(2, 4, 5)).expect("a valid task");
    let assignments = scheduler.schedule();
    assert_eq!(placed(&assignments), vec![(TaskId(2), NodeId(1))]);
    assert_eq!(assignments[0].evicts.len(), 1);
    assert!(!scheduler.cycle_cut_short());
    assert!(
        matches!(
            scheduler.task_state(TaskId(1)),
            Some(TaskState::BackingOff { .. })
        ),
        "{:?}",
        scheduler.task_state(TaskId(1))
    );
    assert_eq!(scheduler.report().tasks.queued, 0);
}

#[test]
fn a_plan_places_every_task_whatever_the_limit() {
    let scheduler = scheduler(Some(2), &[64], false);
    let tasks: Vec<TaskSpec> = (1..=10).map(|id| task(id, 1, 0)).collect();
    let plan = scheduler
        .plan(support::first_fit(), &tasks)
        .expect("a valid plan");
    assert_eq!(plan.placed.len(), 10);
    assert!(plan.waiting.is_empty());
}

proptest! {
    /// Cycles of at most `limit` tasks, run until one places nothing, place
    /// the same tasks on the same nodes in the same order as one cycle
    /// without a limit, and leave the same tasks backing off.
    #[test]
    fn limited_cycles_place_what_one_unlimited_cycle_places(
        nodes in prop::collection::vec(1..16u64, 1..6),
        tasks in prop::collection::vec((1..8u64, 0..4u8), 0..60),
        limit in 1..20usize,
    ) {
        let specs: Vec<TaskSpec> = (0..)
            .zip(&tasks)
            .map(|(id, &(cores, priority))| task(id, cores, priority))
            .collect();
        let mut whole = scheduler(None, &nodes, false);
        let mut limited = scheduler(Some(limit), &nodes, false);
        for spec in &specs {
            whole.submit(spec).expect("a valid task");
            limited.submit(spec).expect("a valid task");
        }

        let expected = placed(&whole.schedule());
        prop_assert!(!whole.cycle_cut_short());
        let mut got = Vec::new();
        let mut cycles = 0;
        loop {
            let assignments = limited.schedule();
            cycles += 1;
            prop_assert!(assignments.len() <= limit);
            got.extend(placed(&assignments));
            if !limited.cycle_cut_short() {
                break;
            }
        }
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(cycles, specs.len().div_ceil(limit).max(1));
        prop_assert_eq!(limited.report().tasks, whole.report().tasks);
        for spec in &specs {
            prop_assert_eq!(limited.task_state(spec.id), whole.task_state(spec.id));
        }
    }
}
