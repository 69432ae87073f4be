//! The control loop: Lepton's scheduler put to work on real backends.
//!
//! A [`Controller`] owns a [`CoreScheduler`] and one or more [`Backend`]s
//! and runs the loop of the design, one [`step`](Controller::step) at a
//! time: monitor (inventory as heartbeat, new nodes added), watch (poll the
//! status of every run, a bounded number at once, and turn endings into
//! events), place ([`schedule`](Scheduler::schedule)), execute
//! (live-migrate the runs that move where the backend can, stop what the
//! assignments evict, then launch, a bounded number at once), and recover
//! (failed runs are retried by the scheduler; a launch the backend could
//! not even receive is retried for the same run, so that nothing starts
//! twice). A service calls [`run`](Controller::run), which steps every
//! tick until its shutdown signal; a batch calls
//! [`run_until_idle`](Controller::run_until_idle), which steps until every
//! task has ended; [`shutdown`](Controller::shutdown) stops what still runs.
//!
//! Backends answer in whatever order they finish, but the scheduler hears
//! of it in a fixed order, so that the same runs and answers lead to the
//! same decisions: endings in the order of their tasks' ids (the runs are
//! kept by task in a `BTreeMap`), the outcomes of launches and migrations
//! in the order they were asked for, measured usage in the order of the
//! nodes' ids.
//!
//! A move (an assignment whose [`moves_from`](Assignment::moves_from) is
//! the task's running run: a drain, the rebalancer) is a live migration
//! when the run's backend [can migrate](Backend::can_migrate_to) to the new
//! node; when it cannot, or the migration fails, the run is stopped and
//! launched afresh there.
//!
//! Every decision gets a `tracing` span (`place`, `migrate`, `launch`,
//! `evict`, `end`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lepton_core::{
    Assignment, Backend, BackendError, CoreScheduler, Event, Handle, Launch, NodeId, Placement,
    Run, RunStatus, Scheduler, TaskId, TaskSpec, TaskState, Usage,
};
use tokio::task::JoinSet;
use tracing::{info, info_span, warn, Instrument};

/// Tunables of the [`Controller`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Pause between two steps of [`run`](Controller::run) and
    /// [`run_until_idle`](Controller::run_until_idle).
    /// Each step polls every run's status: seconds suit a cloud API's rate
    /// limits better than the default.
    pub tick: Duration,
    /// Launches (and, separately, live migrations) in flight at once, at most.
    pub max_concurrent_launches: usize,
    /// Status polls in flight at once, at most (at least one). Each step
    /// asks every run's status; fewer suit a cloud API's rate limits.
    pub max_concurrent_polls: usize,
    /// How long a launch the backend could not receive (unreachable, timed
    /// out) is retried, for the same run, before it counts as failed.
    pub launch_retry_for: Duration,
    /// Every this many steps, the runs' usage is measured and handed to the
    /// scheduler per node (0: never).
    pub usage_every: u32,
    /// Every this many steps, each backend's runs are listed and stale runs
    /// of known tasks stopped (0: only when the controller starts).
    pub sweep_every: u32,
}

impl Default for ControllerConfig {
    /// A step every 200 ms, 8 launches and 16 status polls at once,
    /// launches retried for 5 min, usage measured and stale runs swept
    /// every 10 steps.
    fn default() -> Self {
        ControllerConfig {
            tick: Duration::from_millis(200),
            max_concurrent_launches: 8,
            max_concurrent_polls: 16,
            launch_retry_for: Duration::from_secs(300),
            usage_every: 10,
            sweep_every: 10,
        }
    }
}

/// What can stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The scheduler refused something (a duplicate node id across backends, say).
    #[error(transparent)]
    Scheduler(#[from] lepton_core::Error),
    /// A backend failed in a way retrying will not fix.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// `run_until_idle` ran out of time; the tasks are still held.
    #[error("tasks still pending after {0:?}")]
    NotIdle(Duration),
}

