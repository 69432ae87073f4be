//! The scheduler core: a synchronous state machine, events in, placements out.
//!
//! [`CoreScheduler`] owns the [`ClusterState`], the [`TaskQueue`] (which
//! other threads may feed through [`Submitter`]s), the backoff area and the
//! current [`Policy`]. It never launches anything and never reads the
//! system time: the caller (an orchestrator's control loop, or the
//! simulator) feeds it [`Event`]s, calls
//! [`schedule`](Scheduler::schedule) and acts on the [`Assignment`]s it gets
//! back. Time comes from an injected [`Clock`], so the same code runs in
//! production and in virtual time.
//!
//! Every task is in exactly one [`TaskState`] at all times; all state changes
//! go through one function that also keeps the per-state counts, and the
//! cluster state re-checks every placement, so neither a buggy policy nor a
//! late event can over-commit a node.
//!
//! Every path that places a task — the policy's choice (also in drains),
//! preemption (`preempt.rs`) and the rebalancer (`rebalance.rs`) — passes
//! the one feasibility stage ([`FeasibleNodes`](crate::FeasibleNodes)), so
//! a policy's [`filter`](Policy::filter) holds on all of them: the policy
//! chooses among the nodes it lets through, and so do preemption and the
//! rebalancer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::backend::Usage;
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::cluster::{check_feasible, ClusterState, GpuSlots, NodeFilter, Placement, Utilization};
use crate::error::Error;
use crate::node::{NodeId, NodeSpec, NodeState, Resource};
use crate::policy::{Feedback, Outcome, Policy};
use crate::queue::TaskQueue;
use crate::task::{Run, Task, TaskId, TaskSpec};

mod config;
mod heartbeat;
mod preempt;
mod rebalance;
mod snapshot;
mod submit;
mod timeout;

pub use config::{RebalanceConfig, RetryPolicy, SchedulerConfig};
use heartbeat::Heartbeats;
use preempt::EvictionRank;
pub use snapshot::{SavedNode, SavedState, SavedTask, SchedulerState};
use submit::Intake;
pub use submit::Submitter;

/// Where a task is in its life. Exactly one at any time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// Waiting in the queue.
    Queued,
    /// Waits until `until` before it is queued again: it found no node, or
    /// it failed and waits to be retried.
    BackingOff {
        /// When it goes back to the queue.
        until: Timestamp,
        /// Consecutive scheduling attempts that found no node (0 while
        /// waiting to retry after a failure).
        attempts: u32,
    },
    /// Holds resources on `node`.
    Running {
        /// The node.
        node: NodeId,
    },
    /// Ended successfully.
    Completed,
    /// Failed more often than its retry budget allows.
    Failed {
        /// Why each attempt failed, oldest first.
        reasons: Vec<String>,
    },
    /// Cancelled before it ended.
    Cancelled,
}

impl TaskState {
    /// A one-word name: `queued`, `backing off`, `running`, `completed`, `failed`, `cancelled`.
    pub fn name(&self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::BackingOff { .. } => "backing off",
            TaskState::Running { .. } => "running",
            TaskState::Completed => "completed",
            TaskState::Failed { .. } => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// True for completed, failed and cancelled.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed { .. } | TaskState::Cancelled
        )
    }
}

/// A decision: start run `attempt` of `task` on `node`, on these GPUs.
///
/// Before starting it the caller stops every run in `evicts`: lower-priority
/// tasks preempted to make room, or this task's own previous run when the
/// scheduler moves it (drain, rebalance) — a backend that can live-migrate
/// moves that run instead of restarting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The task.
    pub task: TaskId,
    /// Which placement of the task this is, counting from 1.
    pub attempt: u32,
    /// The node.
    pub node: NodeId,
    /// GPU indexes inside the node (empty when the task needs none).
    pub gpus: GpuSlots,
    /// Runs to stop first (usually none).
    pub evicts: Vec<Run>,
}

impl Assignment {
    /// The run this assignment starts; events about it name it.
    pub fn run(&self) -> Run {
        Run {
            task: self.task,
            attempt: self.attempt,
        }
    }

    /// The task's own run this assignment replaces, when it is a move.
    pub fn moves_from(&self) -> Option<Run> {
        self.evicts
            .iter()
            .copied()
            .find(|run| run.task == self.task)
    }
}

/// What [`CoreScheduler::drain`] did with a node's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drained {
    /// Tasks placed elsewhere at once (each evicts its old run).
    pub moved: Vec<Assignment>,
    /// Runs to stop whose tasks found no other node now and wait in the queue.
    pub requeued: Vec<Run>,
}

