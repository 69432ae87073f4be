//! The control loop of the service, on a thread of its own: it owns the
//! [`Controller`], steps it every tick, applies the API's commands between
//! steps, writes what happened to the store and publishes a [`View`] the
//! API reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use lepton::admission::{ready_capacity, Admission, Amounts, Limits};
use lepton::backend::{Backend, Handle, RunStatus};
use lepton::policies::{build, PolicyContext};
use lepton::scheduler::{Explanation, Plan, SchedulerConfig, Submitter, TaskState};
use lepton::{Controller, ControllerConfig, CoreScheduler, NodeId, Scheduler, TaskId, TaskSpec};
use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::store::{Change, Finished, Store, Stored};

use crate::ServiceError;

mod view;
pub(crate) use view::{state_index, Order, PageRequest, View, STATES};

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    /// The task's id.
    pub id: u64,
    /// Its name, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `queued` (waiting or waiting to be retried), `running`, `completed`,
    /// `failed` or `cancelled`.
    pub state: &'static str,
    /// Its priority: higher is served first.
    pub priority: u8,
    /// The tenant queue it was submitted to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Runs so far.
    pub attempts: u32,
    /// The node it runs on, while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    /// How its CPU and memory limits are applied there, on the local
    /// backend: `v1` or `v2` (cgroups), or `none` where the machine offers
    /// no writable cgroup (the run goes unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<String>,
    /// Why its runs failed, oldest first.
    pub reasons: Vec<String>,
}

/// A node as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    /// The node's id.
    pub id: u64,
    /// Its name.
    pub name: Option<String>,
    /// `ready`, `cordoned` or `down`.
    pub state: String,
    /// CPU capacity and use, milli-cores.
    pub cpu_milli: u64,
    /// CPU booked by running tasks, milli-cores.
    pub cpu_used_milli: u64,
    /// Memory capacity, MiB.
    pub memory_mib: u64,
    /// Memory booked, MiB.
    pub memory_used_mib: u64,
    /// Tasks running there.
    pub tasks: usize,
    /// Its labels (`lepton.cgroups` says how limits are applied).
    pub labels: BTreeMap<String, String>,
}

/// A tenant queue as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueView {
    /// Its path.
    pub name: String,
    /// Its weight in the fair share.
    pub weight: f64,
    /// Its maxima (absent: no limit).
    pub max: Limits,
    /// What it is promised (absent: nothing).
    pub guarantee: Limits,
    /// What the admitted tasks of it and of the queues below it hold.
    pub usage: Amounts,
    /// Its tasks waiting to be admitted.
    pub waiting: usize,
    /// Its weighted dominant share of the ready nodes: what DRF orders by
    /// (lowest first).
    pub dominant_share: f64,
}

/// What the API asks the loop to do; each gets an answer.
#[derive(Debug)]
pub(crate) enum Command {
    Cancel(TaskId, oneshot::Sender<Result<(), ServiceError>>),
    Cordon(NodeId, bool, oneshot::Sender<Result<(), ServiceError>>),
    Drain(NodeId, oneshot::Sender<Result<(), ServiceError>>),
    SetPolicy(String, oneshot::Sender<Result<(), ServiceError>>),
    /// Why a task waits (`None`: unknown to the scheduler).
    Explain(TaskId, oneshot::Sender<Option<Explanation>>),
    /// Where tasks would go, without changing anything.
    Plan(Vec<TaskSpec>, oneshot::Sender<Result<Plan, ServiceError>>),
}

/// What the API holds of the loop.
#[derive(Debug, Clone)]
pub(crate) struct EngineHandle {
    pub(crate) view: Arc<RwLock<View>>,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) submitter: Submitter,
}

/// The loop's settings.
pub(crate) struct EngineConfig {
    /// The scheduler's tunables (retries, heartbeats).
    pub(crate) scheduler: SchedulerConfig,
    /// What policies are built with (the rules of `rule`).
    pub(crate) policies: PolicyContext,
    pub(crate) tick: Duration,
    pub(crate) max_concurrent_launches: usize,
    pub(crate) policy: String,
    /// The tenant queues, holding no task.
    pub(crate) queues: Arc<Admission>,
}