/// What one [`step`](Controller::step) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Runs started.
    pub launched: Vec<Handle>,
    /// Runs moved by live migration, under their new run.
    pub migrated: Vec<Handle>,
    /// Runs stopped because an assignment evicted them, a drain found no
    /// other place for their task, or they outlived their task's timeout.
    pub evicted: Vec<Handle>,
    /// Runs that ended, with how, as the scheduler was told.
    pub ended: Vec<(Handle, RunStatus)>,
    /// Launches waiting for an unreachable backend.
    pub waiting_launches: usize,
    /// Backends that could not be reached this step.
    pub unreachable_backends: usize,
    /// Time the scheduler took to decide this step's placements (its
    /// [`schedule`](Scheduler::schedule) cycle; no backend call in it).
    pub deciding: Duration,
    /// Placements decided this step (launches, moves).
    pub decisions: usize,
}

/// What [`run`](Controller::run) did before it was told to stop: the
/// [`StepReport`]s of its steps, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopSummary {
    /// Steps taken.
    pub steps: u64,
    /// Runs started.
    pub launched: usize,
    /// Runs moved by live migration.
    pub migrated: usize,
    /// Runs stopped by evictions.
    pub evicted: usize,
    /// Runs that ended.
    pub ended: usize,
}

impl LoopSummary {
    fn add(&mut self, report: &StepReport) {
        self.steps += 1;
        self.launched += report.launched.len();
        self.migrated += report.migrated.len();
        self.evicted += report.evicted.len();
        self.ended += report.ended.len();
    }
}

/// A launch the backend could not receive yet.
#[derive(Debug)]
struct Waiting {
    launch: Launch,
    backend: usize,
    since: Instant,
}