/// Something that happened outside the scheduler.
///
/// Events about a task name the [`Run`] they concern; one about a run that
/// is not the task's current one (late, duplicated, from a placement already
/// given up) is refused with [`Error::StaleRun`] and changes nothing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A run finished successfully.
    TaskCompleted(Run),
    /// A run failed; the task is retried within its budget.
    TaskFailed {
        /// The run.
        run: Run,
        /// Why, as the backend reported it.
        reason: String,
    },
    /// A run went past the task's timeout; retried like a failure.
    TaskTimedOut(Run),
    /// The backend could not start a run; retried like a failure, elsewhere.
    LaunchFailed {
        /// The run.
        run: Run,
        /// Why, as the backend reported it.
        reason: String,
    },
    /// A node joined the cluster.
    NodeAdded(NodeSpec),
    /// A node left the cluster; its tasks go back to the queue uncharged.
    NodeRemoved(NodeId),
    /// A node failed; its tasks are retried elsewhere, charged to their budgets.
    NodeDown(NodeId),
    /// A failed node is back and takes tasks again.
    NodeUp(NodeId),
    /// A node keeps its tasks but takes no new ones.
    NodeCordoned(NodeId),
    /// A cordoned node takes tasks again.
    NodeUncordoned(NodeId),
    /// A node is alive. With a heartbeat timeout configured, a node silent
    /// for longer is declared down; its next heartbeat brings it back.
    Heartbeat(NodeId),
    /// What the tasks on a node really use, as its backend measured it;
    /// policies see it through [`ClusterNode::usage`](crate::ClusterNode::usage).
    NodeUsage {
        /// The node.
        node: NodeId,
        /// The measurement.
        usage: Usage,
    },
}

/// How many tasks are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TaskCounts {
    /// Waiting in the queue.
    pub queued: usize,
    /// Waiting out a backoff.
    pub backing_off: usize,
    /// Holding resources.
    pub running: usize,
    /// Ended successfully.
    pub completed: usize,
    /// Ended in failure.
    pub failed: usize,
    /// Cancelled.
    pub cancelled: usize,
}

impl TaskCounts {
    fn slot(&mut self, state: &TaskState) -> &mut usize {
        match state {
            TaskState::Queued => &mut self.queued,
            TaskState::BackingOff { .. } => &mut self.backing_off,
            TaskState::Running { .. } => &mut self.running,
            TaskState::Completed => &mut self.completed,
            TaskState::Failed { .. } => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
        }
    }

    /// All tasks ever submitted.
    pub fn total(&self) -> usize {
        self.queued
            + self.backing_off
            + self.running
            + self.completed
            + self.failed
            + self.cancelled
    }
}

/// Where a task was booked: the node and its GPUs.
type Booked = (NodeId, GpuSlots);

/// The policy's choice for `spec` among the nodes that pass the one
/// feasibility stage, booked after checking it again (the guard). `Err` is
/// a choice the stage or the cluster state refused: the policy's mistake,
/// counted by the caller.
fn book(
    policy: &mut dyn Policy,
    filter: Option<&dyn NodeFilter>,
    cluster: &mut ClusterState,
    spec: &TaskSpec,
) -> Result<Option<Booked>, Error> {
    let Some(placement) = policy.select(&cluster.feasible(spec, filter)) else {
        return Ok(None);
    };
    let allocation =
        cluster.reserve_if(spec, &placement, |node| check_feasible(spec, filter, node))?;
    Ok(Some((allocation.node, allocation.gpus.clone())))
}

/// A run placed and then evicted within one cycle (a preemption or a move
/// of a task placed moments before) never needs to start: its assignment
/// goes, and so does its mention in `evicts`. The caller then never sees a
/// run to start that a later assignment of the same batch stops.
fn drop_runs_evicted_in_the_same_cycle(assignments: &mut Vec<Assignment>) {
    if assignments.iter().all(|a| a.evicts.is_empty()) {
        return;
    }
    let started: HashSet<Run> = assignments.iter().map(Assignment::run).collect();
    let stillborn: HashSet<Run> = assignments
        .iter()
        .flat_map(|a| a.evicts.iter().copied())
        .filter(|run| started.contains(run))
        .collect();
    assignments.retain(|a| !stillborn.contains(&a.run()));
    for assignment in assignments {
        assignment.evicts.retain(|run| !stillborn.contains(run));
    }
}

/// A snapshot of the scheduler, for operators and tests.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The current policy's name.
    pub policy: String,
    /// The scheduler's time.
    pub now: Timestamp,
    /// Tasks per state.
    pub tasks: TaskCounts,
    /// Nodes ready to take tasks.
    pub nodes_ready: usize,
    /// Cordoned nodes.
    pub nodes_cordoned: usize,
    /// Down nodes.
    pub nodes_down: usize,
    /// Nodes holding at least one task.
    pub nodes_in_use: usize,
    /// Used over offered capacity, over nodes that are not down.
    pub utilization: Utilization,
    /// Placements made since start (moves included).
    pub placements: u64,
    /// Times a task found no node and went to backoff.
    pub unschedulable: u64,
    /// Failed attempts that were given another try.
    pub retries: u64,
    /// Tasks evicted to make room for higher priorities.
    pub preemptions: u64,
    /// Tasks moved by drains and the rebalancer.
    pub moves: u64,
    /// Nodes declared down because their heartbeats stopped.
    pub silent_nodes: u64,
    /// Runs ended for outliving their task's timeout.
    pub timeouts: u64,
    /// Times the policy chose a node the task did not fit on.
    pub policy_errors: u64,
    /// The latest such mistake, as the cluster state refused it.
    pub last_policy_error: Option<String>,
}

/// The scheduler's interface: what an orchestrator or the simulator drives.
pub trait Scheduler {
    /// Validates a task and queues it.
    ///
    /// # Errors
    /// A typed [`Error`] naming the task and the offending value.
    fn submit(&mut self, task: &dyn Task) -> Result<TaskId, Error>;