/// Starts the loop on its own thread: loads the stored state, adopts the
/// runs the backend still holds, and steps until `shutdown` fires.
pub(crate) fn start(
    backends: Vec<Arc<dyn Backend>>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    config: EngineConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(EngineHandle, std::thread::JoinHandle<()>), ServiceError> {
    let (ready, started) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("lepton-engine".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready.send(Err(ServiceError::Start(format!("runtime: {e}"))));
                    return;
                }
            };
            runtime.block_on(async move {
                let (engine, handle) =
                    match Engine::recover(backends, store, metrics, &config).await {
                        Ok(pair) => pair,
                        Err(error) => {
                            let _ = ready.send(Err(error));
                            return;
                        }
                    };
                let _ = ready.send(Ok(handle.0));
                engine.run(handle.1, shutdown).await;
            });
        })
        .map_err(|e| ServiceError::Start(format!("cannot start the control loop: {e}")))?;
    let handle = started
        .recv()
        .map_err(|_| ServiceError::Start("the control loop stopped at start".into()))??;
    Ok((handle, thread))
}

struct Engine {
    controller: Controller,
    store: Arc<dyn Store>,
    view: Arc<RwLock<View>>,
    metrics: Arc<Metrics>,
    policies: PolicyContext,
    tick: Duration,
}

