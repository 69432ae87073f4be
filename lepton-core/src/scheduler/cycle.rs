//! One scheduling cycle: the policy chooses among the feasible nodes, the
//! choice is checked again and booked, and a task that fits nowhere may
//! preempt or backs off.

use std::time::Duration;

use foldhash::HashSet;

use super::{Assignment, CoreScheduler, TaskState};
use crate::cluster::{check_feasible, ClusterState, GpuSlots, NodeFilter, Placement};
use crate::error::Error;
use crate::node::NodeId;
use crate::policy::Policy;
use crate::task::{Run, TaskId, TaskSpec};

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

impl CoreScheduler {
    /// One scheduling cycle ([`Scheduler::schedule`](super::Scheduler::schedule)).
    pub(super) fn cycle(&mut self) -> Vec<Assignment> {
        let now = self.clock.now();
        self.declare_silent_nodes_down(now);
        self.wake_due_backoffs(now);
        if self.config.retry_waiting_on_release {
            let (cluster, tasks) = (&self.cluster, &self.tasks);
            // The node's free room and what its tasks of a lower priority hold.
            let room = |node, priority| {
                let node = cluster.node(node).filter(|_| self.config.preemption)?;
                let mut room = node.free().clone();
                for (task, _) in node.tasks().iter().filter(|(_, p)| *p < priority) {
                    let held = &tasks.get(task)?.spec.request;
                    room = room.checked_add(held).ok()?;
                }
                Some(room)
            };
            let woken = self
                .waiting
                .wake(now, cluster, self.filter.as_deref(), room);
            for task in woken {
                self.enqueue(task);
            }
        }
        self.admit();
        self.policy.begin_cycle(&self.cluster, now);
        self.preemption_misses.clear();
        let mut assignments = Vec::new();
        self.place_gangs(now, &mut assignments);
        // Tasks that find no node go to backoff, not back to the queue, so
        // this loop takes each queued task at most once (tasks evicted by a
        // preemption come back once, at a lower priority). Submissions
        // arriving meanwhile through handles join in priority order, up to
        // the cycle's bound.
        let mut cycle = self.intake.cycle(self.config.max_tasks_per_cycle);
        self.cycle_cut_short = cycle.cut_short;
        while let Some(entry) = self.intake.pop(&mut cycle) {
            let task = self.take_in(entry);
            let Some(record) = self.tasks.get(&task) else {
                continue;
            };
            if record.spec.queue.is_some() && self.held_by_queue(task) {
                // Just taken in from a handle: its queue admits it.
                continue;
            }
            if record.state != TaskState::Queued {
                self.stale_queue_entries = self.stale_queue_entries.saturating_sub(1);
                continue;
            }
            if record.spec.gang.is_some() && self.hold_in_gang(task, now) {
                continue;
            }
            if let Some(booked) = self.choose(task) {
                assignments.push(self.start(task, booked, Vec::new()));
            } else if let Some(assignment) = self.preempt_for(task) {
                assignments.push(assignment);
            } else {
                self.stats.unschedulable += 1;
                if !self.reserve_for(task, now) {
                    self.back_off_unschedulable(task, now);
                }
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

    /// Asks the policy for a node and books it: first avoiding the node of
    /// the task's latest failure, then, if that finds nothing, anywhere.
    pub(super) fn choose(&mut self, task: TaskId) -> Option<Booked> {
        let record = self.tasks.get(&task)?;
        let avoid = record.failures.as_ref().and_then(|failures| failures.avoid);
        // Not the node reserved for another task, unless it will be gone
        // by then.
        let away = self.reserved_away(&record.spec);
        let mut outcome = None;
        if let Some(node) = avoid {
            let mut elsewhere = (*record.spec).clone();
            elsewhere.constraints.avoid_nodes.push(node);
            elsewhere.constraints.avoid_nodes.extend(away);
            outcome = Some(book(
                &mut *self.policy,
                self.filter.as_deref(),
                &mut self.cluster,
                &elsewhere,
            ));
        }
        if !matches!(outcome, Some(Ok(Some(_)))) {
            let spec = match away {
                Some(node) => {
                    let mut spec = (*record.spec).clone();
                    spec.constraints.avoid_nodes.push(node);
                    std::borrow::Cow::Owned(spec)
                }
                None => std::borrow::Cow::Borrowed(&*record.spec),
            };
            outcome = Some(book(
                &mut *self.policy,
                self.filter.as_deref(),
                &mut self.cluster,
                &spec,
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
    pub(super) fn start(
        &mut self,
        task: TaskId,
        (node, gpus): Booked,
        evicts: Vec<Run>,
    ) -> Assignment {
        let now = self.clock.now();
        let mut attempt = 0;
        if let Some(record) = self.tasks.get_mut(&task) {
            record.unschedulable_attempts = 0;
            record.attempt += 1;
            record.run_started = now;
            attempt = record.attempt;
        }
        // The next task alike, if it waits, is tried in this cycle too.
        if let Some(next) = self.waiting.placed(task) {
            self.enqueue(next);
        }
        self.stats.placements += 1;
        self.transition(task, TaskState::Running { node });
        let run = Run { task, attempt };
        self.arm_timeout(run, now);
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
    pub(super) fn rebook(&mut self, task: TaskId, placement: &Placement) {
        if let Some(record) = self.tasks.get(&task) {
            let spec = record.spec.clone();
            if self.cluster.reserve(&spec, placement).is_err() {
                // Cannot happen; if it did, the task must not be lost.
                self.enqueue(task);
            }
        }
    }
}
