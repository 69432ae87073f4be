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

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::{HashMap, HashSet};

use crate::admission::Admission;
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::cluster::{ClusterState, NodeFilter, Placement};
use crate::error::Error;
use crate::node::{NodeId, NodeState, Resource};
use crate::policy::Policy;
use crate::queue::TaskQueue;
use crate::task::{Run, Task, TaskId, TaskSpec};

mod admit;
mod backfill;
mod config;
mod cycle;
mod explain;
mod gang;
mod heartbeat;
mod lifecycle;
mod model;
mod plan;
mod preempt;
mod rebalance;
mod snapshot;
mod submit;
#[cfg(test)]
mod testing;
mod timeout;
mod waiting;

pub use backfill::Reservation;
pub use config::{RebalanceConfig, RetryPolicy, SchedulerConfig};
pub use explain::{Explanation, Refusals};
use heartbeat::Heartbeats;
pub use model::{Assignment, Drained, Event, Report, TaskCounts, TaskState};
pub use plan::{Plan, Planned};
use preempt::EvictionRank;
pub use snapshot::{SavedNode, SavedState, SavedTask, SchedulerState};
use submit::Intake;
pub use submit::Submitter;

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
    /// whose backoff is over, takes every queued task once (or the
    /// [`max_tasks_per_cycle`](SchedulerConfig::max_tasks_per_cycle) first
    /// in priority order) and places it (preempting lower priorities if it
    /// fits nowhere and preemption is on) or backs it off, then rebalances
    /// when due.
    ///
    /// Each assignment's run is already counted running: the caller must
    /// stop its `evicts` and launch it.
    #[must_use = "the assigned runs are counted running: launch them (and stop their evictions)"]
    fn schedule(&mut self) -> Vec<Assignment>;

    /// Ends every run that has outlived its task's timeout at the
    /// scheduler's clock: its resources are freed, the policy is told
    /// [`Outcome::TimedOut`](crate::policy::Outcome::TimedOut) (the seed
    /// article's −1), and the task is retried within its retry budget, or
    /// fails with the reason `timed out after N ms`. Also ends the runs of
    /// gang members whose gang a failure left with fewer than its
    /// `min_available` running: they are queued again, uncharged, to be
    /// placed with their gang (see [`CoreScheduler`]'s gangs).
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
    admission: Option<Admission>,
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

    /// Admits tasks that name a [`queue`](TaskSpec::queue) through tenant
    /// queues declared as in `queues` (the tasks it holds are not taken
    /// over): each waits there until its queue's fair share and maxima
    /// admit it, then the cycle places it as any other. Without this, a
    /// task naming a queue is refused.
    pub fn queues(mut self, queues: &Admission) -> Self {
        self.admission = Some(queues.without_tasks());
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
            tasks: HashMap::default(),
            backoff: BTreeMap::new(),
            backoff_sequence: 0,
            stale_queue_entries: 0,
            cycle_cut_short: false,
            counts: TaskCounts::default(),
            running_by_rank: [0; EvictionRank::COUNT],
            preemption_misses: Vec::new(),
            preemption_cursor: 0,
            stats: Stats::default(),
            last_policy_error: None,
            waiting: waiting::Waiting::default(),
            changes: None,
            admission: self.admission,
            gangs: gang::Gangs::new(),
            reservation: None,
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
    /// When the current run started, by the scheduler's clock.
    run_started: Timestamp,
    /// Failed attempts so far; boxed, as most tasks never fail.
    failures: Option<Box<Failures>>,
}

/// The reasons a task keeps, the latest ones: a task retried without limit
/// (a service, a run that times out every time) must not grow without end.
pub(crate) const MAX_REASONS: usize = 100;