impl Engine {
    /// The loop after a (re)start: the stored tasks, their runs adopted.
    async fn recover(
        backends: Vec<Arc<dyn Backend>>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        config: &EngineConfig,
    ) -> Result<(Engine, (EngineHandle, mpsc::Receiver<Command>)), ServiceError> {
        let stored = store.load()?;
        check_queues(&stored, &config.queues)?;
        let policy_name = stored
            .policy
            .clone()
            .unwrap_or_else(|| config.policy.clone());
        let policy = build(&policy_name, &config.policies)
            .map_err(|e| ServiceError::Start(e.to_string()))?;
        let controller_config = ControllerConfig {
            tick: config.tick,
            max_concurrent_launches: config.max_concurrent_launches,
            ..ControllerConfig::default()
        };
        let mut live = Vec::new();
        for backend in &backends {
            match backend.running().await {
                Ok(handles) => live.extend(handles),
                // Its runs are found by the controller's sweep once it answers.
                Err(error) => warn!(backend = backend.name(), %error, "cannot list its runs"),
            }
        }
        let mut controller = Controller::new(
            scheduler(policy, config.scheduler.clone(), &config.queues),
            backends,
            controller_config,
        )
        .await
        .map_err(|e| ServiceError::Start(e.to_string()))?;
        // Each step refreshes the view's tasks that changed, no others.
        controller.scheduler_mut().track_changes();
        let adopted = restore(&mut controller, &stored, live).await;
        info!(
            tasks = stored.tasks.len(),
            finished = stored.finished.len(),
            adopted,
            "state loaded"
        );
        for node in &stored.cordoned {
            if let Err(error) = controller.scheduler_mut().cordon(*node) {
                warn!(%node, %error, "a cordoned node is gone");
            }
        }
        let view = Arc::new(RwLock::new(View::default()));
        {
            let mut view = view.write();
            for (id, spec) in &stored.tasks {
                let task = match stored.finished.get(id) {
                    Some(end) => ended_view(spec, end),
                    None => live_view(controller.scheduler(), spec),
                };
                view.insert(task);
            }
        }
        // Runs that ended while no service watched ended their tasks now.
        let ended: Vec<Change> = stored
            .tasks
            .keys()
            .filter(|id| !stored.finished.contains_key(id))
            .filter_map(|id| finished(&controller, *id).map(|end| Change::Finished(*id, end)))
            .collect();
        store.apply(ended)?;
        let submitter = controller.scheduler().submitter();
        let (commands, inbox) = mpsc::channel(64);
        let mut engine = Engine {
            controller,
            store,
            view: Arc::clone(&view),
            metrics,
            policies: config.policies.clone(),
            tick: config.tick,
        };
        let changed = engine.controller.scheduler_mut().take_changes();
        engine.publish(changed);
        Ok((
            engine,
            (
                EngineHandle {
                    view,
                    commands,
                    submitter,
                },
                inbox,
            ),
        ))
    }

    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Command>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        // Steps and commands take turns when both are ready (`select!`
        // picks at random): a stream of commands never holds the steps back,
        // and a step slower than a tick (a backend that answers slowly)
        // never starves the commands.
        let mut ticks = tokio::time::interval(self.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticks.tick() => self.step().await,
                Some(command) = inbox.recv() => self.command(command).await,
            }
        }
    }

    async fn step(&mut self) {
        // A deposed leader launches nothing: the store says whether this
        // instance may still act, before anything is done.
        if let Err(error) = self.store.check() {
            warn!(%error, "step skipped");
            return;
        }
        let report = self.controller.step().await;
        self.metrics.step(&report);
        let mut changes: Vec<Change> = report
            .launched
            .iter()
            .chain(&report.migrated)
            .cloned()
            .map(Change::Run)
            .collect();
        // Every task that ended this step: by its run's end, or without a
        // run (refused when taken in, its gang never started).
        let changed = self.controller.scheduler_mut().take_changes();
        {
            let view = self.view.read();
            for &task in &changed {
                let shown_ended = view
                    .tasks
                    .get(&task)
                    .is_some_and(|t| !matches!(t.state, "queued" | "running"));
                if let Some(end) = self.finished(task).filter(|_| !shown_ended) {
                    changes.push(Change::Finished(task, end));
                }
            }
        }
        if let Err(error) = self.store.apply(changes) {
            // What it would have said is in memory and in the backend: a
            // restart learns it again from the backend's runs.
            warn!(%error, "store write failed");
        }
        self.publish(changed);
    }

    fn finished(&self, task: TaskId) -> Option<Finished> {
        finished(&self.controller, task)
    }

    /// Carries out a command; answers once the view shows its effect.
    async fn command(&mut self, command: Command) {
        let (result, reply) = match command {
            Command::Explain(task, reply) => {
                let _ = reply.send(self.controller.scheduler().explain(task));
                return;
            }
            Command::Plan(tasks, reply) => {
                let scheduler = self.controller.scheduler();
                let plan = build(scheduler.policy_name(), &self.policies)
                    .map_err(|e| ServiceError::Internal(e.to_string()))
                    .and_then(|policy| {
                        scheduler
                            .plan(policy, &tasks)
                            .map_err(|e| ServiceError::BadRequest {
                                field: "body".into(),
                                message: e.to_string(),
                            })
                    });
                let _ = reply.send(plan);
                return;
            }
            Command::Cancel(task, reply) => (self.cancel(task).await, reply),
            Command::Cordon(node, cordon, reply) => {
                let scheduler = self.controller.scheduler_mut();
                let done = if cordon {
                    scheduler.cordon(node)
                } else {
                    scheduler.uncordon(node)
                };
                (self.persist(done, Change::Cordoned(node, cordon)), reply)
            }
            Command::Drain(node, reply) => {
                let done = self.controller.drain(node).await.map(drop);
                (self.persist(done, Change::Cordoned(node, true)), reply)
            }
            Command::SetPolicy(name, reply) => {
                let result = match build(&name, &self.policies) {
                    Ok(policy) => {
                        self.controller.scheduler_mut().set_policy(policy);
                        self.persist(Ok(()), Change::Policy(name))
                    }
                    Err(error) => Err(ServiceError::BadRequest {
                        field: "name".into(),
                        message: error.to_string(),
                    }),
                };
                (result, reply)
            }
        };
        let changed = self.controller.scheduler_mut().take_changes();
        self.publish(changed);
        let _ = reply.send(result);
    }

    /// Stores `change` once the scheduler `done` it.
    fn persist(&self, done: Result<(), lepton::Error>, change: Change) -> Result<(), ServiceError> {
        done?;
        self.store.apply(vec![change])?;
        Ok(())
    }

    async fn cancel(&mut self, task: TaskId) -> Result<(), ServiceError> {
        self.controller.cancel(task).await?;
        let end = self.finished(task).unwrap_or(Finished {
            state: "cancelled".into(),
            attempts: 0,
            reasons: Vec::new(),
        });
        self.store.apply(vec![Change::Finished(task, end)])?;
        Ok(())
    }

    /// Refreshes the view: the tasks whose state `changed` since the last
    /// refresh, the nodes, the policy.
    fn publish(&mut self, changed: Vec<TaskId>) {
        let scheduler = self.controller.scheduler();
        let nodes = scheduler
            .cluster()
            .nodes()
            .iter()
            .map(|node| {
                let spec = node.spec();
                let free = node.free();
                NodeView {
                    id: node.id().0,
                    name: spec.name.clone(),
                    state: node.state().to_string(),
                    cpu_milli: spec.capacity.cpu_milli,
                    cpu_used_milli: spec.capacity.cpu_milli.saturating_sub(free.cpu_milli),
                    memory_mib: spec.capacity.memory_mib,
                    memory_used_mib: spec.capacity.memory_mib.saturating_sub(free.memory_mib),
                    tasks: scheduler.cluster().tasks_on(node.id()).len(),
                    labels: spec
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }
            })
            .collect();
        let mut view = self.view.write();
        for id in changed {
            if let Some(spec) = scheduler.task(id) {
                view.insert(live_view(scheduler, spec));
            }
        }
        view.nodes = nodes;
        view.policy = scheduler.policy_name().to_owned();
        view.queue_len = scheduler.queue_len();
        view.queues = queue_views(scheduler);
        let queued = view.queued_by_priority();
        let states = view.counts();
        self.metrics.observe(&scheduler.report(), &queued, &states);
    }
}

