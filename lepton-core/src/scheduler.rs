//! The scheduler core: a synchronous state machine, events in, placements out.
//!
//! [`CoreScheduler`] owns the [`ClusterState`], the [`TaskQueue`], the
//! backoff area and the current [`Policy`]. It never launches anything and
//! never reads the system time: the caller (an orchestrator's control loop,
//! or the simulator) feeds it [`Event`]s, calls
//! [`schedule`](Scheduler::schedule) and acts on the [`Assignment`]s it gets
//! back. Time comes from an injected [`Clock`], so the same code runs in
//! production and in virtual time.
//!
//! Every task is in exactly one [`TaskState`] at all times; all state changes
//! go through one function that also keeps the per-state counts, and the
//! cluster state re-checks every placement, so neither a buggy policy nor a
//! late event can over-commit a node.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::cluster::{ClusterState, GpuSlots, Utilization};
use crate::error::Error;
use crate::node::{NodeId, NodeSpec, NodeState, Resource};
use crate::policy::{Feedback, Outcome, Policy};
use crate::queue::TaskQueue;
use crate::task::{Task, TaskId, TaskSpec};

/// Where a task is in its life. Exactly one at any time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting in the queue.
    Queued,
    /// Found no node; waits until `until` before it is queued again.
    BackingOff {
        /// When it goes back to the queue.
        until: Timestamp,
        /// Consecutive scheduling attempts that found no node.
        attempts: u32,
    },
    /// Holds resources on `node`.
    Running {
        /// The node.
        node: NodeId,
    },
    /// Ended successfully.
    Completed,
    /// Ended in failure.
    Failed {
        /// Why.
        reason: String,
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

/// A decision: run `task` on `node`, on these GPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The task.
    pub task: TaskId,
    /// The node.
    pub node: NodeId,
    /// GPU indexes inside the node (empty when the task needs none).
    pub gpus: GpuSlots,
}

/// Something that happened outside the scheduler.
#[derive(Debug, Clone)]
pub enum Event {
    /// A running task finished successfully.
    TaskCompleted(TaskId),
    /// A running task failed.
    TaskFailed {
        /// The task.
        task: TaskId,
        /// Why, as the backend reported it.
        reason: String,
    },
    /// A running task ran past its timeout.
    TaskTimedOut(TaskId),
    /// A node joined the cluster.
    NodeAdded(NodeSpec),
    /// A node left the cluster; its tasks go back to the queue.
    NodeRemoved(NodeId),
    /// A node failed; its tasks go back to the queue.
    NodeDown(NodeId),
    /// A failed node is back and takes tasks again.
    NodeUp(NodeId),
    /// A node keeps its tasks but takes no new ones.
    NodeCordoned(NodeId),
    /// A cordoned node takes tasks again.
    NodeUncordoned(NodeId),
}

/// How many tasks are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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

/// A snapshot of the scheduler, for operators and tests.
#[derive(Debug, Clone, Serialize)]
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
    /// Placements made since start.
    pub placements: u64,
    /// Times a task found no node and went to backoff.
    pub unschedulable: u64,
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

    /// Cancels a task that has not ended; a running task gives its resources back.
    ///
    /// # Errors
    /// [`Error::UnknownTask`], or [`Error::InvalidTransition`] for a task that already ended.
    fn cancel(&mut self, task: TaskId) -> Result<(), Error>;

    /// Runs one scheduling cycle: queues tasks whose backoff is over, then
    /// takes every queued task once and places it or backs it off.
    fn schedule(&mut self) -> Vec<Assignment>;

    /// Applies an event from outside.
    ///
    /// # Errors
    /// A typed [`Error`] when the event names an unknown task or node, or does
    /// not apply to its current state (a second completion, say); the
    /// scheduler's state is then unchanged.
    fn handle(&mut self, event: Event) -> Result<(), Error>;

    /// Installs a new policy for the next decisions and returns the old one.
    fn set_policy(&mut self, policy: Box<dyn Policy>) -> Box<dyn Policy>;

    /// A snapshot of counts and utilization.
    fn report(&self) -> Report;
}

