//! Scenario tests for [`CoreScheduler`]: a policy swapped mid-run, a node
//! going down, retries backing off — each checked against the cluster's
//! invariants.

use lepton_test_support as support;

use std::sync::Arc;
use std::time::Duration;

use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::scheduler::TaskState;
use lepton_core::{
    policy_fn, Assignment, CoreScheduler, Event, FeasibleNodes, GpuRequest, Gpus, NodeId, NodeSpec,
    Placement, Policy, Resources, Scheduler, TaskId, TaskSpec,
};
use support::first_fit;
use support::invariants::check_invariants;
fn scheduler_with(policy: Box<dyn Policy>, clock: &ManualClock) -> CoreScheduler {
    CoreScheduler::builder(policy)
        .clock(Arc::new(clock.clone()))
        .build()
}

fn submit_many(scheduler: &mut CoreScheduler, ids: std::ops::Range<u64>, request: &Resources) {
    for id in ids {
        scheduler
            .submit(&TaskSpec::new(TaskId(id), request.clone()))
            .expect("valid task");
    }
}

fn nodes_of(assignments: &[Assignment]) -> Vec<u64> {
    assignments.iter().map(|a| a.node.0).collect()
}

#[test]
fn a_policy_swapped_mid_run_makes_the_next_decisions() {
    // Packing: the feasible node with the least free CPU; ties to the first.
    let pack = policy_fn("pack", |nodes: &FeasibleNodes<'_>| {
        let fullest = nodes.iter().min_by_key(|n| n.free().cpu_milli)?;
        Some(Placement::on(fullest.id()))
    });
    // Spreading: the feasible node with the most free CPU; ties to the first.
    let spread = policy_fn("spread", |nodes: &FeasibleNodes<'_>| {
        let emptiest = nodes
            .iter()
            .min_by_key(|n| std::cmp::Reverse(n.free().cpu_milli))?;
        Some(Placement::on(emptiest.id()))
    });

    let clock = ManualClock::new();
    let mut scheduler = scheduler_with(Box::new(pack), &clock);
    for id in 1..=3 {
        scheduler
            .add_node(&NodeSpec::new(NodeId(id), Resources::new(8_000, 16_384)))
            .unwrap();
    }
    let request = Resources::new(1_000, 1_024);

    submit_many(&mut scheduler, 0..4, &request);
    assert_eq!(nodes_of(&scheduler.schedule()), [1, 1, 1, 1]);

    let old: Box<dyn Policy> = scheduler.set_policy(Box::new(spread));
    assert_eq!(old.name(), "pack");
    assert_eq!(scheduler.report().policy, "spread");
    submit_many(&mut scheduler, 4..8, &request);
    // Node 1 has 4 000 free, nodes 2 and 3 8 000 each: spreading alternates.
    assert_eq!(nodes_of(&scheduler.schedule()), [2, 3, 2, 3]);

    // Swapping back to the returned box restores packing.
    let spread = scheduler.set_policy(old);
    assert_eq!(spread.name(), "spread");
    submit_many(&mut scheduler, 8..10, &request);
    // Free now: node 1 4 000, nodes 2 and 3 6 000; packing fills node 1.
    assert_eq!(nodes_of(&scheduler.schedule()), [1, 1]);
    check_invariants(&scheduler, &(0..10).map(TaskId).collect::<Vec<_>>());
}