    /// Cancels a task that has not ended; a running task gives its resources
    /// back (the caller stops its run).
    ///
    /// # Errors
    /// [`Error::UnknownTask`], or [`Error::InvalidTransition`] for a task that already ended.
    fn cancel(&mut self, task: TaskId) -> Result<(), Error>;

    /// Runs one scheduling cycle: declares silent nodes down, queues tasks
    /// whose backoff is over, takes every queued task once and places it
    /// (preempting lower priorities if it fits nowhere and preemption is on)
    /// or backs it off, then rebalances when due.
    ///
    /// Each assignment's run is already counted running: the caller must
    /// stop its `evicts` and launch it.
    #[must_use = "the assigned runs are counted running: launch them (and stop their evictions)"]
    fn schedule(&mut self) -> Vec<Assignment>;

    /// Ends every run that has outlived its task's timeout at the
    /// scheduler's clock: its resources are freed, the policy is told
    /// [`Outcome::TimedOut`] (the seed article's −1), and the task is
    /// retried within its retry budget, or fails with the reason
    /// `timed out after N ms`.
    ///
    /// The scheduler never stops anything itself: the caller stops the runs
    /// returned, as it stops evicted ones. A report that arrives later about
    /// such a run is refused as stale. `lepton`'s `Controller` and the
    /// simulator (`lepton-sim`) call this before every cycle; an embedder
    /// driving the scheduler directly does the same, reading
    /// [`next_timeout_due`](CoreScheduler::next_timeout_due) to wake up in
    /// time.
    #[must_use = "the runs returned have ended in the scheduler: stop them"]
    fn expire_timeouts(&mut self) -> Vec<Run>;

    /// Applies an event from outside.
    ///
    /// # Errors
    /// A typed [`Error`] when the event names an unknown task or node, or does
    /// not apply to its current state (a second completion, a report from an
    /// earlier run); the scheduler's state is then unchanged.
    fn handle(&mut self, event: Event) -> Result<(), Error>;

    /// Installs a new policy for the next decisions and returns the old one.
    fn set_policy(&mut self, policy: Box<dyn Policy>) -> Box<dyn Policy>;

    /// A snapshot of counts and utilization.
    fn report(&self) -> Report;
}

/// Builds a [`CoreScheduler`].
#[derive(Debug)]
pub struct CoreSchedulerBuilder {
    policy: Box<dyn Policy>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
}

impl CoreSchedulerBuilder {
    /// Uses this clock instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses these tunables.
    pub fn config(mut self, config: SchedulerConfig) -> Self {
        self.config = config;
        self
    }

    /// The scheduler, with no node and no task.
    pub fn build(self) -> CoreScheduler {
        let queue = match self.config.aging_every {
            Some(every) => TaskQueue::with_aging(every),
            None => TaskQueue::new(),
        };
        let now = self.clock.now();
        CoreScheduler {
            heartbeats: self.config.heartbeat_timeout.map(Heartbeats::new),
            deadlines: timeout::Deadlines::default(),
            next_rebalance: self
                .config
                .rebalance
                .map(|rebalance| now.saturating_add(rebalance.period())),
            filter: self.policy.filter(),
            policy: self.policy,
            clock: self.clock,
            config: self.config,
            cluster: ClusterState::new(),
            intake: Intake::new(queue),
            tasks: HashMap::new(),
            backoff: BTreeMap::new(),
            backoff_sequence: 0,
            stale_queue_entries: 0,
            counts: TaskCounts::default(),
            running_by_rank: [0; EvictionRank::COUNT],
            preemption_misses: Vec::new(),
            preemption_cursor: 0,
            stats: Stats::default(),
            last_policy_error: None,
            released: false,
        }
    }
}

#[derive(Debug)]
struct TaskRecord {
    /// Boxed: the map of records stays small per slot, which matters with
    /// millions of queued tasks (a hash table keeps spare slots).
    spec: Box<TaskSpec>,
    state: TaskState,
    /// The task's key in the backoff area while it backs off.
    backoff_key: Option<(Timestamp, u64)>,
    /// Consecutive cycles that found no node for it; sets the backoff.
    unschedulable_attempts: u32,
    /// Placements so far: the current run's attempt number.
    attempt: u32,
    /// Failed attempts so far; boxed, as most tasks never fail.
    failures: Option<Box<Failures>>,
}

#[derive(Debug, Default)]
struct Failures {
    /// Why each failed attempt failed, oldest first.
    reasons: Vec<String>,
    /// The node of the latest failure, avoided when another node fits.
    avoid: Option<NodeId>,
}

impl TaskRecord {
    /// A task just submitted: queued, or cancelled before it was taken in.
    fn new(spec: Box<TaskSpec>, state: TaskState) -> Self {
        TaskRecord {
            spec,
            state,
            backoff_key: None,
            unschedulable_attempts: 0,
            attempt: 0,
            failures: None,
        }
    }

    fn run(&self) -> Run {
        Run {
            task: self.spec.id,
            attempt: self.attempt,
        }
    }
}

