//! The `lifetime` policy through a real scheduler on a manual clock: among
//! nodes that pack a task equally well it takes the one whose expected end
//! the task extends least, so tasks expected to end together share nodes;
//! a task that outlives its prediction is predicted again. (What it learns
//! from ended runs: the module's unit tests.)

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::{CoreScheduler, NodeId, NodeSpec, Resources, Run, Scheduler, TaskId, TaskSpec};
use lepton_policies::{task_kind, LifetimeAware, LifetimePredictor};

/// A 1-CPU (or 3-CPU) task of application `app`.
fn task(id: u64, app: &str, cpus: u64) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(cpus * 1_000, 1_024)).with_config("app", app)
}

/// A scheduler on two 4-CPU nodes with `policy`, and its clock.
fn scheduler(policy: LifetimeAware) -> (CoreScheduler, ManualClock) {
    let clock = ManualClock::new();
    let mut scheduler = CoreScheduler::builder(Box::new(policy))
        .clock(Arc::new(clock.clone()))
        .build();
    for id in 1..=2 {
        let node = NodeSpec::new(NodeId(id), Resources::new(4_000, 16_384));
        scheduler.add_node(&node).unwrap();
    }
    (scheduler, clock)
}

/// Places `spec` now; returns its node and run.
fn place(scheduler: &mut CoreScheduler, spec: &TaskSpec) -> (NodeId, Run) {
    scheduler.submit(spec).unwrap();
    let assignments = scheduler.schedule();
    assert_eq!(assignments.len(), 1, "{:?} placed", spec.id);
    (assignments[0].node, assignments[0].run())
}

/// History: `app`'s tasks (of `cpus`) lived `lifetimes_s`.
fn learn(history: &mut LifetimePredictor, app: &str, cpus: u64, lifetimes_s: &[f64]) {
    let kind = task_kind(&task(0, app, cpus));
    for &lifetime in lifetimes_s {
        history.observe(&kind, lifetime);
    }
}

fn history() -> LifetimePredictor {
    let mut history = LifetimePredictor::new();
    learn(&mut history, "batch", 3, &[10_000.0; 10]);
    learn(&mut history, "batch", 1, &[10_000.0; 10]);
    // Web tasks mostly end within two minutes; a few run for hours.
    let mut web = vec![100.0; 10];
    web.extend([20_000.0; 3]);
    learn(&mut history, "web", 3, &web);
    history
}

#[test]
fn a_long_task_joins_the_node_of_long_tasks_in_either_node_order() {
    for first in ["batch", "web"] {
        let (mut scheduler, _clock) = scheduler(LifetimeAware::with_history(history()));
        let second = if first == "batch" { "web" } else { "batch" };
        // 3 CPUs each: one per node.
        let (first_node, _) = place(&mut scheduler, &task(1, first, 3));
        let (second_node, _) = place(&mut scheduler, &task(2, second, 3));
        assert_ne!(first_node, second_node);
        let batch_node = if first == "batch" {
            first_node
        } else {
            second_node
        };
        // Both nodes pack it equally (1 CPU left on each).
        let (node, _) = place(&mut scheduler, &task(3, "batch", 1));
        assert_eq!(node, batch_node, "{first} placed first");
    }
}

#[test]
fn a_task_that_outlives_its_prediction_is_predicted_again() {
    let (mut scheduler, clock) = scheduler(LifetimeAware::with_history(history()));
    let (batch_node, _) = place(&mut scheduler, &task(1, "batch", 3));
    let (web_node, _) = place(&mut scheduler, &task(2, "web", 3));
    // Predicted to end at 100 s, the web task still runs at 500 s: of the
    // web tasks that lived that long, the median ran 20,000 s. Its node is
    // now expected to outlast the batch node (10,000 s), and a batch task
    // arriving now (ending near 10,500 s) extends it least.
    clock.set(Timestamp::from_secs(500));
    let (node, _) = place(&mut scheduler, &task(3, "batch", 1));
    assert_eq!(node, web_node);
    assert_ne!(node, batch_node);
}
