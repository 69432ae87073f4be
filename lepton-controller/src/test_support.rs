//! Fixtures shared by the unit tests: an in-process backend and a
//! controller over it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use lepton_core::backend::{Backend, BackendError, Handle, Launch, RunStatus};
use lepton_core::policy::Feedback;
use lepton_core::scheduler::SchedulerConfig;
use lepton_core::{
    CoreScheduler, FeasibleNodes, NodeId, NodeSpec, Placement, Policy, Resources, Run, TaskId,
    TaskSpec,
};
use lepton_policies::FirstFit;

use crate::{Controller, ControllerConfig, StepReport};

/// An in-process backend with one roomy node, for tests of the
/// controller itself: its runs run until [`finish`](Self::finish), and
/// it counts how many `status` calls are in flight at once, each one
/// taking as long as `latency` says for its task.
pub(crate) struct Fake {
    latency: fn(TaskId) -> Duration,
    finished: AtomicBool,
    /// The first status poll of this task panics.
    pub(crate) panics_once: Mutex<Option<TaskId>>,
    pub(crate) polls: AtomicUsize,
    polls_in_flight: AtomicUsize,
    pub(crate) most_polls_in_flight: AtomicUsize,
    /// The runs it was asked to stop, in order.
    pub(crate) stopped: Mutex<Vec<Run>>,
}

const NODE: NodeId = NodeId(1);

impl Fake {
    pub(crate) fn new(latency: fn(TaskId) -> Duration) -> Arc<Self> {
        Arc::new(Fake {
            latency,
            finished: AtomicBool::new(false),
            panics_once: Mutex::new(None),
            polls: AtomicUsize::new(0),
            polls_in_flight: AtomicUsize::new(0),
            most_polls_in_flight: AtomicUsize::new(0),
            stopped: Mutex::new(Vec::new()),
        })
    }

    /// Every run exits with code 0 from now on.
    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl Backend for Fake {
    fn name(&self) -> &str {
        "fake"
    }

    async fn inventory(&self) -> Result<Vec<NodeSpec>, BackendError> {
        Ok(vec![NodeSpec::new(NODE, Resources::new(64_000, 65_536))])
    }

    async fn launch(&self, launch: &Launch) -> Result<Handle, BackendError> {
        Ok(Handle {
            run: launch.run,
            node: launch.node,
            id: format!("fake-{}", launch.run),
        })
    }

    async fn stop(&self, handle: &Handle) -> Result<(), BackendError> {
        self.stopped.lock().unwrap().push(handle.run);
        Ok(())
    }

    async fn status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        let now = self.polls_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_polls_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep((self.latency)(handle.run.task)).await;
        self.polls_in_flight.fetch_sub(1, Ordering::SeqCst);
        let panics = self
            .panics_once
            .lock()
            .unwrap()
            .take_if(|task| *task == handle.run.task);
        assert!(panics.is_none(), "status of {} panics", handle.run);
        Ok(if self.finished.load(Ordering::SeqCst) {
            RunStatus::Exited { code: 0 }
        } else {
            RunStatus::Running
        })
    }

    async fn running(&self) -> Result<Vec<Handle>, BackendError> {
        Ok(Vec::new())
    }
}

/// First fit, writing down every task whose end the scheduler was told
/// of, in the order it was told.
struct Recording(Arc<Mutex<Vec<TaskId>>>);

impl Policy for Recording {
    fn name(&self) -> &str {
        "recording"
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        FirstFit.select(nodes)
    }

    fn observe(&mut self, feedback: &Feedback<'_>) {
        self.0.lock().unwrap().push(feedback.task.id);
    }
}

/// A controller over `backend` with `tasks` submitted, and the ends its
/// scheduler is told of.
pub(crate) async fn controller_with(
    backend: &Arc<Fake>,
    config: ControllerConfig,
    tasks: u64,
) -> (Controller, Arc<Mutex<Vec<TaskId>>>) {
    controller_of(backend, config, SchedulerConfig::default(), tasks).await
}

/// [`controller_with`], its scheduler set up by `scheduler`.
pub(crate) async fn controller_of(
    backend: &Arc<Fake>,
    config: ControllerConfig,
    scheduler: SchedulerConfig,
    tasks: u64,
) -> (Controller, Arc<Mutex<Vec<TaskId>>>) {
    let ends = Arc::new(Mutex::new(Vec::new()));
    let scheduler = CoreScheduler::builder(Box::new(Recording(Arc::clone(&ends))))
        .config(scheduler)
        .build();
    let backends: Vec<Arc<dyn Backend>> = vec![Arc::clone(backend) as Arc<dyn Backend>];
    let mut controller = Controller::new(scheduler, backends, config).await.unwrap();
    for id in 1..=tasks {
        controller
            .submit(&TaskSpec::new(TaskId(id), Resources::new(100, 64)))
            .unwrap();
    }
    (controller, ends)
}

/// Steps once: every task starts (the node has room for all).
pub(crate) async fn start_all(controller: &mut Controller, tasks: u64) {
    let report = controller.step().await;
    assert_eq!(report.launched.len() as u64, tasks);
}

/// The tasks whose runs ended in a step, in the report's order.
pub(crate) fn ended_tasks(report: &StepReport) -> Vec<TaskId> {
    report
        .ended
        .iter()
        .map(|(handle, _)| handle.run.task)
        .collect()
}