/// Counters for [`Report`].
#[derive(Debug, Default)]
struct Stats {
    placements: u64,
    unschedulable: u64,
    retries: u64,
    preemptions: u64,
    moves: u64,
    silent_nodes: u64,
    timeouts: u64,
    policy_errors: u64,
}

/// Lepton's scheduler: a synchronous state machine, events in, placements out.
///
/// It owns the [`ClusterState`], the [`TaskQueue`], the backoff area and the
/// current [`Policy`], never launches anything and never reads the system
/// time. A cycle ([`schedule`](Scheduler::schedule)) first queues tasks whose
/// backoff is over, then takes each queued task once: the policy chooses, the
/// cluster state re-checks and books, and a task that fits nowhere backs off
/// (1 s doubling to 10 s by default) instead of spinning.
///
/// Recovery: a failed run (task failure, timeout, launch failure, node down
/// or silent) is retried after a delay, on another node when one fits,
/// within the task's [`RetryPolicy`]; events name the [`Run`] they concern,
/// so late or duplicated reports change nothing.
///
/// ```
/// use lepton_core::*;
///
/// let first_fit = policy_fn("first-fit", |nodes: &FeasibleNodes<'_>| {
///     nodes.first_fit().map(|node| Placement::on(node.id()))
/// });
/// let mut scheduler = CoreScheduler::new(Box::new(first_fit));
/// scheduler.add_node(&NodeSpec::new(NodeId(1), Resources::new(4000, 8192))).unwrap();
/// scheduler.submit(&TaskSpec::new(TaskId(7), Resources::new(1000, 1024))).unwrap();
///
/// let assignments = scheduler.schedule();
/// assert_eq!(assignments[0].node, NodeId(1));
/// scheduler.complete(assignments[0].run()).unwrap();
/// assert_eq!(scheduler.report().tasks.completed, 1);
/// ```
#[derive(Debug)]
pub struct CoreScheduler {
    policy: Box<dyn Policy>,
    /// The policy's filter, asked for when it was installed.
    filter: Option<Arc<dyn NodeFilter>>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    cluster: ClusterState,
    /// The queue, shared with the [`Submitter`]s, and the claimed ids.
    intake: Intake,
    tasks: HashMap<TaskId, TaskRecord>,
    backoff: BTreeMap<(Timestamp, u64), TaskId>,
    backoff_sequence: u64,
    /// Queue entries of tasks cancelled while queued, skipped when popped.
    stale_queue_entries: usize,
    counts: TaskCounts,
    /// Running tasks per eviction rank (priority, then QoS class):
    /// preemption looks for lower ones only when there are some.
    running_by_rank: [u32; EvictionRank::COUNT],
    heartbeats: Option<Heartbeats>,
    /// Deadlines of running tasks that have a timeout.
    deadlines: timeout::Deadlines,
    next_rebalance: Option<Timestamp>,
    /// Preemption searches that failed this cycle.
    preemption_misses: Vec<preempt::Miss>,
    /// Where the next preemption search starts, in cluster order.
    preemption_cursor: usize,
    stats: Stats,
    last_policy_error: Option<Error>,
    /// Resources were freed since the last cycle (see
    /// [`SchedulerConfig::retry_waiting_on_release`]).
    released: bool,
}

impl CoreScheduler {
    /// A scheduler with the system clock and default tunables.
    pub fn new(policy: Box<dyn Policy>) -> Self {
        Self::builder(policy).build()
    }

    /// A builder, to set the clock or the tunables.
    pub fn builder(policy: Box<dyn Policy>) -> CoreSchedulerBuilder {
        CoreSchedulerBuilder {
            policy,
            clock: Arc::new(SystemClock::new()),
            config: SchedulerConfig::default(),
        }
    }

    /// Adds a node (any type implementing [`Resource`]).
    ///
    /// # Errors
    /// See [`ClusterState::add_node`].
    pub fn add_node(&mut self, node: &dyn Resource) -> Result<(), Error> {
        self.handle(Event::NodeAdded(node.to_spec()))
    }

    /// Takes in a task that already runs as `run` on `placement`: a run a
    /// backend still holds after a restart of the process that started it
    /// (found by its tags), or one an earlier scheduler's state names. The
    /// task is running as attempt `run.attempt` from now on, its resources
    /// booked; its next placement is attempt `run.attempt + 1`, so no run id
    /// is used twice. Its timeout, if any, counts from now. Its retry budget
    /// starts afresh (earlier failures are not known here).
    ///
    /// # Errors
    /// What [`submit`](Scheduler::submit) refuses (an invalid task, a
    /// duplicate id), [`Error::StaleRun`] for attempt 0, and what
    /// [`ClusterState::reserve`] refuses (an unknown node, no room): the
    /// task is then not taken in.
    pub fn adopt(&mut self, task: &dyn Task, run: Run, placement: &Placement) -> Result<(), Error> {
        let spec = task.to_spec();
        spec.validate()?;
        if run.task != spec.id || run.attempt == 0 {
            return Err(Error::StaleRun { run, current: 0 });
        }
        if self.tasks.contains_key(&spec.id) {
            return Err(Error::DuplicateTask { task: spec.id });
        }
        self.cluster.reserve(&spec, placement)?;
        if let Err(error) = self.claim(spec.id) {
            // A handle submitted this id meanwhile: the booking goes.
            self.cluster.release(spec.id)?;
            return Err(error);
        }
        let mut record = TaskRecord::new(Box::new(spec), TaskState::Queued);
        record.attempt = run.attempt;
        self.tasks.insert(run.task, record);
        self.counts.queued += 1;
        self.transition(
            run.task,
            TaskState::Running {
                node: placement.node,
            },
        );
        self.arm_timeout(run, self.clock.now());
        Ok(())
    }