/// Drives a [`CoreScheduler`] on real backends. See the module docs.
pub struct Controller {
    scheduler: CoreScheduler,
    backends: Vec<Arc<dyn Backend>>,
    config: ControllerConfig,
    /// Which backend each node belongs to.
    node_backend: HashMap<NodeId, usize>,
    /// The current run of each running task, by task: the order in which
    /// the runs' endings reach the scheduler.
    runs: BTreeMap<TaskId, Handle>,
    waiting: Vec<Waiting>,
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
            tokio::time::sleep(self.config.tick).await;
        }
    }

    /// Steps, with a [`tick`](ControllerConfig::tick) between two steps,
    /// until `shutdown` resolves; returns what the steps did. The first
    /// step is taken at once.
    ///
    /// `shutdown` is heeded between steps: a step under way is finished
    /// first, since one cut short could lose the handle of a run it has
    /// just launched. So `run` returns at most one step after `shutdown`
    /// resolves, and at once if it already has. The runs still going are
    /// left running: stop them with [`shutdown`](Self::shutdown).
    ///
    /// ```no_run
    /// # async fn serve(backend: std::sync::Arc<dyn lepton::Backend>) -> Result<(), lepton::ControllerError> {
    /// use lepton::{policies::BestFit, Controller, ControllerConfig, CoreScheduler};
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
            pause = self.config.tick;
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

    fn backend_of(&self, node: NodeId) -> Option<Arc<dyn Backend>> {
        let i = *self.node_backend.get(&node)?;
        self.backends.get(i).cloned()
    }

    /// Inventory from every backend, as heartbeats of its nodes; new nodes
    /// join. Returns how many backends could not be reached.
    async fn monitor(&mut self) -> usize {
        let mut unreachable = 0;
        for i in 0..self.backends.len() {
            match self.backends[i].inventory().await {
                Ok(nodes) => {
                    for node in nodes {
                        let id = node.id;
                        if self.node_backend.contains_key(&id) {
                            let _ = self.scheduler.handle(Event::Heartbeat(id));
                        } else if self.scheduler.add_node(&node).is_ok() {
                            info!(node = %id, backend = self.backends[i].name(), "node joined");
                            self.node_backend.insert(id, i);
                        }
                    }
                }
                Err(error) => {
                    unreachable += 1;
                    warn!(backend = self.backends[i].name(), %error, "inventory failed");
                }
            }
        }
        unreachable
    }

    /// Polls every run's status, at most `max_concurrent_polls` at once;
    /// endings become events, applied in the order of their tasks' ids
    /// whatever order the answers came in. A run whose status could not be
    /// had (an error, a panic in the backend) is asked again next step.
    /// Returns the runs that ended, in that order.
    async fn watch(&mut self) -> Vec<(Handle, RunStatus)> {
        let polls: Vec<(Handle, Arc<dyn Backend>)> = self
            .runs
            .values()
            .filter_map(|handle| Some((handle.clone(), self.backend_of(handle.node)?)))
            .collect();
        let answers = in_parallel(
            polls,
            self.config.max_concurrent_polls,
            |(handle, backend)| {
                let (handle, backend) = (handle.clone(), Arc::clone(backend));
                async move { backend.status(&handle).await }
            },
        )
        .await;
        let mut ended = Vec::new();
        for ((handle, backend), answer) in answers {
            let status = match answer {
                Some(Ok(status)) => status,
                // Unreachable: ask again next step; the run may well be fine.
                Some(Err(error)) => {
                    warn!(%handle, %error, "status unknown");
                    continue;
                }
                None => {
                    warn!(%handle, "status unknown: the backend panicked");
                    continue;
                }
            };
            let Some(event) = ending(handle.run, &status) else {
                continue;
            };
            {
                // Not held across an await: the span would stay entered on
                // this thread while the task is suspended.
                let _span = info_span!("end", run = %handle.run, node = %handle.node).entered();
                match self.scheduler.handle(event) {
                    Ok(()) => {
                        info!(state = ?self.scheduler.task_state(handle.run.task), "run ended")
                    }
                    Err(error) => warn!(%error, "report refused"),
                }
            }
            self.runs.remove(&handle.run.task);
            // Clean up what the run left; a failure here is retried as an orphan.
            if let Err(error) = backend.stop(&handle).await {
                warn!(%error, "could not remove an ended run");
            }
            ended.push((handle, status));
        }
        ended
    }

    /// Measures every run's usage and tells the scheduler each node's sum.
    /// Runs whose backend cannot measure (or be reached) are left out.
    async fn measure_usage(&mut self) {
        // By node: the order of the scheduler's `NodeUsage` events.
        let mut per_node: BTreeMap<NodeId, Usage> = BTreeMap::new();
        for handle in self.runs.values() {
            let Some(backend) = self.backend_of(handle.node) else {
                continue;
            };
            if let Ok(usage) = backend.usage(handle).await {
                per_node.entry(handle.node).or_default().accumulate(&usage);
            }
        }
        for (node, usage) in per_node {
            let _ = self.scheduler.handle(Event::NodeUsage { node, usage });
        }
    }

    /// The running run an assignment moves, and its backend, when that
    /// backend can live-migrate it to the assignment's node.
    fn live_move(&self, assignment: &Assignment) -> Option<(Handle, Arc<dyn Backend>)> {
        let run = assignment.moves_from()?;
        let from = self.runs.get(&run.task).filter(|h| h.run == run)?;
        let backend = self.backend_of(from.node)?;
        backend
            .can_migrate_to(assignment.node)
            .then(|| (from.clone(), backend))
    }

    /// Stops what assignments evict, except the runs that move live.
    /// Returns the runs stopped.
    async fn evict(&mut self, assignments: &[Assignment]) -> Vec<Handle> {
        let mut evicted = Vec::new();
        for assignment in assignments {
            let moving = self.live_move(assignment).map(|(from, _)| from.run);
            for &run in &assignment.evicts {
                if Some(run) != moving {
                    evicted.extend(self.stop_run(run, Some(assignment.run())).await);
                }
            }
        }
        evicted
    }

    /// Stops `run` if it is a current run (to make way for `for_run`);
    /// returns its handle.
    async fn stop_run(&mut self, run: Run, for_run: Option<Run>) -> Option<Handle> {
        if self.runs.get(&run.task)?.run != run {
            return None;
        }
        let handle = self.runs.remove(&run.task)?;
        let backend = self.backend_of(handle.node)?;
        let span = info_span!("evict", run = %run, for_run = ?for_run);
        if let Err(error) = backend.stop(&handle).instrument(span).await {
            warn!(%handle, %error, "could not stop an evicted run; stopped later as an orphan");
        }
        Some(handle)
    }

    /// Live-migrates the moves whose backend can (after [`evict`](Self::evict)
    /// made room), at most `max_concurrent_launches` at once. Returns the
    /// runs moved and the assignments left to launch: the others, and the
    /// moves whose migration failed, their old run stopped and added to
    /// `evicted`.
    async fn migrate(
        &mut self,
        assignments: Vec<Assignment>,
        evicted: &mut Vec<Handle>,
    ) -> (Vec<Handle>, Vec<Assignment>) {
        let mut rest = Vec::new();
        let mut moves = Vec::new();
        for assignment in assignments {
            let live = self
                .live_move(&assignment)
                .and_then(|found| Some((found, self.launch_of(&assignment)?)));
            match live {
                Some(((from, backend), launch)) => moves.push((assignment, from, backend, launch)),
                None => rest.push(assignment),
            }
        }
        let results = in_parallel(
            moves,
            self.config.max_concurrent_launches,
            |(_, from, backend, launch)| {
                let (from, backend, launch) = (from.clone(), Arc::clone(backend), launch.clone());
                let span =
                    info_span!("migrate", from = %from.run, run = %launch.run, node = %launch.node);
                async move { backend.migrate(&from, &launch).await }.instrument(span)
            },
        )
        .await;
        let mut migrated = Vec::new();
        for ((assignment, from, _, _), result) in results {
            let error = match result {
                Some(Ok(handle)) => {
                    info!(%from, %handle, "migrated live");
                    self.runs.insert(handle.run.task, handle.clone());
                    migrated.push(handle);
                    continue;
                }
                Some(Err(error)) => error.to_string(),
                None => "the backend panicked in migrate".to_owned(),
            };
            warn!(%from, %error, "live migration failed; the run restarts instead");
            evicted.extend(self.stop_run(from.run, Some(assignment.run())).await);
            rest.push(assignment);
        }
        (migrated, rest)
    }

    /// The launch of an assignment.
    fn prepare(&self, assignment: Assignment) -> Option<Waiting> {
        let _span = info_span!("place", run = %assignment.run(), node = %assignment.node).entered();
        let backend = *self.node_backend.get(&assignment.node)?;
        let launch = self.launch_of(&assignment)?;
        info!(gpus = ?assignment.gpus, "placed");
        Some(Waiting {
            launch,
            backend,
            since: Instant::now(),
        })
    }

    /// What the backend is asked to start for an assignment; `None` for a
    /// task the scheduler no longer knows.
    fn launch_of(&self, assignment: &Assignment) -> Option<Launch> {
        Some(Launch {
            run: assignment.run(),
            node: assignment.node,
            task: self.scheduler.task(assignment.task)?.clone(),
            gpus: assignment.gpus.clone(),
        })
    }

    /// Waiting launches to try again now; those waiting too long, or whose
    /// run is no longer current, are given up.
    fn due_retries(&mut self) -> Vec<Waiting> {
        let mut due = Vec::new();
        for waiting in std::mem::take(&mut self.waiting) {
            let run = waiting.launch.run;
            if self.scheduler.current_run(run.task) != Some(run)
                || !matches!(
                    self.scheduler.task_state(run.task),
                    Some(TaskState::Running { .. })
                )
            {
                continue;
            }
            if waiting.since.elapsed() > self.config.launch_retry_for {
                let reason = format!("backend unreachable for {:?}", self.config.launch_retry_for);
                self.launch_failed(run, reason);
                continue;
            }
            due.push(waiting);
        }
        due
    }

    /// Launches, at most `max_concurrent_launches` at once. Returns the runs started.
    async fn launch(&mut self, launches: Vec<Waiting>) -> Vec<Handle> {
        let backends = &self.backends;
        let results = in_parallel(launches, self.config.max_concurrent_launches, |waiting| {
            let backend = Arc::clone(&backends[waiting.backend]);
            let launch = waiting.launch.clone();
            let span = info_span!("launch", run = %launch.run, node = %launch.node);
            async move { backend.launch(&launch).await }.instrument(span)
        })
        .await;
        let mut started = Vec::new();
        for (waiting, result) in results {
            let run = waiting.launch.run;
            match result {
                Some(Ok(handle)) => {
                    started.push(handle.clone());
                    self.runs.insert(run.task, handle);
                }
                Some(Err(error)) if error.is_retryable() => {
                    warn!(%run, %error, "launch deferred: backend unreachable");
                    self.waiting.push(waiting);
                }
                Some(Err(error)) => self.launch_failed(run, error.to_string()),
                // What it may have started is stopped as an orphan.
                None => self.launch_failed(run, "the backend panicked in launch".to_owned()),
            }
        }
        started
    }

    fn launch_failed(&mut self, run: Run, reason: String) {
        warn!(%run, %reason, "launch failed");
        if let Err(error) = self.scheduler.handle(Event::LaunchFailed { run, reason }) {
            warn!(%run, %error, "launch failure refused");
        }
    }

    /// Stops every run a backend holds for a task of this scheduler that
    /// is not the task's current run: left by a stop that failed, by a
    /// launch whose answer was lost (it is launched again, once), or by an
    /// earlier controller of the same tasks. Runs of tasks this scheduler
    /// does not know are left alone: another controller may own them.
    async fn stop_orphans(&mut self) {
        for backend in &self.backends {
            let Ok(found) = backend.running().await else {
                continue;
            };
            for handle in found {
                let known = self.scheduler.task(handle.run.task).is_some();
                let current = self.runs.get(&handle.run.task) == Some(&handle);
                if known && !current {
                    info!(%handle, "stopping an orphan");
                    let _ = backend.stop(&handle).await;
                }
            }
        }
    }
}