/// Tunables of [`CoreScheduler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Backoff after a task first finds no node (kube-scheduler: 1 s).
    pub backoff_initial: Duration,
    /// The backoff doubles up to this (kube-scheduler: 10 s).
    pub backoff_max: Duration,
    /// When set, one queue pop in this many serves lower priorities round-robin.
    pub aging_every: Option<NonZeroU32>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            aging_every: None,
        }
    }
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
        CoreScheduler {
            policy: self.policy,
            clock: self.clock,
            config: self.config,
            cluster: ClusterState::new(),
            queue,
            tasks: HashMap::new(),
            backoff: BTreeMap::new(),
            backoff_sequence: 0,
            stale_queue_entries: 0,
            counts: TaskCounts::default(),
            placements: 0,
            unschedulable: 0,
            policy_errors: 0,
            last_policy_error: None,
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
/// ```
/// use lepton_core::*;
///
/// let first_fit = policy_fn("first-fit", |task: &TaskSpec, cluster: &ClusterState| {
///     cluster.feasible_nodes(task).next().map(|node| Placement::on(node.id()))
/// });
/// let mut scheduler = CoreScheduler::new(Box::new(first_fit));
/// scheduler.add_node(&NodeSpec::new(NodeId(1), Resources::new(4000, 8192))).unwrap();
/// scheduler.submit(&TaskSpec::new(TaskId(7), Resources::new(1000, 1024))).unwrap();
///
/// let assignments = scheduler.schedule();
/// assert_eq!(assignments[0].node, NodeId(1));
/// scheduler.complete(TaskId(7)).unwrap();
/// assert_eq!(scheduler.report().tasks.completed, 1);
/// ```
#[derive(Debug)]
pub struct CoreScheduler {
    policy: Box<dyn Policy>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    cluster: ClusterState,
    queue: TaskQueue<TaskId>,
    tasks: HashMap<TaskId, TaskRecord>,
    backoff: BTreeMap<(Timestamp, u64), TaskId>,
    backoff_sequence: u64,
    /// Queue entries of tasks cancelled while queued, skipped when popped.
    stale_queue_entries: usize,
    counts: TaskCounts,
    placements: u64,
    unschedulable: u64,
    policy_errors: u64,
    last_policy_error: Option<Error>,
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

    /// Marks a running task completed and frees its resources.
    ///
    /// # Errors
    /// [`Error::UnknownTask`] or [`Error::InvalidTransition`].
    pub fn complete(&mut self, task: TaskId) -> Result<(), Error> {
        self.handle(Event::TaskCompleted(task))
    }

    /// Marks a running task failed and frees its resources.
    ///
    /// # Errors
    /// [`Error::UnknownTask`] or [`Error::InvalidTransition`].
    pub fn fail(&mut self, task: TaskId, reason: impl Into<String>) -> Result<(), Error> {
        self.handle(Event::TaskFailed {
            task,
            reason: reason.into(),
        })
    }

    /// The state of a task.
    pub fn task_state(&self, task: TaskId) -> Option<&TaskState> {
        self.tasks.get(&task).map(|record| &record.state)
    }

    /// A task as it was submitted.
    pub fn task(&self, task: TaskId) -> Option<&TaskSpec> {
        self.tasks.get(&task).map(|record| &*record.spec)
    }

    /// The cluster's accounting, read-only.
    pub fn cluster(&self) -> &ClusterState {
        &self.cluster
    }

    /// The current policy's name.
    pub fn policy_name(&self) -> &str {
        self.policy.name()
    }

    /// Entries in the queue, including those of tasks cancelled while queued
    /// (dropped when reached).
    pub fn queue_len(&self) -> usize {
        self.queue.len()
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

    fn record(&mut self, task: TaskId) -> Result<&mut TaskRecord, Error> {
        self.tasks.get_mut(&task).ok_or(Error::UnknownTask { task })
    }

    /// The one place a task changes state.
    fn transition(&mut self, task: TaskId, state: TaskState) {
        if let Some(record) = self.tasks.get_mut(&task) {
            *self.counts.slot(&record.state) -= 1;
            *self.counts.slot(&state) += 1;
            record.state = state;
        }
    }

    fn enqueue(&mut self, task: TaskId) {
        if let Some(record) = self.tasks.get(&task) {
            self.queue.push(record.spec.priority, task);
            self.transition(task, TaskState::Queued);
        }
    }

    fn back_off(&mut self, task: TaskId, now: Timestamp) {
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
        let key = (now.saturating_add(delay), self.backoff_sequence);
        self.backoff_sequence += 1;
        record.backoff_key = Some(key);
        self.backoff.insert(key, task);
        self.transition(
            task,
            TaskState::BackingOff {
                until: key.0,
                attempts,
            },
        );
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

    /// Ends a running task: frees its resources, records the outcome and
    /// tells the policy.
    fn finish(
        &mut self,
        task: TaskId,
        outcome: Outcome,
        end: TaskState,
        action: &'static str,
    ) -> Result<(), Error> {
        let record = self.record(task)?;
        let TaskState::Running { node } = record.state else {
            return Err(Error::InvalidTransition {
                task,
                action,
                state: record.state.name(),
            });
        };
        self.cluster.release(task)?;
        if let Some(record) = self.tasks.get(&task) {
            self.policy.observe(&Feedback {
                task: &record.spec,
                node,
                outcome,
            });
        }
        self.transition(task, end);
        Ok(())
    }

    /// Takes every task off a node and queues it again.
    fn evacuate(&mut self, node: NodeId) {
        for task in self.cluster.tasks_on(node) {
            // The allocation exists: the task is running on this node.
            let _ = self.cluster.release(task);
            self.enqueue(task);
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
        if self.tasks.contains_key(&id) {
            return Err(Error::DuplicateTask { task: id });
        }
        self.queue.push(spec.priority, id);
        self.tasks.insert(
            id,
            TaskRecord {
                spec: Box::new(spec),
                state: TaskState::Queued,
                backoff_key: None,
                unschedulable_attempts: 0,
            },
        );
        self.counts.queued += 1;
        Ok(id)
    }

    fn cancel(&mut self, task: TaskId) -> Result<(), Error> {
        let record = self.record(task)?;
        match record.state {
            TaskState::Queued => self.stale_queue_entries += 1,
            TaskState::BackingOff { .. } => {
                if let Some(key) = record.backoff_key.take() {
                    self.backoff.remove(&key);
                }
            }
            TaskState::Running { .. } => {
                self.cluster.release(task)?;
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
        self.wake_due_backoffs(now);
        self.policy.begin_cycle(&self.cluster);
        let mut assignments = Vec::new();
        // Tasks that find no node go to backoff, not back to the queue, so
        // this loop takes each queued task at most once.
        while let Some((_, task)) = self.queue.pop() {
            let Some(record) = self.tasks.get(&task) else {
                continue;
            };
            if record.state != TaskState::Queued {
                self.stale_queue_entries = self.stale_queue_entries.saturating_sub(1);
                continue;
            }
            let reserved = match self.policy.select(&record.spec, &self.cluster) {
                Some(placement) => match self.cluster.reserve(&record.spec, &placement) {
                    Ok(allocation) => Some((allocation.node, allocation.gpus.clone())),
                    Err(error) => {
                        self.policy_errors += 1;
                        self.last_policy_error = Some(error);
                        None
                    }
                },
                None => None,
            };
            match reserved {
                Some((node, gpus)) => {
                    if let Some(record) = self.tasks.get_mut(&task) {
                        record.unschedulable_attempts = 0;
                    }
                    self.placements += 1;
                    self.transition(task, TaskState::Running { node });
                    assignments.push(Assignment { task, node, gpus });
                }
                None => {
                    self.unschedulable += 1;
                    self.back_off(task, now);
                }
            }
        }
        assignments
    }

    fn handle(&mut self, event: Event) -> Result<(), Error> {
        match event {
            Event::TaskCompleted(task) => {
                self.finish(task, Outcome::Completed, TaskState::Completed, "complete")
            }
            Event::TaskFailed { task, reason } => {
                self.finish(task, Outcome::Failed, TaskState::Failed { reason }, "fail")
            }
            Event::TaskTimedOut(task) => self.finish(
                task,
                Outcome::TimedOut,
                TaskState::Failed {
                    reason: "timed out".to_owned(),
                },
                "time out",
            ),
            Event::NodeAdded(spec) => self.cluster.add_node(spec),
            Event::NodeRemoved(node) => {
                self.cluster.node(node).ok_or(Error::UnknownNode { node })?;
                self.evacuate(node);
                self.cluster.remove_node(node).map(|_| ())
            }
            Event::NodeDown(node) => {
                self.cluster.set_state(node, NodeState::Down)?;
                self.evacuate(node);
                Ok(())
            }
            Event::NodeUp(node) => self.cluster.set_state(node, NodeState::Ready),
            Event::NodeCordoned(node) => {
                self.set_healthy_node_state(node, NodeState::Cordoned, "cordon")
            }
            Event::NodeUncordoned(node) => {
                self.set_healthy_node_state(node, NodeState::Ready, "uncordon")
            }
        }
    }

    fn set_policy(&mut self, policy: Box<dyn Policy>) -> Box<dyn Policy> {
        std::mem::replace(&mut self.policy, policy)
    }

    fn report(&self) -> Report {
        let nodes = self.cluster.nodes();
        let count = |state| nodes.iter().filter(|n| n.state() == state).count();
        Report {
            policy: self.policy.name().to_owned(),
            now: self.clock.now(),
            tasks: self.counts,
            nodes_ready: count(NodeState::Ready),
            nodes_cordoned: count(NodeState::Cordoned),
            nodes_down: count(NodeState::Down),
            nodes_in_use: nodes.iter().filter(|n| n.task_count() > 0).count(),
            utilization: self.cluster.utilization(),
            placements: self.placements,
            unschedulable: self.unschedulable,
            policy_errors: self.policy_errors,
            last_policy_error: self.last_policy_error.as_ref().map(Error::to_string),
        }
    }
}
