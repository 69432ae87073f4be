//! The [`Controller`]: what it holds, the calls an embedder makes, and the
//! step that runs the stages of the loop (monitor and watch in `watch`,
//! migrations and evictions in `migrate`, launches in `launch`) in order.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lepton_core::backend::{Backend, BackendError, Handle, RunStatus};
use lepton_core::scheduler::TaskState;
use lepton_core::{Assignment, CoreScheduler, NodeId, Placement, Run, Scheduler, TaskId, TaskSpec};
use tracing::warn;

use crate::config::{ControllerConfig, ControllerError, LoopSummary, StepReport};
use crate::launch::Waiting;
use crate::watch::ending;

/// Drives a [`CoreScheduler`] on real backends. See the crate docs.
pub struct Controller {
    pub(crate) scheduler: CoreScheduler,
    pub(crate) backends: Vec<Arc<dyn Backend>>,
    pub(crate) config: ControllerConfig,
    /// Which backend each node belongs to.
    pub(crate) node_backend: HashMap<NodeId, usize>,
    /// The current run of each running task, by task: the order in which
    /// the runs' endings reach the scheduler.
    pub(crate) runs: BTreeMap<TaskId, Handle>,
    pub(crate) waiting: Vec<Waiting>,
    steps: u64,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.backends.iter().map(|b| b.name()).collect();
        f.debug_struct("Controller")
            .field("backends", &names)
            .field("runs", &self.runs.len())
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller over `backends`: takes each one's inventory (its nodes
    /// join the scheduler; a backend that cannot be reached now joins when
    /// it can).
    ///
    /// # Errors
    /// A backend refusing the inventory for good, or nodes the scheduler
    /// refuses (the same node id from two backends).
    pub async fn new(
        scheduler: CoreScheduler,
        backends: Vec<Arc<dyn Backend>>,
        config: ControllerConfig,
    ) -> Result<Self, ControllerError> {
        let mut controller = Controller {
            scheduler,
            backends,
            config,
            node_backend: HashMap::new(),
            runs: BTreeMap::new(),
            waiting: Vec::new(),
            steps: 0,
        };
        for i in 0..controller.backends.len() {
            let nodes = match controller.backends[i].inventory().await {
                Ok(nodes) => nodes,
                // Its nodes join when it can be reached.
                Err(error) if error.is_retryable() => {
                    warn!(backend = controller.backends[i].name(), %error, "inventory failed");
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            for node in nodes {
                controller.scheduler.add_node(&node)?;
                controller.node_backend.insert(node.id, i);
            }
        }
        controller.stop_orphans().await;
        Ok(controller)
    }

    /// Submits a task.
    ///
    /// # Errors
    /// What [`Scheduler::submit`] refuses.
    pub fn submit(&mut self, task: &TaskSpec) -> Result<TaskId, lepton_core::Error> {
        self.scheduler.submit(task)
    }

    /// Takes in a run a backend holds from before a restart (found with
    /// [`Backend::running`], or named by a stored state), with `status`,
    /// what the backend says of it now. A run still going is watched like
    /// the runs this controller started (see [`CoreScheduler::adopt`]; GPUs
    /// are booked as the cluster chooses them, as backends do not report
    /// GPU indexes). A run that ended meanwhile is taken in as ended: its
    /// task completes, or fails and is retried as its next attempt; its
    /// leftovers are removed by the next sweep. Adopt ended runs before the
    /// running ones: each holds its resources only while it is taken in.
    ///
    /// # Errors
    /// What [`CoreScheduler::adopt`] refuses.
    pub fn adopt(
        &mut self,
        task: &TaskSpec,
        handle: Handle,
        status: &RunStatus,
    ) -> Result<(), lepton_core::Error> {
        self.scheduler
            .adopt(task, handle.run, &Placement::on(handle.node))?;
        match ending(handle.run, status) {
            None => {
                self.runs.insert(handle.run.task, handle);
            }
            Some(event) => self.scheduler.handle(event)?,
        }
        Ok(())
    }

    /// What the backend that holds `handle`'s node says of it.
    ///
    /// # Errors
    /// The backend's error; [`BackendError::NotFound`] for a node no
    /// backend offers.
    pub async fn status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        match self.backend_of(handle.node) {
            Some(backend) => backend.status(handle).await,
            None => Err(BackendError::NotFound {
                backend: "controller".to_owned(),
                what: format!("node {}", handle.node),
            }),
        }
    }

    /// Stops a run this controller does not hold (of an ended task, an
    /// older attempt, one adopted as ended) and removes what it left.
    ///
    /// # Errors
    /// The backend's error; [`BackendError::NotFound`] for a node no
    /// backend offers.
    pub async fn remove_run(&self, handle: &Handle) -> Result<(), BackendError> {
        match self.backend_of(handle.node) {
            Some(backend) => backend.stop(handle).await,
            None => Err(BackendError::NotFound {
                backend: "controller".to_owned(),
                what: format!("node {}", handle.node),
            }),
        }
    }

    /// The scheduler, read-only.
    pub fn scheduler(&self) -> &CoreScheduler {
        &self.scheduler
    }

    /// The scheduler, to cordon or change policy (drain with
    /// [`drain`](Self::drain)).
    pub fn scheduler_mut(&mut self) -> &mut CoreScheduler {
        &mut self.scheduler
    }

    /// The handle of a task's current run, if it runs.
    pub fn handle(&self, task: TaskId) -> Option<&Handle> {
        self.runs.get(&task)
    }

    /// One turn of the loop: monitor, watch, place, execute, recover.
    pub async fn step(&mut self) -> StepReport {
        let unreachable_backends = self.monitor().await;
        let ended = self.watch().await;
        // Runs past their task's timeout are stopped like evicted ones.
        let timed_out = self.scheduler.expire_timeouts();
        let deciding = Instant::now();
        let assignments = self.scheduler.schedule();
        let deciding = deciding.elapsed();
        let decisions = assignments.len();
        let report = self.execute(assignments, timed_out).await;
        self.steps += 1;
        if self.due(self.config.sweep_every) {
            self.stop_orphans().await;
        }
        if self.due(self.config.usage_every) {
            self.measure_usage().await;
        }
        StepReport {
            ended,
            unreachable_backends,
            deciding,
            decisions,
            ..report
        }
    }

    /// Cancels a task: it leaves the queue, or its run is stopped.
    ///
    /// # Errors
    /// What [`Scheduler::cancel`] refuses (an unknown or ended task).
    pub async fn cancel(&mut self, task: TaskId) -> Result<(), lepton_core::Error> {
        let running = self.runs.get(&task).map(|handle| handle.run).filter(|_| {
            matches!(
                self.scheduler.task_state(task),
                Some(TaskState::Running { .. })
            )
        });
        self.scheduler.cancel(task)?;
        if let Some(run) = running {
            self.stop_run(run, None).await;
        }
        Ok(())
    }

    /// Drains `node` now: cordons it and moves its tasks elsewhere (see
    /// [`CoreScheduler::drain`]), live where the backend can migrate them,
    /// restarted otherwise; the runs of tasks that fit nowhere else are
    /// stopped and their tasks wait in the queue. Use this rather than
    /// draining through [`scheduler_mut`](Self::scheduler_mut), which would
    /// leave the moves unexecuted.
    ///
    /// # Errors
    /// What [`CoreScheduler::drain`] refuses (an unknown or down node).
    pub async fn drain(&mut self, node: NodeId) -> Result<StepReport, lepton_core::Error> {
        let drained = self.scheduler.drain(node)?;
        Ok(self.execute(drained.moved, drained.requeued).await)
    }

    /// Carries out assignments: stops the runs they evict (and `stops`),
    /// live-migrates the moves that can be, launches the rest and the
    /// launches due for a retry.
    async fn execute(&mut self, assignments: Vec<Assignment>, stops: Vec<Run>) -> StepReport {
        let mut evicted = self.evict(&assignments).await;
        for run in stops {
            evicted.extend(self.stop_run(run, None).await);
        }
        let (migrated, assignments) = self.migrate(assignments, &mut evicted).await;
        let mut launches = self.due_retries();
        launches.extend(assignments.into_iter().filter_map(|a| self.prepare(a)));
        let launched = self.launch(launches).await;
        StepReport {
            launched,
            migrated,
            evicted,
            waiting_launches: self.waiting.len(),
            ..StepReport::default()
        }
    }

    /// Steps until no task is queued, backing off or running, or `limit`
    /// passes. Returns every run that ended meanwhile, with how.
    ///
    /// # Errors
    /// [`ControllerError::NotIdle`] when time runs out.
    pub async fn run_until_idle(
        &mut self,
        limit: Duration,
    ) -> Result<Vec<(Handle, RunStatus)>, ControllerError> {
        let started = Instant::now();
        let mut ended = Vec::new();
        loop {
            ended.extend(self.step().await.ended);
            let counts = self.scheduler.task_counts();
            if counts.queued + counts.backing_off + counts.running == 0 && self.waiting.is_empty() {
                return Ok(ended);
            }
            if started.elapsed() > limit {
                return Err(ControllerError::NotIdle(limit));
            }
            tokio::time::sleep(self.pause()).await;
        }
    }

    /// The wait before the next step: a [`tick`](ControllerConfig::tick),
    /// or none while the last cycle left queued tasks to the next (see
    /// [`max_tasks_per_cycle`](lepton_core::scheduler::SchedulerConfig::max_tasks_per_cycle)).
    fn pause(&self) -> Duration {
        if self.scheduler.cycle_cut_short() {
            Duration::ZERO
        } else {
            self.config.tick
        }
    }

    /// Steps, with a [`tick`](ControllerConfig::tick) between two steps
    /// (none after a cycle cut short by its limit), until `shutdown`
    /// resolves; returns what the steps did. The first step is taken at
    /// once.
    ///
    /// `shutdown` is heeded between steps: a step under way is finished
    /// first, since one cut short could lose the handle of a run it has
    /// just launched. So `run` returns at most one step after `shutdown`
    /// resolves, and at once if it already has. The runs still going are
    /// left running: stop them with [`shutdown`](Self::shutdown).
    ///
    /// ```no_run
    /// # async fn serve(backend: std::sync::Arc<dyn lepton_core::backend::Backend>) -> Result<(), lepton_controller::ControllerError> {
    /// use lepton_controller::{Controller, ControllerConfig};
    /// use lepton_core::CoreScheduler;
    /// use lepton_policies::BestFit;
    ///
    /// let scheduler = CoreScheduler::new(Box::new(BestFit));
    /// let mut controller =
    ///     Controller::new(scheduler, vec![backend], ControllerConfig::default()).await?;
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// // … hand `stop` to whatever decides when the service ends …
    /// # drop(stop);
    /// let summary = controller
    ///     .run(async {
    ///         let _ = stopped.await;
    ///     })
    ///     .await;
    /// println!("{} steps, {} runs ended", summary.steps, summary.ended);
    /// controller.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> LoopSummary {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut summary = LoopSummary::default();
        let mut pause = Duration::ZERO;
        loop {
            tokio::select! {
                // The signal first: one already given stops before a step.
                biased;
                () = &mut shutdown => return summary,
                () = tokio::time::sleep(pause) => {}
            }
            summary.add(&self.step().await);
            pause = self.pause();
        }
    }