/// Takes the stored tasks that have not ended back in. Each one's latest
/// run — the newest the backend still holds, else the one the store names
/// — is adopted with what the backend says of it now (an ended run ends its
/// task or is retried; ended runs first, so that each holds its resources
/// only while it is taken in); the others are queued. Every other run of a
/// stored task is removed. Returns how many runs were adopted.
async fn restore(controller: &mut Controller, stored: &Stored, live: Vec<Handle>) -> usize {
    let mut latest: HashMap<TaskId, Handle> = HashMap::new();
    for handle in live.iter().cloned() {
        let newer = latest
            .get(&handle.run.task)
            .is_none_or(|known| known.run.attempt < handle.run.attempt);
        if newer {
            latest.insert(handle.run.task, handle);
        }
    }
    let mut found = Vec::new();
    for (id, spec) in &stored.tasks {
        if stored.finished.contains_key(id) {
            continue;
        }
        match latest.remove(id).or_else(|| stored.runs.get(id).cloned()) {
            Some(handle) => {
                let status = controller
                    .status(&handle)
                    .await
                    .unwrap_or(RunStatus::Running);
                found.push((spec, handle, status));
            }
            None => {
                if let Err(error) = controller.submit(spec) {
                    warn!(task = %id, %error, "a stored task was refused");
                }
            }
        }
    }
    // Ended runs first: each is taken in and released at once.
    found.sort_by_key(|(_, _, status)| matches!(status, RunStatus::Running | RunStatus::Starting));
    let mut adopted = 0;
    for (spec, handle, status) in found {
        match controller.adopt(spec, handle.clone(), &status) {
            Ok(()) => adopted += 1,
            Err(error) => {
                warn!(%handle, %error, "cannot adopt; queued again");
                if let Err(error) = controller.submit(spec) {
                    warn!(task = %spec.id, %error, "a stored task was refused");
                }
            }
        }
    }
    // What no task runs any more — runs of ended tasks, older attempts,
    // runs adopted as ended — is removed now: the sweep stops only runs
    // of the tasks the scheduler holds, so a crash before it would leave
    // an ended task's run to no one. Removing is idempotent, whatever
    // number of crashes cut it short.
    for handle in live {
        let ours = stored.tasks.contains_key(&handle.run.task);
        if ours && controller.handle(handle.run.task) != Some(&handle) {
            if let Err(error) = controller.remove_run(&handle).await {
                warn!(%handle, %error, "cannot remove a run left from before the restart");
            }
        }
    }
    adopted
}

