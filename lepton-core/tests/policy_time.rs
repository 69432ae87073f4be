//! What a policy learns of time: the scheduler's clock at the start of each
//! cycle (`begin_cycle`) and, when a run ends, when it started and ended
//! (`Feedback::started` / `ended`) — what a policy that learns lifetimes
//! needs, and nothing of how long a task will run.

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

use lepton_test_support as support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::policy::{Feedback, Outcome};
use lepton_core::{
    ClusterState, CoreScheduler, FeasibleNodes, NodeId, NodeSpec, Placement, Policy, Resources,
    Scheduler, TaskId, TaskSpec,
};

/// What the recording policy was told.
#[derive(Default)]
struct Told {
    cycles: Vec<Timestamp>,
    ended: Vec<(TaskId, Outcome, Timestamp, Timestamp)>,
    ran_s: Vec<f64>,
}

struct Recording(Arc<Mutex<Told>>);

impl Policy for Recording {
    fn name(&self) -> &str {
        "recording"
    }
    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        support::first_fit().select(nodes)
    }
    fn begin_cycle(&mut self, _cluster: &ClusterState, now: Timestamp) {
        self.0.lock().unwrap().cycles.push(now);
    }
    fn observe(&mut self, feedback: &Feedback<'_>) {
        let told = (
            feedback.task.id,
            feedback.outcome,
            feedback.started,
            feedback.ended,
        );
        let mut recorded = self.0.lock().unwrap();
        recorded.ended.push(told);
        recorded.ran_s.push(feedback.ran_s());
    }
}

#[test]
fn a_policy_hears_the_cycle_time_and_each_runs_start_and_end() {
    let clock = ManualClock::new();
    let told = Arc::new(Mutex::new(Told::default()));
    let mut scheduler = CoreScheduler::builder(Box::new(Recording(told.clone())))
        .clock(Arc::new(clock.clone()))
        .build();
    scheduler
        .add_node(&NodeSpec::new(NodeId(1), Resources::new(4_000, 8_192)))
        .unwrap();
    let at = Timestamp::from_secs;
    for id in 1..=2 {
        let task = TaskSpec::new(TaskId(id), Resources::new(1_000, 1_024));
        scheduler.submit(&task).unwrap();
    }
    clock.set(at(10));
    let runs: Vec<_> = scheduler.schedule().iter().map(|a| a.run()).collect();
    assert_eq!(runs.len(), 2);
    clock.set(at(70));
    scheduler.complete(runs[0]).unwrap();
    clock.set(at(100));
    scheduler.fail(runs[1], "crashed").unwrap();
    // The failed task is retried: its new run starts at 130 s.
    clock.set(at(130));
    let retried: Vec<_> = scheduler.schedule().iter().map(|a| a.run()).collect();
    assert_eq!(retried.len(), 1);
    clock.advance(Duration::from_secs(5));
    scheduler.complete(retried[0]).unwrap();

    let told = told.lock().unwrap();
    assert_eq!(told.cycles, vec![at(10), at(130)]);
    assert_eq!(
        told.ended,
        vec![
            (TaskId(1), Outcome::Completed, at(10), at(70)),
            (TaskId(2), Outcome::Failed, at(10), at(100)),
            (TaskId(2), Outcome::Completed, at(130), at(135)),
        ]
    );
    assert_eq!(told.ran_s, vec![60.0, 90.0, 5.0]);
}