    /// Removes a node; its tasks go back to the queue.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn remove_node(&mut self, node: NodeId) -> Result<(), Error> {
        self.handle(Event::NodeRemoved(node))
    }

    /// Stops new placements on a node; its tasks keep running.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn cordon(&mut self, node: NodeId) -> Result<(), Error> {
        self.handle(Event::NodeCordoned(node))
    }

    /// Lets a cordoned node take tasks again.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn uncordon(&mut self, node: NodeId) -> Result<(), Error> {
        self.handle(Event::NodeUncordoned(node))
    }

    /// Marks a run completed and frees its resources.
    ///
    /// # Errors
    /// [`Error::UnknownTask`], [`Error::StaleRun`] or [`Error::InvalidTransition`].
    pub fn complete(&mut self, run: Run) -> Result<(), Error> {
        self.handle(Event::TaskCompleted(run))
    }

    /// Marks a run failed and frees its resources; the task is retried
    /// within its budget.
    ///
    /// # Errors
    /// [`Error::UnknownTask`], [`Error::StaleRun`] or [`Error::InvalidTransition`].
    pub fn fail(&mut self, run: Run, reason: impl Into<String>) -> Result<(), Error> {
        self.handle(Event::TaskFailed {
            run,
            reason: reason.into(),
        })
    }

    /// Cordons a node and moves its tasks off it, highest priority first:
    /// each goes where the policy places it now, or back to the queue.
    /// Moves are not charged to retry budgets. The caller stops (or
    /// live-migrates) every old run named in the result.
    ///
    /// # Errors
    /// [`Error::UnknownNode`], or [`Error::NodeDown`] for a down node (its
    /// tasks were already moved).
    #[must_use = "the moved tasks' new runs are counted running: launch them"]
    pub fn drain(&mut self, node: NodeId) -> Result<Drained, Error> {
        self.set_healthy_node_state(node, NodeState::Cordoned, "drain")?;
        let mut tasks = self.cluster.tasks_on(node);
        tasks.sort_by_key(|task| {
            let priority = self.tasks.get(task).map(|r| r.spec.priority);
            (std::cmp::Reverse(priority), *task)
        });
        let mut drained = Drained::default();
        self.policy.begin_cycle(&self.cluster);
        for task in tasks {
            let Some(old) = self.tasks.get(&task).map(TaskRecord::run) else {
                continue;
            };
            // Running on this node: the allocation exists.
            let _ = self.cluster.release(task);
            match self.choose(task) {
                Some(booked) => {
                    self.stats.moves += 1;
                    drained.moved.push(self.start(task, booked, vec![old]));
                }
                None => {
                    self.enqueue(task);
                    drained.requeued.push(old);
                }
            }
        }
        Ok(drained)
    }

    /// The state of a task, including one a [`Submitter`] accepted that no
    /// cycle has taken in yet (queued, or cancelled).
    pub fn task_state(&self, task: TaskId) -> Option<&TaskState> {
        match self.tasks.get(&task) {
            Some(record) => Some(&record.state),
            None => self.pending_state(task),
        }
    }

    /// A task as it was submitted; `None` also for one a [`Submitter`]
    /// accepted that no cycle has taken in yet (its spec is in the queue).
    pub fn task(&self, task: TaskId) -> Option<&TaskSpec> {
        self.tasks.get(&task).map(|record| &*record.spec)
    }

    /// The task's current (or latest) run; `None` before its first placement.
    pub fn current_run(&self, task: TaskId) -> Option<Run> {
        self.tasks
            .get(&task)
            .filter(|record| record.attempt > 0)
            .map(TaskRecord::run)
    }

    /// Why the task's failed attempts failed so far, oldest first.
    pub fn failures(&self, task: TaskId) -> &[String] {
        match self.tasks.get(&task).map(|record| &record.state) {
            Some(TaskState::Failed { reasons }) => reasons,
            _ => self
                .tasks
                .get(&task)
                .and_then(|record| record.failures.as_deref())
                .map_or(&[], |failures| &failures.reasons),
        }
    }

    /// How many tasks are in each state (cheap; [`report`](Scheduler::report)
    /// also counts nodes). Tasks a [`Submitter`] accepted count as queued
    /// from then on, taken in by a cycle or not.
    pub fn task_counts(&self) -> TaskCounts {
        TaskCounts {
            queued: self.counts.queued + self.intake.pending(),
            ..self.counts
        }
    }

    /// The cluster's accounting, read-only.
    pub fn cluster(&self) -> &ClusterState {
        &self.cluster
    }

    /// The tunables in use.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The current policy's name.
    pub fn policy_name(&self) -> &str {
        self.policy.name()
    }

    /// Entries in the queue, including those of tasks cancelled while queued
    /// (dropped when reached) and [`Submitter`] submissions not taken in yet.
    /// Exact when no submission is in flight.
    pub fn queue_len(&self) -> usize {
        self.intake.len()
    }

    /// Queue entries of tasks cancelled while queued.
    pub fn stale_queue_entries(&self) -> usize {
        self.stale_queue_entries
    }

    /// When the earliest backing-off task is due back in the queue.
    pub fn next_backoff_due(&self) -> Option<Timestamp> {
        self.backoff.keys().next().map(|&(due, _)| due)
    }

    /// The scheduler's clock reading.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The one place a task changes state.
    fn transition(&mut self, task: TaskId, state: TaskState) {
        if let Some(record) = self.tasks.get_mut(&task) {
            let rank = EvictionRank::of(record.spec.priority, record.spec.qos).index();
            if matches!(record.state, TaskState::Running { .. }) {
                self.running_by_rank[rank] -= 1;
            }
            if matches!(state, TaskState::Running { .. }) {
                self.running_by_rank[rank] += 1;
            }
            *self.counts.slot(&record.state) -= 1;
            *self.counts.slot(&state) += 1;
            record.state = state;
        }
    }

    fn enqueue(&mut self, task: TaskId) {
        if let Some(record) = self.tasks.get(&task) {
            self.intake.push(record.spec.priority, task);
            self.transition(task, TaskState::Queued);
        }
    }

    /// Parks a task in the backoff area until `until`.
    fn back_off_until(&mut self, task: TaskId, until: Timestamp, attempts: u32) {
        let Some(record) = self.tasks.get_mut(&task) else {
            return;
        };
        let key = (until, self.backoff_sequence);
        self.backoff_sequence += 1;
        record.backoff_key = Some(key);
        self.backoff.insert(key, task);
        self.transition(task, TaskState::BackingOff { until, attempts });
    }

    /// Backs off a task that found no node: 1 s doubling to 10 s by default.
    fn back_off_unschedulable(&mut self, task: TaskId, now: Timestamp) {
        let Some(record) = self.tasks.get_mut(&task) else {
            return;
        };
        record.unschedulable_attempts += 1;
        let attempts = record.unschedulable_attempts;
        let doublings = attempts.saturating_sub(1).min(31);
        let delay = self
            .config
            .backoff_initial
            .saturating_mul(1 << doublings)
            .min(self.config.backoff_max);
        self.back_off_until(task, now.saturating_add(delay), attempts);
    }

    /// Queues every task waiting because it found no node (not those
    /// waiting to be retried after a failure).
    fn wake_unschedulable(&mut self) {
        let waiting: Vec<((Timestamp, u64), TaskId)> = self
            .backoff
            .iter()
            .filter(|(_, task)| {
                self.tasks
                    .get(task)
                    .is_some_and(|record| record.unschedulable_attempts > 0)
            })
            .map(|(key, task)| (*key, *task))
            .collect();
        for (key, task) in waiting {
            self.backoff.remove(&key);
            if let Some(record) = self.tasks.get_mut(&task) {
                record.backoff_key = None;
            }
            self.enqueue(task);
        }
    }

    fn wake_due_backoffs(&mut self, now: Timestamp) {
        while let Some(entry) = self.backoff.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let task = entry.remove();
            if let Some(record) = self.tasks.get_mut(&task) {
                record.backoff_key = None;
            }
            self.enqueue(task);
        }
    }

    /// The node a run holds resources on, if it is the task's current,
    /// running run.
    fn running_node(&self, run: Run, action: &'static str) -> Result<NodeId, Error> {
        let record = self
            .tasks
            .get(&run.task)
            .ok_or_else(|| self.no_record(run.task, action))?;
        match record.state {
            TaskState::Running { node } if record.attempt == run.attempt => Ok(node),
            TaskState::Running { .. } => Err(Error::StaleRun {
                run,
                current: record.attempt,
            }),
            _ => Err(Error::InvalidTransition {
                task: run.task,
                action,
                state: record.state.name(),
            }),
        }
    }

    /// Frees what a running task holds and tells the policy how it went.
    fn end_run(&mut self, task: TaskId, node: NodeId, outcome: Outcome) -> Result<(), Error> {
        self.cluster.release(task)?;
        self.released = true;
        if let Some(record) = self.tasks.get(&task) {
            self.policy.observe(&Feedback {
                task: &record.spec,
                node,
                outcome,
            });
        }
        Ok(())
    }

    /// Ends a run in failure: the task is retried after a delay, avoiding
    /// `node`, or — its budget spent — ends failed with every reason.
    fn fail_run(
        &mut self,
        run: Run,
        outcome: Outcome,
        reason: &str,
        action: &'static str,
    ) -> Result<(), Error> {
        let node = self.running_node(run, action)?;
        self.end_run(run.task, node, outcome)?;
        self.charge_failure(run, node, reason);
        Ok(())
    }

    /// Records a failed attempt of a task that holds nothing any more.
    fn charge_failure(&mut self, run: Run, node: NodeId, reason: &str) {
        let Some(record) = self.tasks.get_mut(&run.task) else {
            return;
        };
        let failures = record.failures.get_or_insert_with(Box::default);
        failures
            .reasons
            .push(format!("attempt {} on {node}: {reason}", run.attempt));
        failures.avoid = Some(node);
        let count = u32::try_from(failures.reasons.len()).unwrap_or(u32::MAX);
        let retry = *self.config.retry(record.spec.kind);
        if retry.allows(count) {
            self.stats.retries += 1;
            let until = self.clock.now().saturating_add(retry.delay_after(count));
            self.back_off_until(run.task, until, 0);
        } else {
            let reasons = std::mem::take(&mut failures.reasons);
            self.transition(run.task, TaskState::Failed { reasons });
        }
    }

    /// Marks a node down and retries its tasks elsewhere, charged to their budgets.
    fn fail_node(&mut self, node: NodeId, reason: &str) -> Result<(), Error> {
        self.cluster.set_state(node, NodeState::Down)?;
        for task in self.cluster.tasks_on(node) {
            let Some(run) = self.tasks.get(&task).map(TaskRecord::run) else {
                continue;
            };
            // Running on this node: the allocation exists.
            let _ = self.end_run(task, node, Outcome::Failed);
            self.charge_failure(run, node, reason);
        }
        Ok(())
    }

    /// Takes every task off a node and queues it again, uncharged.
    fn evacuate(&mut self, node: NodeId) {
        for task in self.cluster.tasks_on(node) {
            // The allocation exists: the task is running on this node.
            let _ = self.cluster.release(task);
            self.enqueue(task);
        }
    }

    /// Asks the policy for a node and books it: first avoiding the node of
    /// the task's latest failure, then, if that finds nothing, anywhere.
    fn choose(&mut self, task: TaskId) -> Option<Booked> {
        let record = self.tasks.get(&task)?;
        let avoid = record.failures.as_ref().and_then(|failures| failures.avoid);
        let mut outcome = None;
        if let Some(node) = avoid {
            let mut elsewhere = (*record.spec).clone();
            elsewhere.constraints.avoid_nodes.push(node);
            outcome = Some(book(
                &mut *self.policy,
                self.filter.as_deref(),
                &mut self.cluster,
                &elsewhere,
            ));
        }
        if !matches!(outcome, Some(Ok(Some(_)))) {
            outcome = Some(book(
                &mut *self.policy,
                self.filter.as_deref(),
                &mut self.cluster,
                &record.spec,
            ));
        }
        match outcome? {
            Ok(booked) => booked,
            Err(error) => {
                self.stats.policy_errors += 1;
                self.last_policy_error = Some(error);
                None
            }
        }
    }

    /// Marks a booked task running as its next attempt.
    fn start(&mut self, task: TaskId, (node, gpus): Booked, evicts: Vec<Run>) -> Assignment {
        let mut attempt = 0;
        if let Some(record) = self.tasks.get_mut(&task) {
            record.unschedulable_attempts = 0;
            record.attempt += 1;
            attempt = record.attempt;
        }
        self.stats.placements += 1;
        self.transition(task, TaskState::Running { node });
        let run = Run { task, attempt };
        self.arm_timeout(run, self.clock.now());
        Assignment {
            task,
            attempt,
            node,
            gpus,
            evicts,
        }
    }

    /// Books `task` on `placement` again after a failed move; the node was
    /// just freed of it, so this fits.
    fn rebook(&mut self, task: TaskId, placement: &Placement) {
        if let Some(record) = self.tasks.get(&task) {
            let spec = record.spec.clone();
            if self.cluster.reserve(&spec, placement).is_err() {
                // Cannot happen; if it did, the task must not be lost.
                self.enqueue(task);
            }
        }
    }

    /// Cordoning is for healthy nodes: a down node comes back only with
    /// [`Event::NodeUp`], never as a side effect of an uncordon.
    fn set_healthy_node_state(
        &mut self,
        node: NodeId,
        state: NodeState,
        action: &'static str,
    ) -> Result<(), Error> {
        let current = self
            .cluster
            .node(node)
            .ok_or(Error::UnknownNode { node })?
            .state();
        if current == NodeState::Down {
            return Err(Error::NodeDown { node, action });
        }
        self.cluster.set_state(node, state)
    }
}

