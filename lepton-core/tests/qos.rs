//! What a task's QoS class means: best-effort work never preempts and is
//! evicted (and moved) first among equal priorities; priority still comes
//! first; and no decision reads measured usage, so a guaranteed task always
//! holds everything it reserved.

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

use lepton_test_support as support;

use lepton_core::backend::Usage;
use lepton_core::clock::Timestamp;
use lepton_core::model::{Priority, QosClass};
use lepton_core::scheduler::{SchedulerConfig, TaskState};
use lepton_core::{
    CoreScheduler, Event, NodeId, NodeSpec, Resources, Run, Scheduler, TaskId, TaskSpec,
};
use support::{first_fit, placed, rebalancing, scheduler_on, submit};

fn node(id: u64, cores: u64) -> NodeSpec {
    NodeSpec::new(NodeId(id), Resources::new(cores * 1_000, 65_536))
}

fn task(id: u64, cores: u64, priority: u8, qos: QosClass) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(cores * 1_000, 1_024))
        .with_priority(Priority(priority))
        .with_qos(qos)
}

fn first_fit_on(nodes: &[NodeSpec]) -> CoreScheduler {
    scheduler_on(first_fit(), SchedulerConfig::default(), nodes).0
}

fn run(scheduler: &CoreScheduler, id: u64) -> Run {
    scheduler.current_run(TaskId(id)).unwrap()
}

#[test]
fn best_effort_work_never_preempts() {
    let mut scheduler = first_fit_on(&[node(1, 4)]);
    submit(&mut scheduler, [task(1, 4, 10, QosClass::Burstable)]);
    assert_eq!(placed(&scheduler.schedule()), [(1, 1)]);
    // Far higher priority, but best effort: it waits.
    submit(&mut scheduler, [task(2, 4, 250, QosClass::BestEffort)]);
    assert!(scheduler.schedule().is_empty());
    assert_eq!(scheduler.report().preemptions, 0);
    // The same request from a burstable task preempts.
    submit(&mut scheduler, [task(3, 4, 250, QosClass::Burstable)]);
    assert_eq!(placed(&scheduler.schedule()), [(3, 1)]);
    assert_eq!(scheduler.report().preemptions, 1);
}

#[test]
fn best_effort_victims_go_first_among_equal_priorities() {
    // On one node: of two equal tasks of one priority, the best-effort one
    // goes, though the other comes first by size and id.
    let mut scheduler = first_fit_on(&[node(1, 4)]);
    submit(
        &mut scheduler,
        [
            task(1, 2, 10, QosClass::Guaranteed),
            task(2, 2, 10, QosClass::BestEffort),
        ],
    );
    let _placed = scheduler.schedule(); // no backend: runs are reported by hand
    let best_effort = run(&scheduler, 2);
    submit(&mut scheduler, [task(9, 2, 200, QosClass::Burstable)]);
    let assignments = scheduler.schedule();
    assert_eq!(assignments[0].evicts, [best_effort], "{assignments:?}");

    // Across nodes: one burstable victim on node 1, one best-effort victim
    // of the same priority on node 2; node 2 wins though node 1 is found first.
    let mut scheduler = first_fit_on(&[node(1, 2), node(2, 2)]);
    submit(
        &mut scheduler,
        [
            task(1, 2, 10, QosClass::Burstable),
            task(2, 2, 10, QosClass::BestEffort),
        ],
    );
    assert_eq!(placed(&scheduler.schedule()), [(1, 1), (2, 2)]);
    let best_effort = run(&scheduler, 2);
    submit(&mut scheduler, [task(9, 2, 200, QosClass::Burstable)]);
    let assignments = scheduler.schedule();
    assert_eq!(assignments[0].node, NodeId(2), "{assignments:?}");
    assert_eq!(assignments[0].evicts, [best_effort]);
}

#[test]
fn priority_comes_before_qos() {
    // A burstable task of priority 10 goes before a best-effort one of 20:
    // QoS only breaks ties between equal priorities.
    let mut scheduler = first_fit_on(&[node(1, 4)]);
    submit(
        &mut scheduler,
        [
            task(1, 2, 20, QosClass::BestEffort),
            task(2, 2, 10, QosClass::Burstable),
        ],
    );
    let _placed = scheduler.schedule(); // no backend: runs are reported by hand
    let lower = run(&scheduler, 2);
    submit(&mut scheduler, [task(9, 2, 200, QosClass::Guaranteed)]);
    assert_eq!(scheduler.schedule()[0].evicts, [lower]);
}

#[test]
fn measured_usage_never_drives_a_decision() {
    // A guaranteed task reserves all of node 1 and, by its measurements,
    // uses almost nothing; node 2 is empty but measured busy.
    let config = rebalancing(0.5, 0.9, 10);
    let (mut scheduler, clock) = scheduler_on(first_fit(), config, &[node(1, 4), node(2, 4)]);
    submit(&mut scheduler, [task(1, 4, 128, QosClass::Guaranteed)]);
    assert_eq!(placed(&scheduler.schedule()), [(1, 1)]);
    let measured = |cpu_milli| Usage {
        cpu_milli: Some(cpu_milli),
        memory_mib: Some(10),
        ..Usage::default()
    };
    for (id, cpu_milli) in [(1, 10), (2, 3_990)] {
        let usage = measured(cpu_milli);
        scheduler
            .handle(Event::NodeUsage {
                node: NodeId(id),
                usage,
            })
            .unwrap();
    }
    // New work goes beside it only where reservations leave room: node 2.
    submit(&mut scheduler, [task(2, 2, 128, QosClass::Burstable)]);
    assert_eq!(placed(&scheduler.schedule()), [(2, 2)]);
    submit(&mut scheduler, [task(3, 3, 128, QosClass::Burstable)]);
    assert!(scheduler.schedule().is_empty());
    // Equal priority: no preemption. And for the rebalancer node 1 is full
    // (reserved) and node 2 half used, neither cold: nothing moves.
    clock.set(Timestamp::from_secs(60));
    assert!(scheduler.schedule().is_empty());
    let cluster = scheduler.cluster();
    assert_eq!(cluster.node(NodeId(1)).unwrap().free().cpu_milli, 0);
    assert_eq!(
        scheduler.task_state(TaskId(1)),
        Some(&TaskState::Running { node: NodeId(1) })
    );
    assert_eq!(scheduler.report().moves, 0);
}

#[test]
fn the_rebalancer_moves_best_effort_work_first_among_equal_priorities() {
    let config = rebalancing(0.5, 0.55, 1);
    let (mut scheduler, clock) = scheduler_on(first_fit(), config, &[node(1, 4), node(2, 4)]);
    scheduler.cordon(NodeId(2)).unwrap();
    submit(
        &mut scheduler,
        [
            task(1, 2, 10, QosClass::Burstable),
            task(2, 2, 10, QosClass::BestEffort),
        ],
    );
    assert_eq!(scheduler.schedule().len(), 2);
    scheduler.uncordon(NodeId(2)).unwrap();
    clock.set(Timestamp::from_secs(60));
    assert_eq!(placed(&scheduler.schedule()), [(2, 2)]);
}
