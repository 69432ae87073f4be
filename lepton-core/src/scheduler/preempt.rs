//! Preemption: a task that fits nowhere may evict tasks of lower priority.
//!
//! Per node, victims are taken lowest priority first (the largest first
//! among equals, so fewer are needed) until the task fits; the node needing
//! the fewest victims wins, then the one whose highest victim priority is
//! lowest, then the earliest in cluster order. Victims go back to the queue,
//! uncharged; nothing is evicted unless the task then fits.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::{Assignment, CoreScheduler, TaskRecord};
use crate::cluster::{Allocation, ClusterNode, Placement};
use crate::node::{NodeId, NodeState};
use crate::resources::Resources;
use crate::task::{Priority, TaskId, TaskSpec};

/// Evicting `victims` (highest victim priority `worst`) makes room on `node`.
struct Plan {
    node: NodeId,
    victims: Vec<TaskId>,
    worst: Priority,
}

impl CoreScheduler {
    /// Places `task` by preempting lower-priority tasks, when preemption is
    /// on and some node can make room that way.
    pub(super) fn preempt_for(&mut self, task: TaskId) -> Option<Assignment> {
        if !self.config.preemption {
            return None;
        }
        let record = self.tasks.get(&task)?;
        let below = usize::from(record.spec.priority.0);
        if self.running_by_priority[..below].iter().all(|&n| n == 0) {
            return None;
        }
        let plan = self.cheapest_eviction(&record.spec)?;
        let mut evicted = Vec::with_capacity(plan.victims.len());
        for &victim in &plan.victims {
            let run = self.tasks.get(&victim).map(TaskRecord::run)?;
            // A victim runs on the plan's node: its allocation exists.
            let allocation = self.cluster.release(victim).ok()?;
            evicted.push((run, Placement::on_gpus(allocation.node, allocation.gpus)));
        }
        let record = self.tasks.get(&task)?;
        match self
            .cluster
            .reserve(&record.spec, &Placement::on(plan.node))
        {
            Ok(allocation) => {
                let booked = (allocation.node, allocation.gpus.clone());
                let mut runs = Vec::with_capacity(evicted.len());
                for (run, _) in evicted {
                    self.stats.preemptions += 1;
                    self.enqueue(run.task);
                    runs.push(run);
                }
                Some(self.start(task, booked, runs))
            }
            Err(error) => {
                // The plan said it fits; if the cluster disagrees, the
                // victims keep running where they were.
                self.last_policy_error = Some(error);
                for (run, placement) in evicted {
                    self.restore(run.task, &placement);
                }
                None
            }
        }
    }

    fn cheapest_eviction(&self, spec: &TaskSpec) -> Option<Plan> {
        let mut by_node: HashMap<NodeId, Vec<(&Allocation, Priority)>> = HashMap::new();
        for allocation in self.cluster.allocations() {
            let priority = self.tasks.get(&allocation.task)?.spec.priority;
            if priority < spec.priority {
                by_node
                    .entry(allocation.node)
                    .or_default()
                    .push((allocation, priority));
            }
        }
        let mut best: Option<Plan> = None;
        for node in self.cluster.nodes() {
            let Some(candidates) = by_node.get_mut(&node.id()) else {
                continue;
            };
            let Some(plan) = eviction_on(node, spec, candidates) else {
                continue;
            };
            let better = best.as_ref().is_none_or(|best| {
                (plan.victims.len(), plan.worst) < (best.victims.len(), best.worst)
            });
            if better {
                best = Some(plan);
            }
        }
        best
    }
}

/// The victims that make room for `spec` on `node`, if evicting lower
/// priorities there can.
fn eviction_on(
    node: &ClusterNode,
    spec: &TaskSpec,
    candidates: &mut [(&Allocation, Priority)],
) -> Option<Plan> {
    if node.state() != NodeState::Ready || node.check_rules(spec).is_err() {
        return None;
    }
    candidates.sort_by_key(|(allocation, priority)| {
        (
            *priority,
            Reverse(allocation.resources.cpu_milli),
            Reverse(allocation.gpus.len() as u64 * u64::from(allocation.milli_per_gpu)),
            allocation.task,
        )
    });
    let mut free: Resources = node.free().clone();
    let mut gpu_free: Vec<u32> = node.gpu_free_milli().to_vec();
    let mut victims = Vec::new();
    let mut worst = Priority::LOWEST;
    for (allocation, priority) in candidates.iter() {
        if has_room(spec, &free, &gpu_free) {
            break;
        }
        free = free.checked_add(&allocation.resources).ok()?;
        for &gpu in &allocation.gpus {
            let slot = gpu_free.get_mut(gpu as usize)?;
            *slot += allocation.milli_per_gpu;
        }
        victims.push(allocation.task);
        worst = worst.max(*priority);
    }
    (!victims.is_empty() && has_room(spec, &free, &gpu_free)).then_some(Plan {
        node: node.id(),
        victims,
        worst,
    })
}

fn has_room(spec: &TaskSpec, free: &Resources, gpu_free: &[u32]) -> bool {
    let gpus = gpu_free
        .iter()
        .filter(|&&milli| milli >= spec.gpu.milli_per_gpu)
        .count();
    free.fits(&spec.request) && (spec.gpu.is_none() || gpus >= spec.gpu.count as usize)
}