impl Scheduler for CoreScheduler {
    fn submit(&mut self, task: &dyn Task) -> Result<TaskId, Error> {
        let spec = task.to_spec();
        let id = spec.id;
        spec.validate()?;
        self.claim(id)?;
        self.intake.push(spec.priority, id);
        self.tasks
            .insert(id, TaskRecord::new(Box::new(spec), TaskState::Queued));
        self.counts.queued += 1;
        Ok(id)
    }

    fn cancel(&mut self, task: TaskId) -> Result<(), Error> {
        let Some(record) = self.tasks.get_mut(&task) else {
            return self.cancel_pending(task);
        };
        match record.state {
            TaskState::Queued => self.stale_queue_entries += 1,
            TaskState::BackingOff { .. } => {
                if let Some(key) = record.backoff_key.take() {
                    self.backoff.remove(&key);
                }
            }
            TaskState::Running { .. } => {
                self.cluster.release(task)?;
                self.released = true;
            }
            TaskState::Completed | TaskState::Failed { .. } | TaskState::Cancelled => {
                return Err(Error::InvalidTransition {
                    task,
                    action: "cancel",
                    state: record.state.name(),
                })
            }
        }
        self.transition(task, TaskState::Cancelled);
        Ok(())
    }

    fn schedule(&mut self) -> Vec<Assignment> {
        let now = self.clock.now();
        self.declare_silent_nodes_down(now);
        self.wake_due_backoffs(now);
        if self.config.retry_waiting_on_release && std::mem::take(&mut self.released) {
            self.wake_unschedulable();
        }
        self.policy.begin_cycle(&self.cluster);
        self.preemption_misses.clear();
        let mut assignments = Vec::new();
        // Tasks that find no node go to backoff, not back to the queue, so
        // this loop takes each queued task at most once (tasks evicted by a
        // preemption come back once, at a lower priority). Submissions
        // arriving meanwhile through handles join in priority order, up to
        // the cycle's bound.
        let mut cycle = self.intake.cycle();
        while let Some(entry) = self.intake.pop(&mut cycle) {
            let task = self.take_in(entry);
            let Some(record) = self.tasks.get(&task) else {
                continue;
            };
            if record.state != TaskState::Queued {
                self.stale_queue_entries = self.stale_queue_entries.saturating_sub(1);
                continue;
            }
            if let Some(booked) = self.choose(task) {
                assignments.push(self.start(task, booked, Vec::new()));
            } else if let Some(assignment) = self.preempt_for(task) {
                assignments.push(assignment);
            } else {
                self.stats.unschedulable += 1;
                self.back_off_unschedulable(task, now);
            }
        }
        if let Some(due) = self.next_rebalance.filter(|&due| due <= now) {
            let period = self
                .config
                .rebalance
                .map(|r| r.period())
                .unwrap_or(Duration::MAX);
            self.next_rebalance = Some(due.max(now).saturating_add(period));
            assignments.extend(self.rebalance());
        }
        drop_runs_evicted_in_the_same_cycle(&mut assignments);
        assignments
    }

