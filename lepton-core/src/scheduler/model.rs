//! What the scheduler says and hears: the states of a task and their
//! counts, the assignments a cycle hands out, the events it is told of and
//! the report it gives.

use serde::Serialize;

use crate::backend::Usage;
use crate::clock::Timestamp;
use crate::cluster::{GpuSlots, Utilization};
use crate::node::{NodeId, NodeSpec};
use crate::task::{Run, TaskId};

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
    pub(super) fn slot(&mut self, state: &TaskState) -> &mut usize {
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

/// What [`CoreScheduler::drain`](crate::CoreScheduler::drain) did with a node's tasks.
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
/// given up) is refused with [`Error::StaleRun`](crate::Error::StaleRun) and changes nothing.
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
    /// A run's launch was cut short before anything ran (its backend says
    /// [`RunStatus::NeverStarted`](crate::backend::RunStatus::NeverStarted)):
    /// the task is queued again, not charged to its retry budget.
    NeverStarted(Run),
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
    /// policies see it through [`ClusterNode::usage`](crate::cluster::ClusterNode::usage).
    NodeUsage {
        /// The node.
        node: NodeId,
        /// The measurement.
        usage: Usage,
    },
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