/// Refuses to start when a stored task that has not ended names a queue
/// the configuration no longer declares, or one it no longer fits: taken
/// in, it would be refused and lost from the scheduler.
fn check_queues(stored: &Stored, queues: &Admission) -> Result<(), ServiceError> {
    for (id, spec) in &stored.tasks {
        let Some(queue) = spec.queue.as_deref() else {
            continue;
        };
        if stored.finished.contains_key(id) {
            continue;
        }
        queues.check(queue, spec).map_err(|e| {
            ServiceError::Start(format!(
                "a stored task that has not ended: {e}; declare the queue \
                 ([[queue]]) as it was until its tasks end"
            ))
        })?;
    }
    Ok(())
}

/// The service's scheduler: a task that found no node is tried again as
/// soon as a run ends, not only when its backoff does.
fn scheduler(
    policy: Box<dyn lepton::Policy>,
    mut config: SchedulerConfig,
    queues: &Admission,
) -> CoreScheduler {
    config.retry_waiting_on_release = true;
    CoreScheduler::builder(policy)
        .config(config)
        .queues(queues)
        .build()
}

/// The tenant queues as the API shows them.
fn queue_views(scheduler: &CoreScheduler) -> Vec<QueueView> {
    let Some(admission) = scheduler.admission() else {
        return Vec::new();
    };
    let capacity = ready_capacity(scheduler.cluster());
    admission
        .queues()
        .map(|queue| {
            let usage = admission.usage(&queue.name).unwrap_or_default();
            QueueView {
                name: queue.name.clone(),
                weight: queue.weight,
                max: queue.max,
                guarantee: queue.guarantee,
                usage,
                waiting: admission.waiting(&queue.name),
                dominant_share: usage.dominant_share(capacity) / queue.weight,
            }
        })
        .collect()
}

/// The task's end, if it ended.
fn finished(controller: &Controller, task: TaskId) -> Option<Finished> {
    let scheduler = controller.scheduler();
    let state = match scheduler.task_state(task)? {
        TaskState::Completed => "completed",
        TaskState::Failed { .. } => "failed",
        TaskState::Cancelled => "cancelled",
        _ => return None,
    };
    Some(Finished {
        state: state.to_owned(),
        attempts: scheduler.current_run(task).map_or(0, |run| run.attempt),
        reasons: scheduler.failures(task).to_vec(),
    })
}

fn state_name(state: Option<&TaskState>) -> &'static str {
    match state {
        Some(TaskState::Running { .. }) => "running",
        Some(TaskState::Completed) => "completed",
        Some(TaskState::Failed { .. }) => "failed",
        Some(TaskState::Cancelled) => "cancelled",
        _ => "queued",
    }
}

fn live_view(scheduler: &CoreScheduler, spec: &TaskSpec) -> TaskView {
    let state = scheduler.task_state(spec.id);
    TaskView {
        id: spec.id.0,
        name: spec.name.clone(),
        state: state_name(state),
        priority: spec.priority.0,
        queue: spec.queue.clone(),
        attempts: scheduler.current_run(spec.id).map_or(0, |run| run.attempt),
        node: match state {
            Some(TaskState::Running { node }) => Some(node.0),
            _ => None,
        },
        limits: match state {
            Some(TaskState::Running { node }) => scheduler
                .cluster()
                .node(*node)
                .and_then(|n| n.spec().labels.get(lepton::adapters::local::LABEL_CGROUPS))
                .cloned(),
            _ => None,
        },
        reasons: scheduler.failures(spec.id).to_vec(),
    }
}

fn ended_view(spec: &TaskSpec, end: &Finished) -> TaskView {
    TaskView {
        id: spec.id.0,
        name: spec.name.clone(),
        state: match end.state.as_str() {
            "completed" => "completed",
            "failed" => "failed",
            _ => "cancelled",
        },
        priority: spec.priority.0,
        queue: spec.queue.clone(),
        attempts: end.attempts,
        node: None,
        limits: None,
        reasons: end.reasons.clone(),
    }
}