#[derive(Debug, Default)]
struct Failures {
    /// Failed attempts so far: what the retry budget counts.
    count: u32,
    /// Why the latest failed attempts failed (at most [`MAX_REASONS`]),
    /// oldest first.
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
            run_started: Timestamp(0),
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
/// use lepton_core::{
///     policy_fn, CoreScheduler, FeasibleNodes, NodeId, NodeSpec, Placement, Resources, Scheduler,
///     TaskId, TaskSpec,
/// };
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
///
/// # Tenant queues
///
/// Built with [`queues`](CoreSchedulerBuilder::queues), the scheduler
/// holds a task that names a [`queue`](TaskSpec::queue) until the queue
/// admits it (its fair share and the maxima on its path; see
/// [`admission`](crate::admission)), then places it as any other; the
/// task gives its share back when it ends.
///
/// # Gangs
///
/// Tasks that name a [`Gang`](crate::model::Gang) start together or not
/// at all: each cycle tries a gang's held members together and starts
/// them only if at least its `min_available` (counting members already
/// running) can be placed at once, undoing every booking otherwise. Gang
/// members are never preempted or moved by the rebalancer; a failure that
/// leaves fewer than `min_available` running ends the others' runs
/// ([`expire_timeouts`](Scheduler::expire_timeouts) returns them) and the
/// gang is placed again whole; members that wait longer than the gang's
/// `timeout_ms` fail. [`explain`](Self::explain) says why a gang waits.
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
    /// Whether the last cycle left queued tasks to the next for
    /// [`SchedulerConfig::max_tasks_per_cycle`].
    cycle_cut_short: bool,
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
    /// Tasks that found no node, waiting for a change (see
    /// [`SchedulerConfig::retry_waiting_on_release`]).
    waiting: waiting::Waiting,
    /// Tasks whose state changed since [`take_changes`](Self::take_changes)
    /// was last called, once [`track_changes`](Self::track_changes) was.
    changes: Option<HashSet<TaskId>>,
    /// The tenant queues, if [`queues`](CoreSchedulerBuilder::queues) were
    /// declared: tasks naming one wait there until admitted.
    admission: Option<Admission>,
    /// Gangs with members waiting or running (see `gang.rs`).
    gangs: gang::Gangs,
    /// The node held for a waiting task, with backfill (see `backfill.rs`).
    reservation: Option<Reservation>,
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
            admission: None,
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
        self.check_gang(&spec)?;
        if run.task != spec.id || run.attempt == 0 {
            return Err(Error::StaleRun { run, current: 0 });
        }
        if self.tasks.contains_key(&spec.id) {
            return Err(Error::DuplicateTask { task: spec.id });
        }
        // Its queue counts it as admitted, even above a maximum: it runs.
        self.adopt_in_queue(&spec)?;
        if let Err(error) = self.cluster.reserve(&spec, placement) {
            self.ended_in_queue(&spec);
            return Err(error);
        }
        if let Err(error) = self.claim(spec.id) {
            // A handle submitted this id meanwhile: the booking goes.
            self.cluster.release(spec.id)?;
            self.ended_in_queue(&spec);
            return Err(error);
        }
        let now = self.clock.now();
        let mut record = TaskRecord::new(Box::new(spec), TaskState::Queued);
        record.attempt = run.attempt;
        record.run_started = now;
        self.tasks.insert(run.task, record);
        self.counts.queued += 1;
        self.transition(
            run.task,
            TaskState::Running {
                node: placement.node,
            },
        );
        self.arm_timeout(run, now);
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
        self.policy.begin_cycle(&self.cluster, self.clock.now());
        for task in tasks {
            let Some(old) = self.tasks.get(&task).map(TaskRecord::run) else {
                continue;
            };
            // Running on this node: the allocation exists.
            let _ = self.cluster.release(task);
            // A gang member is not moved alone: it is placed with its gang.
            let place = if self.evictable(task) {
                self.choose(task)
            } else {
                None
            };
            match place {
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

    /// Why the task's failed attempts failed so far, oldest first: the
    /// latest 100 of them.
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

    /// Whether the last cycle stopped at
    /// [`max_tasks_per_cycle`](SchedulerConfig::max_tasks_per_cycle) and
    /// left tasks queued then to the next one: a driver that pauses
    /// between cycles runs the next at once.
    pub fn cycle_cut_short(&self) -> bool {
        self.cycle_cut_short
    }

    /// Queue entries of tasks cancelled while queued.
    pub fn stale_queue_entries(&self) -> usize {
        self.stale_queue_entries
    }

    /// Starts recording which tasks change state, for
    /// [`take_changes`](Self::take_changes): what a view of the tasks
    /// refreshes, so that a refresh costs what changed, not every task.
    pub fn track_changes(&mut self) {
        self.changes.get_or_insert_with(HashSet::default);
    }

    /// The tasks whose state changed since the last call (each once, in no
    /// particular order); none unless [`track_changes`](Self::track_changes)
    /// was called. Tasks taken in from a [`Submitter`] are queued without a
    /// change.
    pub fn take_changes(&mut self) -> Vec<TaskId> {
        self.changes
            .as_mut()
            .map(|changes| changes.drain().collect())
            .unwrap_or_default()
    }

    /// When the earliest backing-off task is due back in the queue.
    pub fn next_backoff_due(&self) -> Option<Timestamp> {
        let backoff = self.backoff.keys().next().map(|&(due, _)| due);
        match (backoff, self.waiting.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The scheduler's clock reading.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

impl CoreScheduler {
    /// Ends a task that has not ended as `end` (cancelled, or failed by
    /// its gang), taking it out of wherever it is: the queue (its entry is
    /// skipped when reached), the backoff area, its tenant queue or gang,
    /// or its node. Its run, if it was running, for the caller to stop.
    ///
    /// # Errors
    /// [`Error::UnknownTask`]; [`Error::InvalidTransition`] for a task
    /// that already ended.
    fn end_early(
        &mut self,
        task: TaskId,
        end: TaskState,
        action: &'static str,
    ) -> Result<Option<Run>, Error> {
        let record = self.tasks.get(&task).ok_or(Error::UnknownTask { task })?;
        let mut run = None;
        match record.state {
            TaskState::Queued => {
                // A task its queue or gang holds has no entry in the queue.
                if !self.held_by_queue(task) && !self.held_by_gang(task) {
                    self.stale_queue_entries += 1;
                }
            }
            TaskState::BackingOff { .. } => {
                if let Some(key) = self.tasks.get_mut(&task).and_then(|r| r.backoff_key.take()) {
                    self.backoff.remove(&key);
                }
            }
            TaskState::Running { .. } => {
                run = Some(record.run());
                let freed = self.cluster.release(task)?;
                self.waiting.node_changed(freed.node);
            }
            TaskState::Completed | TaskState::Failed { .. } | TaskState::Cancelled => {
                return Err(Error::InvalidTransition {
                    task,
                    action,
                    state: record.state.name(),
                })
            }
        }
        self.waiting.remove(task);
        self.transition(task, end);
        Ok(run)
    }
}

impl Scheduler for CoreScheduler {
    fn submit(&mut self, task: &dyn Task) -> Result<TaskId, Error> {
        let spec = task.to_spec();
        let id = spec.id;
        spec.validate()?;
        self.check_gang(&spec)?;
        self.check_queue(&spec)?;
        self.claim(id)?;
        self.queue_or_hold(&spec)?;
        self.tasks
            .insert(id, TaskRecord::new(Box::new(spec), TaskState::Queued));
        self.counts.queued += 1;
        Ok(id)
    }

    fn cancel(&mut self, task: TaskId) -> Result<(), Error> {
        if !self.tasks.contains_key(&task) {
            return self.cancel_pending(task);
        }
        self.end_early(task, TaskState::Cancelled, "cancel")
            .map(drop)
    }

    fn schedule(&mut self) -> Vec<Assignment> {
        self.cycle()
    }

    fn handle(&mut self, event: Event) -> Result<(), Error> {
        self.apply(event)
    }

    fn expire_timeouts(&mut self) -> Vec<Run> {
        self.expire_due_runs()
    }

    fn set_policy(&mut self, policy: Box<dyn Policy>) -> Box<dyn Policy> {
        self.filter = policy.filter();
        self.waiting.everything_changed();
        std::mem::replace(&mut self.policy, policy)
    }

    fn report(&self) -> Report {
        self.build_report()
    }
}