    /// Stops every run still going and returns the scheduler. Runs that
    /// cannot be stopped now (backend unreachable) are named in the log;
    /// a later controller stops them as orphans.
    pub async fn shutdown(mut self) -> CoreScheduler {
        for handle in std::mem::take(&mut self.runs).into_values() {
            if let Some(backend) = self.backend_of(handle.node) {
                if let Err(error) = backend.stop(&handle).await {
                    warn!(%handle, %error, "could not stop at shutdown");
                }
            }
        }
        self.scheduler
    }

    /// Whether this step is one of every `every` (never for 0).
    fn due(&self, every: u32) -> bool {
        every > 0 && self.steps.is_multiple_of(u64::from(every))
    }

    pub(crate) fn backend_of(&self, node: NodeId) -> Option<Arc<dyn Backend>> {
        let i = *self.node_backend.get(&node)?;
        self.backends.get(i).cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use lepton_core::scheduler::SchedulerConfig;
    use lepton_core::Resources;

    use super::*;
    use crate::test_support::{controller_of, controller_with, start_all, Fake};

    #[tokio::test]
    async fn a_run_past_its_timeout_is_stopped_and_its_task_retried() {
        let backend = Fake::new(|_| Duration::ZERO);
        let (mut controller, ends) =
            controller_with(&backend, ControllerConfig::default(), 0).await;
        let task = TaskSpec::new(TaskId(1), Resources::new(100, 64)).with_timeout_ms(100);
        controller.submit(&task).unwrap();
        start_all(&mut controller, 1).await;
        let first = Run {
            task: TaskId(1),
            attempt: 1,
        };
        let report = controller.step().await;
        assert!(report.evicted.is_empty(), "not due yet");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let report = controller.step().await;
        let evicted: Vec<Run> = report.evicted.iter().map(|h| h.run).collect();
        assert_eq!(evicted, vec![first]);
        assert_eq!(backend.stopped.lock().unwrap().clone(), vec![first]);
        assert_eq!(controller.scheduler().report().timeouts, 1);
        assert_eq!(ends.lock().unwrap().clone(), vec![TaskId(1)]);
        assert!(matches!(
            controller.scheduler().task_state(TaskId(1)),
            Some(TaskState::BackingOff { .. })
        ));
        assert_eq!(controller.handle(TaskId(1)), None, "no handle kept");
    }

    #[tokio::test]
    async fn run_completes_the_tasks_and_stops_when_told() {
        let backend = Fake::new(|_| Duration::from_millis(1));
        // Every run exits at its first poll, the step after its launch.
        backend.finish();
        let config = ControllerConfig {
            tick: Duration::from_millis(10),
            ..ControllerConfig::default()
        };
        let (mut controller, ends) = controller_with(&backend, config, 4).await;
        let told = Arc::new(Mutex::new(None));
        let shutdown = {
            let (ends, told) = (Arc::clone(&ends), Arc::clone(&told));
            async move {
                while ends.lock().unwrap().len() < 4 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                *told.lock().unwrap() = Some(Instant::now());
            }
        };
        let summary = tokio::time::timeout(Duration::from_secs(10), controller.run(shutdown))
            .await
            .expect("run stops once the tasks are done");
        let told = told.lock().unwrap().expect("shutdown resolved");
        assert!(
            told.elapsed() < Duration::from_secs(1),
            "returned {:?} after the signal",
            told.elapsed()
        );
        assert_eq!(controller.scheduler().task_counts().completed, 4);
        assert_eq!((summary.launched, summary.ended), (4, 4));
        assert!(summary.steps >= 2, "{summary:?}");
    }

    #[tokio::test]
    async fn run_heeds_shutdown_during_the_pause_between_steps() {
        let backend = Fake::new(|_| Duration::from_millis(1));
        let config = ControllerConfig {
            tick: Duration::from_secs(3_600),
            ..ControllerConfig::default()
        };
        let (mut controller, _) = controller_with(&backend, config, 2).await;
        // A signal already given: no step at all.
        let summary = controller.run(std::future::ready(())).await;
        assert_eq!(summary, LoopSummary::default());
        // A signal given while run waits out the hour-long tick.
        let shutdown = tokio::time::sleep(Duration::from_millis(50));
        let summary = tokio::time::timeout(Duration::from_secs(10), controller.run(shutdown))
            .await
            .expect("run returns without waiting out the tick");
        assert_eq!((summary.steps, summary.launched), (1, 2));
    }

    #[tokio::test]
    async fn run_takes_the_next_step_at_once_after_a_cycle_cut_short() {
        let backend = Fake::new(|_| Duration::from_millis(1));
        let config = ControllerConfig {
            tick: Duration::from_secs(3_600),
            ..ControllerConfig::default()
        };
        let mut scheduler = SchedulerConfig::default();
        scheduler.max_tasks_per_cycle = std::num::NonZeroUsize::new(1);
        let (mut controller, _) = controller_of(&backend, config, scheduler, 3).await;
        // Cycles of one task each: three steps launch the three, without
        // waiting out the hour-long tick between them; then run waits for
        // the signal (two seconds leave room for a busy machine).
        let shutdown = tokio::time::sleep(Duration::from_secs(2));
        let summary = tokio::time::timeout(Duration::from_secs(10), controller.run(shutdown))
            .await
            .expect("run returns at the signal");
        assert_eq!((summary.steps, summary.launched), (3, 3));
    }
}
