//! The scheduler's state as data: [`SchedulerState`], serde-serializable,
//! so an orchestrator can persist it its own way and restore it after a
//! restart ([`CoreScheduler::snapshot`], [`CoreScheduler::restore`]).

use serde::{Deserialize, Serialize};

use super::{CoreScheduler, Failures, Scheduler, TaskRecord, TaskState};
use crate::cluster::Placement;
use crate::error::Error;
use crate::node::{NodeId, NodeSpec, NodeState};
use crate::task::{Run, TaskSpec};

/// Everything a scheduler knows that outlives a restart: its nodes and
/// their states, and every task with its state, attempts and failures.
/// Statistics, backoff timers and the policy are not part of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchedulerState {
    /// The nodes, in the cluster's order.
    pub nodes: Vec<SavedNode>,
    /// The tasks, by id.
    pub tasks: Vec<SavedTask>,
}

/// A node and its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedNode {
    /// The node.
    pub spec: NodeSpec,
    /// Ready, cordoned or down.
    pub state: NodeState,
}

/// A task, where it is in its life, and its history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedTask {
    /// The task.
    pub spec: TaskSpec,
    /// Where it is.
    pub state: SavedState,
    /// Its runs so far (the current run's attempt while it runs).
    pub attempts: u32,
    /// Why its runs failed, oldest first.
    pub failures: Vec<String>,
}

/// A task's state as saved. A task waiting out a backoff is saved as
/// queued: restored, it is tried at the next cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SavedState {
    /// Waiting to be placed.
    Queued,
    /// Running on `node`, holding these GPUs.
    Running {
        /// The node.
        node: NodeId,
        /// The GPU indexes it holds there.
        gpus: Vec<u32>,
    },
    /// Ended successfully.
    Completed,
    /// Failed for good.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl CoreScheduler {
    /// The scheduler's state as data (see [`SchedulerState`]), to persist.
    /// Submissions a [`Submitter`](super::Submitter) made that no cycle
    /// has taken in yet are not in it.
    pub fn snapshot(&self) -> SchedulerState {
        let nodes = self
            .cluster
            .nodes()
            .iter()
            .map(|node| SavedNode {
                spec: node.spec().clone(),
                state: node.state(),
            })
            .collect();
        let mut tasks: Vec<SavedTask> = self
            .tasks
            .values()
            .map(|record| {
                let id = record.spec.id;
                let state = match &record.state {
                    TaskState::Queued | TaskState::BackingOff { .. } => SavedState::Queued,
                    TaskState::Running { node } => SavedState::Running {
                        node: *node,
                        gpus: self
                            .cluster
                            .allocation(id)
                            .map(|a| a.gpus.iter().copied().collect())
                            .unwrap_or_default(),
                    },
                    TaskState::Completed => SavedState::Completed,
                    TaskState::Failed { .. } => SavedState::Failed,
                    TaskState::Cancelled => SavedState::Cancelled,
                };
                SavedTask {
                    spec: (*record.spec).clone(),
                    state,
                    attempts: record.attempt,
                    failures: self.failures(id).to_vec(),
                }
            })
            .collect();
        tasks.sort_by_key(|task| task.spec.id);
        SchedulerState { nodes, tasks }
    }

    /// Restores a saved state into this scheduler, which must hold no node
    /// and no task yet: the nodes and their states, the running tasks on
    /// their nodes and GPUs (see [`adopt`](Self::adopt)), the queued ones
    /// in the queue with their attempts counted, the ended ones as they
    /// ended. Run ids go on from the saved attempts, so none is reused.
    ///
    /// # Errors
    /// What adding, submitting or adopting refuses when the state does not
    /// hold together (a node or task twice, a running task on an unknown
    /// node or beyond its capacity, an invalid spec); the scheduler may then
    /// hold part of it.
    pub fn restore(&mut self, state: &SchedulerState) -> Result<(), Error> {
        for node in &state.nodes {
            self.add_node(&node.spec)?;
        }
        for task in &state.tasks {
            let id = task.spec.id;
            match &task.state {
                SavedState::Running { node, gpus } => {
                    let run = Run {
                        task: id,
                        attempt: task.attempts,
                    };
                    self.adopt(
                        &task.spec,
                        run,
                        &Placement::on_gpus(*node, gpus.iter().copied()),
                    )?;
                }
                SavedState::Queued => {
                    self.submit(&task.spec)?;
                }
                ended => {
                    task.spec.validate()?;
                    self.claim(id)?;
                    let state = match ended {
                        SavedState::Completed => TaskState::Completed,
                        SavedState::Failed => TaskState::Failed {
                            reasons: task.failures.clone(),
                        },
                        _ => TaskState::Cancelled,
                    };
                    *self.counts.slot(&state) += 1;
                    self.tasks
                        .insert(id, TaskRecord::new(Box::new(task.spec.clone()), state));
                }
            }
            if let Some(record) = self.tasks.get_mut(&id) {
                record.attempt = task.attempts;
                if !task.failures.is_empty() {
                    record.failures = Some(Box::new(Failures {
                        count: u32::try_from(task.failures.len()).unwrap_or(u32::MAX),
                        reasons: task.failures.clone(),
                        avoid: None,
                    }));
                }
            }
        }
        // Node states last: a running task was booked on its node first.
        for node in &state.nodes {
            match node.state {
                NodeState::Cordoned => self.cordon(node.spec.id)?,
                NodeState::Down => self.cluster.set_state(node.spec.id, NodeState::Down)?,
                _ => {}
            }
        }
        Ok(())
    }
}
