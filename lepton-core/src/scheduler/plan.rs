//! A dry run: [`CoreScheduler::plan`] says where tasks would go if they
//! were submitted now — which running tasks they would preempt, and why
//! the others would wait — without changing anything (Nomad's `job plan`,
//! for a whole scheduler).

use std::sync::Arc;

use foldhash::HashSet;

use super::{CoreScheduler, Explanation, Scheduler, SchedulerConfig};
use crate::clock::ManualClock;
use crate::cluster::GpuSlots;
use crate::error::Error;
use crate::node::NodeId;
use crate::policy::Policy;
use crate::task::{TaskId, TaskSpec};

/// What one cycle would do with the tasks of a [`CoreScheduler::plan`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Plan {
    /// The tasks that would be placed, in the order the cycle placed them.
    pub placed: Vec<Planned>,
    /// Why each task that would not be placed waits.
    pub waiting: Vec<Explanation>,
}

/// Where one task of a [`Plan`] would go.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Planned {
    /// The task.
    pub task: TaskId,
    /// The node it would run on.
    pub node: NodeId,
    /// The GPUs there (none for a task without GPUs).
    pub gpus: GpuSlots,
    /// Running tasks it would preempt to get there.
    pub preempts: Vec<TaskId>,
}

impl CoreScheduler {
    /// Where `tasks` would go if they were submitted now: one scheduling
    /// cycle on a copy of this scheduler's state ([`snapshot`](Self::snapshot):
    /// nodes, running and queued tasks) under `policy`, with this
    /// scheduler's configuration and time. This scheduler is not changed.
    ///
    /// `policy` is a fresh one of the kind this scheduler runs (a policy
    /// object cannot be copied); a policy that learns starts from nothing.
    /// Queued and backing-off tasks compete in the copy's cycle as queued
    /// ones, so the plan is what the next cycle would do were their
    /// backoffs over. With tenant queues, the copy has the same queues:
    /// what the running tasks hold counts, and the tasks waiting in them
    /// (these and the plan's) are admitted afresh, fairest queue first.
    /// Gangs in the plan get the second cycle that places them together.
    ///
    /// # Errors
    /// What [`submit`](Scheduler::submit) refuses for a task (an invalid
    /// spec, an id already known).
    pub fn plan(&self, policy: Box<dyn Policy>, tasks: &[TaskSpec]) -> Result<Plan, Error> {
        let clock = Arc::new(ManualClock::new());
        clock.set(self.now());
        // One cycle places what a plan holds, however many tasks.
        let config = SchedulerConfig {
            max_tasks_per_cycle: None,
            ..self.config.clone()
        };
        let mut builder = CoreScheduler::builder(policy).clock(clock).config(config);
        if let Some(admission) = &self.admission {
            builder = builder.queues(admission);
        }
        let mut copy = builder.build();
        copy.restore(&self.snapshot())?;
        for task in tasks {
            copy.submit(task)?;
        }
        // Ids in sets: a plan may hold as many tasks as a submission.
        let mut unplaced: HashSet<TaskId> = tasks.iter().map(|t| t.id).collect();
        // Gang members are held by the cycle that takes them in and
        // placed together by the next one.
        let mut assignments = copy.schedule();
        if tasks.iter().any(|t| t.gang.is_some()) {
            assignments.extend(copy.schedule());
        }
        let placed = assignments
            .iter()
            .filter(|a| unplaced.remove(&a.task))
            .map(|a| Planned {
                task: a.task,
                node: a.node,
                gpus: a.gpus.clone(),
                preempts: a.evicts.iter().map(|run| run.task).collect(),
            })
            .collect();
        let waiting = tasks
            .iter()
            .filter(|t| unplaced.contains(&t.id))
            .filter_map(|t| copy.explain(t.id))
            .collect();
        Ok(Plan { placed, waiting })
    }
}