#[test]
fn a_node_going_down_requeues_its_tasks_onto_another_node() {
    let clock = ManualClock::new();
    let mut scheduler = scheduler_with(first_fit(), &clock);
    let capacity = Resources::new(8_000, 16_384);
    for id in 1..=2 {
        let node = NodeSpec::new(NodeId(id), capacity.clone()).with_gpus(Gpus::new("A100", 2));
        scheduler.add_node(&node).unwrap();
    }
    let ids: Vec<TaskId> = (0..3).map(TaskId).collect();
    for &id in &ids {
        let task =
            TaskSpec::new(id, Resources::new(2_000, 4_096)).with_gpu(GpuRequest::shared(500));
        scheduler.submit(&task).unwrap();
    }
    assert_eq!(nodes_of(&scheduler.schedule()), [1, 1, 1]);

    scheduler.handle(Event::NodeDown(NodeId(1))).unwrap();
    // Each waits out the batch retry delay (5 s) before it is queued again.
    let retry_at = Timestamp::from_secs(5);
    for &id in &ids {
        assert_eq!(
            scheduler.task_state(id),
            Some(&TaskState::BackingOff {
                until: retry_at,
                attempts: 0
            })
        );
        assert_eq!(scheduler.cluster().allocation(id), None);
        assert_eq!(scheduler.failures(id), ["attempt 1 on n-1: node down"]);
    }
    let down = scheduler.cluster().node(NodeId(1)).unwrap();
    assert_eq!(down.free(), &capacity);
    assert_eq!(down.gpu_free_milli(), [1000, 1000]);
    check_invariants(&scheduler, &ids);
    assert!(scheduler.schedule().is_empty());
    clock.set(retry_at);

    let assignments = scheduler.schedule();
    assert_eq!(nodes_of(&assignments), [2, 2, 2]);
    for &id in &ids {
        assert_eq!(
            scheduler.task_state(id),
            Some(&TaskState::Running { node: NodeId(2) })
        );
    }
    assert_eq!(scheduler.report().tasks.running, 3);
    check_invariants(&scheduler, &ids);

    // Back up, node 1 takes new work again.
    scheduler.handle(Event::NodeUp(NodeId(1))).unwrap();
    scheduler
        .submit(&TaskSpec::new(TaskId(3), Resources::new(1_000, 1_024)))
        .unwrap();
    assert_eq!(nodes_of(&scheduler.schedule()), [1]);
}

#[test]
fn backoff_doubles_to_a_cap_and_ends_once_a_node_has_room() {
    let clock = ManualClock::new();
    let mut scheduler = scheduler_with(first_fit(), &clock);
    scheduler
        .add_node(&NodeSpec::new(NodeId(1), Resources::new(4_000, 8_192)))
        .unwrap();
    let task = TaskId(1);
    scheduler
        .submit(&TaskSpec::new(task, Resources::new(8_000, 1_024)))
        .unwrap();

    let backing_off = |scheduler: &CoreScheduler| match scheduler.task_state(task) {
        Some(&TaskState::BackingOff { until, attempts }) => (until, attempts),
        other => panic!("expected backing off, got {other:?}"),
    };
    let just_before = |due: Timestamp| Timestamp(due.as_micros() - 1);

    // Each miss waits 1, 2, 4, 8, then 10, 10 s from the cycle that missed.
    let mut now = Timestamp::ZERO;
    for (attempt, delay_secs) in (1..).zip([1u64, 2, 4, 8, 10, 10]) {
        assert!(scheduler.schedule().is_empty());
        let (until, attempts) = backing_off(&scheduler);
        assert_eq!(attempts, attempt);
        assert_eq!(until, now.saturating_add(Duration::from_secs(delay_secs)));
        assert_eq!(scheduler.next_backoff_due(), Some(until));

        // Not retried a microsecond early.
        clock.set(just_before(until));
        assert!(scheduler.schedule().is_empty());
        assert_eq!(backing_off(&scheduler), (until, attempts));

        clock.set(until);
        now = until;
    }
    assert_eq!(now, Timestamp::from_secs(35));

    // A node with room arrives mid-backoff: the task waits for its due time.
    assert!(scheduler.schedule().is_empty());
    let (until, _) = backing_off(&scheduler);
    assert_eq!(until, Timestamp::from_secs(45));
    scheduler
        .add_node(&NodeSpec::new(NodeId(2), Resources::new(16_000, 8_192)))
        .unwrap();
    clock.set(just_before(until));
    assert!(scheduler.schedule().is_empty());
    clock.set(until);
    let assignments = scheduler.schedule();
    assert_eq!(nodes_of(&assignments), [2]);
    assert_eq!(
        scheduler.task_state(task),
        Some(&TaskState::Running { node: NodeId(2) })
    );
    assert_eq!(scheduler.report().unschedulable, 7);
    check_invariants(&scheduler, &[task]);
}