    fn handle(&mut self, event: Event) -> Result<(), Error> {
        match event {
            Event::TaskCompleted(run) => {
                let node = self.running_node(run, "complete")?;
                self.end_run(run.task, node, Outcome::Completed)?;
                self.transition(run.task, TaskState::Completed);
                Ok(())
            }
            Event::TaskFailed { run, reason } => {
                self.fail_run(run, Outcome::Failed, &reason, "fail")
            }
            Event::TaskTimedOut(run) => {
                self.fail_run(run, Outcome::TimedOut, "timed out", "time out")?;
                self.stats.timeouts += 1;
                Ok(())
            }
            Event::LaunchFailed { run, reason } => self.fail_run(
                run,
                Outcome::Failed,
                &format!("launch failed: {reason}"),
                "fail the launch of",
            ),
            Event::NodeAdded(spec) => {
                let node = spec.id;
                self.cluster.add_node(spec)?;
                self.heard_from(node);
                self.released = true;
                Ok(())
            }
            Event::NodeRemoved(node) => {
                self.cluster.node(node).ok_or(Error::UnknownNode { node })?;
                self.evacuate(node);
                self.cluster.remove_node(node)?;
                self.forget_heartbeats(node);
                Ok(())
            }
            Event::NodeDown(node) => {
                self.fail_node(node, "node down")?;
                self.declared_down(node);
                Ok(())
            }
            Event::NodeUp(node) => {
                self.cluster.set_state(node, NodeState::Ready)?;
                self.heard_from(node);
                self.released = true;
                Ok(())
            }
            Event::NodeCordoned(node) => {
                self.set_healthy_node_state(node, NodeState::Cordoned, "cordon")
            }
            Event::NodeUncordoned(node) => {
                self.set_healthy_node_state(node, NodeState::Ready, "uncordon")?;
                self.released = true;
                Ok(())
            }
            Event::Heartbeat(node) => self.heartbeat(node),
            Event::NodeUsage { node, usage } => self.cluster.set_usage(node, usage),
        }
    }

