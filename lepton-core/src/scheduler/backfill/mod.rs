//! Backfill with a reservation, as Slurm's backfill scheduler does with
//! walltimes: when [`SchedulerConfig::backfill`](super::SchedulerConfig::backfill)
//! is on and the highest-priority task a cycle cannot place (nor place by
//! preemption) could start on some node once running tasks end — by their
//! `timeout_ms`, the longest they may run — it gets a reservation on the
//! node where that comes soonest, and waits until then. Other tasks may
//! still go on that node only if they will have ended before the
//! reservation starts (their own `timeout_ms` says so); elsewhere they go
//! as before. So a large task is not starved by a stream of small ones,
//! and the small ones fill the room while it waits.
//!
//! The promise: if every task ends within its `timeout_ms` (the scheduler
//! ends the runs that do not), the reserved task finds its node free at the
//! reservation's start and is placed by the first cycle from then on — it
//! backs off exactly until then. A task without a `timeout_ms` may run for
//! ever: room it holds is never counted on, and it never goes on a
//! reserved node.

use super::CoreScheduler;
use crate::clock::Timestamp;
use crate::cluster::has_room;
use crate::node::{NodeId, NodeState};
use crate::task::{TaskId, TaskSpec};
use smallvec::SmallVec;
use std::time::Duration;

/// A task's reservation: a node, from a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The task it is for.
    pub task: TaskId,
    /// The node held for it.
    pub node: NodeId,
    /// When the node will have room, by the running tasks' time limits.
    pub start: Timestamp,
}

impl CoreScheduler {
    /// The reservation the scheduler holds, if backfill is on and a task
    /// waits with one.
    pub fn reservation(&self) -> Option<Reservation> {
        self.reservation
    }

    /// Reserves a node for `task`, which found none, if backfill is on,
    /// no other task holds a reservation and some node will have room by
    /// its running tasks' time limits; the task then backs off until the
    /// reservation starts. `false`: nothing reserved.
    pub(super) fn reserve_for(&mut self, task: TaskId, now: Timestamp) -> bool {
        if !self.config.backfill || self.reservation.is_some_and(|r| r.task != task) {
            return false;
        }
        let Some(spec) = self.tasks.get(&task).map(|r| &*r.spec) else {
            return false;
        };
        let Some((node, start)) = self.earliest_room(spec, now) else {
            self.reservation = None;
            return false;
        };
        self.reservation = Some(Reservation { task, node, start });
        let attempts = self
            .tasks
            .get(&task)
            .map_or(0, |r| r.unschedulable_attempts.saturating_add(1));
        if let Some(record) = self.tasks.get_mut(&task) {
            record.unschedulable_attempts = attempts;
        }
        self.back_off_until(task, start.max(now), attempts);
        true
    }

    /// The node where `spec` will fit soonest as running tasks end at
    /// their time limits, and when.
    fn earliest_room(&self, spec: &TaskSpec, now: Timestamp) -> Option<(NodeId, Timestamp)> {
        let mut best: Option<(NodeId, Timestamp)> = None;
        for node in self.cluster.nodes() {
            if node.state() != NodeState::Ready || node.check_rules(spec).is_err() {
                continue;
            }
            let mut ends: Vec<(Timestamp, TaskId)> = node
                .tasks()
                .iter()
                .filter_map(|&(task, _)| Some((self.time_limit(task)?, task)))
                .collect();
            ends.sort_unstable();
            let mut free = node.free().clone();
            let mut gpus = SmallVec::<[u32; 8]>::from_slice(node.gpu_free_milli());
            if has_room(spec, &free, &gpus) {
                // Room now, yet refused (the policy's filter): waiting for
                // tasks to end is no help here.
                continue;
            }
            let mut start = now;
            for (end, task) in ends {
                if has_room(spec, &free, &gpus) {
                    break;
                }
                let Some(allocation) = self.cluster.allocation(task) else {
                    continue;
                };
                free = free.checked_add(&allocation.resources).ok()?;
                for &gpu in &allocation.gpus {
                    if let Some(milli) = gpus.get_mut(gpu as usize) {
                        *milli += allocation.milli_per_gpu;
                    }
                }
                start = end;
            }
            let sooner = best.is_none_or(|(_, at)| start < at);
            if has_room(spec, &free, &gpus) && sooner {
                best = Some((node.id(), start));
            }
        }
        best
    }

    /// When running `task`'s run reaches its time limit; `None` without one.
    fn time_limit(&self, task: TaskId) -> Option<Timestamp> {
        let record = self.tasks.get(&task)?;
        let limit = record.spec.timeout_ms?;
        Some(
            record
                .run_started
                .saturating_add(Duration::from_millis(limit)),
        )
    }

    /// The node `spec` must not go on: the reserved one, unless `spec` is
    /// the reserved task or will have ended before the reservation starts.
    pub(super) fn reserved_away(&self, spec: &TaskSpec) -> Option<NodeId> {
        let reservation = self.reservation?;
        if reservation.task == spec.id {
            return None;
        }
        let ends_before = spec.timeout_ms.is_some_and(|ms| {
            self.clock.now().saturating_add(Duration::from_millis(ms)) <= reservation.start
        });
        (!ends_before).then_some(reservation.node)
    }
}

#[cfg(test)]
mod tests;
