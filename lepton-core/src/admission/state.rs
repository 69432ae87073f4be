//! [`AdmissionState`]: what an [`Admission`] holds, to save and restore.

use serde::{Deserialize, Serialize};

use super::{Admission, Amounts, Held, QueueSpec, Waiting};
use crate::error::Error;
use crate::task::{Priority, TaskId};

/// What an [`Admission`] holds, as serde data, to save and restore it
/// (across a restart, or to another server).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AdmissionState {
    /// The queues declared, by path.
    pub queues: Vec<QueueSpec>,
    /// The tasks waiting, in submission order.
    pub waiting: Vec<WaitingTask>,
    /// The tasks admitted and not ended, with their queues and amounts.
    pub admitted: Vec<(TaskId, String, Amounts)>,
}

/// A task waiting in a queue, as [`AdmissionState`] saves it: what
/// admission decides by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WaitingTask {
    /// Its queue, by path.
    pub queue: String,
    /// The task.
    pub task: TaskId,
    /// Its priority.
    pub priority: Priority,
    /// What it asks for.
    pub amounts: Amounts,
    /// The name of its gang, if it belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gang: Option<String>,
}

impl Admission {
    /// Everything it holds, to save ([`restore`](Self::restore) reads it
    /// back).
    pub fn snapshot(&self) -> AdmissionState {
        let mut waiting: Vec<(u64, WaitingTask)> = self
            .queues
            .iter()
            .flat_map(|q| {
                q.waiting.iter().map(|((priority, seq), task)| {
                    let saved = WaitingTask {
                        queue: q.spec.name.clone(),
                        task: task.task,
                        priority: priority.0,
                        amounts: task.amounts,
                        gang: task.gang.as_deref().map(str::to_owned),
                    };
                    (seq, saved)
                })
            })
            .collect();
        waiting.sort_unstable_by_key(|(seq, _)| *seq);
        let mut admitted: Vec<(TaskId, String, Amounts)> = self
            .tasks
            .iter()
            .filter_map(|(id, held)| match held {
                Held::Admitted(task) => {
                    let queue = self.queues[task.queue].spec.name.clone();
                    Some((*id, queue, task.amounts))
                }
                Held::Waiting(..) => None,
            })
            .collect();
        admitted.sort_unstable_by_key(|(id, _, _)| *id);
        AdmissionState {
            queues: self.queues.iter().map(|q| q.spec.clone()).collect(),
            waiting: waiting.into_iter().map(|(_, task)| task).collect(),
            admitted,
        }
    }

    /// An admission holding what `state` describes: the same queues, the
    /// same tasks waiting in the same order, the same shares held.
    ///
    /// # Errors
    /// As [`add_queue`](Self::add_queue) and [`submit`](Self::submit) for
    /// the queues and waiting tasks; [`Error::UnknownQueue`] or
    /// [`Error::DuplicateTask`] for an admitted task naming a queue not
    /// declared or an id already seen.
    pub fn restore(state: AdmissionState) -> Result<Admission, Error> {
        let mut admission = Admission::new();
        for queue in state.queues {
            admission.add_queue(queue)?;
        }
        for (task, queue, amounts) in state.admitted {
            admission.hold(task, &queue, amounts)?;
        }
        for saved in state.waiting {
            let i = admission.queue_for(&saved.queue, saved.task, saved.amounts)?;
            let waiting = Waiting {
                task: saved.task,
                amounts: saved.amounts,
                gang: saved.gang.map(String::into_boxed_str),
            };
            admission.wait(i, saved.priority, waiting)?;
        }
        Ok(admission)
    }
}