    fn expire_timeouts(&mut self) -> Vec<Run> {
        self.expire_due_runs()
    }

    fn set_policy(&mut self, policy: Box<dyn Policy>) -> Box<dyn Policy> {
        self.filter = policy.filter();
        std::mem::replace(&mut self.policy, policy)
    }

    fn report(&self) -> Report {
        let nodes = self.cluster.nodes();
        let count = |state| nodes.iter().filter(|n| n.state() == state).count();
        let stats = &self.stats;
        Report {
            policy: self.policy.name().to_owned(),
            now: self.clock.now(),
            tasks: self.task_counts(),
            nodes_ready: count(NodeState::Ready),
            nodes_cordoned: count(NodeState::Cordoned),
            nodes_down: count(NodeState::Down),
            nodes_in_use: nodes.iter().filter(|n| n.task_count() > 0).count(),
            utilization: self.cluster.utilization(),
            placements: stats.placements,
            unschedulable: stats.unschedulable,
            retries: stats.retries,
            preemptions: stats.preemptions,
            moves: stats.moves,
            silent_nodes: stats.silent_nodes,
            timeouts: stats.timeouts,
            policy_errors: stats.policy_errors,
            last_policy_error: self.last_policy_error.as_ref().map(Error::to_string),
        }
    }
}