/// The event that tells the scheduler how `run` ended, `None` while it runs.
fn ending(run: Run, status: &RunStatus) -> Option<Event> {
    Some(match status {
        RunStatus::Starting | RunStatus::Running => return None,
        RunStatus::Exited { code: 0 } => Event::TaskCompleted(run),
        RunStatus::Exited { code } => Event::TaskFailed {
            run,
            reason: format!("exit code {code}"),
        },
        RunStatus::Failed { reason } => Event::TaskFailed {
            run,
            reason: reason.clone(),
        },
        RunStatus::Gone => Event::TaskFailed {
            run,
            reason: "gone from the backend".to_owned(),
        },
        // A status newer than this controller: not an end it can vouch for.
        _ => return None,
    })
}

/// Runs `work` on every item, at most `limit` (at least one) at once, each
/// in a task of its own. Returns every item with its result, in the order
/// of `items` whatever order they finish in, so that what the caller does
/// with the results (events to the scheduler) is deterministic; `None` for
/// work that panicked, so that no item is lost.
async fn in_parallel<T, R, F, Fut>(items: Vec<T>, limit: usize, work: F) -> Vec<(T, Option<R>)>
where
    F: Fn(&T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    let mut positions = HashMap::new();
    let mut in_flight = JoinSet::new();
    let mut next = 0;
    loop {
        while in_flight.len() < limit.max(1) && next < items.len() {
            positions.insert(in_flight.spawn(work(&items[next])).id(), next);
            next += 1;
        }
        match in_flight.join_next_with_id().await {
            None => break,
            Some(Ok((id, result))) => {
                if let Some(&at) = positions.get(&id) {
                    results[at] = Some(result);
                }
            }
            // A panic leaves the item's result `None`.
            Some(Err(_)) => {}
        }
    }
    items.into_iter().zip(results).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use async_trait::async_trait;
    use lepton_core::{FeasibleNodes, Feedback, NodeSpec, Placement, Policy, Resources};
    use lepton_policies::FirstFit;

    use super::*;

    /// An in-process backend with one roomy node, for tests of the
    /// controller itself: its runs run until [`finish`](Self::finish), and
    /// it counts how many `status` calls are in flight at once, each one
    /// taking as long as `latency` says for its task.
    struct Fake {
        latency: fn(TaskId) -> Duration,
        finished: AtomicBool,
        /// The first status poll of this task panics.
        panics_once: Mutex<Option<TaskId>>,
        polls: AtomicUsize,
        polls_in_flight: AtomicUsize,
        most_polls_in_flight: AtomicUsize,
        /// The runs it was asked to stop, in order.
        stopped: Mutex<Vec<Run>>,
    }

    const NODE: NodeId = NodeId(1);

    impl Fake {
        fn new(latency: fn(TaskId) -> Duration) -> Arc<Self> {
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
        fn finish(&self) {
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
    async fn controller_with(
        backend: &Arc<Fake>,
        config: ControllerConfig,
        tasks: u64,
    ) -> (Controller, Arc<Mutex<Vec<TaskId>>>) {
        let ends = Arc::new(Mutex::new(Vec::new()));
        let scheduler = CoreScheduler::new(Box::new(Recording(Arc::clone(&ends))));
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
    async fn start_all(controller: &mut Controller, tasks: u64) {
        let report = controller.step().await;
        assert_eq!(report.launched.len() as u64, tasks);
    }

    /// The tasks whose runs ended in a step, in the report's order.
    fn ended_tasks(report: &StepReport) -> Vec<TaskId> {
        report
            .ended
            .iter()
            .map(|(handle, _)| handle.run.task)
            .collect()
    }

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
    async fn status_polls_overlap_up_to_the_bound_and_no_further() {
        let backend = Fake::new(|_| Duration::from_millis(50));
        let config = ControllerConfig {
            max_concurrent_polls: 3,
            ..ControllerConfig::default()
        };
        let (mut controller, _) = controller_with(&backend, config, 10).await;
        start_all(&mut controller, 10).await;
        let report = controller.step().await;
        assert!(report.ended.is_empty());
        assert_eq!(backend.polls.load(Ordering::SeqCst), 10);
        assert_eq!(backend.most_polls_in_flight.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_status_poll_that_panics_loses_no_run() {
        let backend = Fake::new(|_| Duration::from_millis(1));
        *backend.panics_once.lock().unwrap() = Some(TaskId(2));
        let (mut controller, ends) =
            controller_with(&backend, ControllerConfig::default(), 3).await;
        start_all(&mut controller, 3).await;
        backend.finish();
        let ended = ended_tasks(&controller.step().await);
        assert_eq!(ended, [TaskId(1), TaskId(3)]);
        assert!(
            controller.handle(TaskId(2)).is_some(),
            "the run is still held"
        );
        let ended = ended_tasks(&controller.step().await);
        assert_eq!(ended, [TaskId(2)]);
        assert_eq!(*ends.lock().unwrap(), [TaskId(1), TaskId(3), TaskId(2)]);
        assert_eq!(controller.scheduler().task_counts().completed, 3);
    }

    /// The order in which the scheduler hears of 16 runs ending in one
    /// step, their status answers coming back in the order `latency` makes.
    async fn order_of_ends(latency: fn(TaskId) -> Duration) -> Vec<TaskId> {
        let backend = Fake::new(latency);
        let (mut controller, ends) =
            controller_with(&backend, ControllerConfig::default(), 16).await;
        start_all(&mut controller, 16).await;
        backend.finish();
        assert_eq!(controller.step().await.ended.len(), 16);
        let ends = ends.lock().unwrap().clone();
        ends
    }

    #[tokio::test]
    async fn endings_reach_the_scheduler_in_task_order_whatever_order_the_polls_answer_in() {
        // Last task answers first.
        let first = order_of_ends(|task| Duration::from_millis(40 - 2 * task.0)).await;
        // A shuffle: 7 is coprime with 16.
        let second = order_of_ends(|task| Duration::from_millis(2 * (task.0 * 7 % 16))).await;
        let by_task: Vec<TaskId> = (1..=16).map(TaskId).collect();
        assert_eq!(first, second);
        assert_eq!(first, by_task);
    }

    #[tokio::test]
    async fn in_parallel_keeps_every_item_in_order_and_the_limit() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let results = in_parallel((0..10).collect(), 3, |&item: &u32| {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Later items finish first: the results must not follow.
                tokio::time::sleep(Duration::from_millis(u64::from(20 - item))).await;
                running.fetch_sub(1, Ordering::SeqCst);
                assert!(item != 4, "work for item 4 panics");
                item * 10
            }
        })
        .await;
        let expected: Vec<(u32, Option<u32>)> = (0..10)
            .map(|item| (item, (item != 4).then_some(item * 10)))
            .collect();
        assert_eq!(results, expected);
        assert_eq!(most.load(Ordering::SeqCst), 3);
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
}
