//! Preemption: a task that fits nowhere may evict tasks of lower priority.
//!
//! Victims are ranked by [`EvictionRank`]: lowest priority first and, among
//! equal priorities, best-effort work first, then burstable,
//! latency-sensitive and guaranteed (QoS breaks ties, it never overrides a
//! priority); a best-effort task never preempts. Per node, victims are
//! taken in that order (the largest first among equals, so fewer are
//! needed) until the task passes the one feasibility stage
//! (the node's checks and the policy's filter, `cluster/feasible.rs`) on the
//! node as it would be without them — so a node the policy's filter
//! refuses is never a candidate, and a cap on use is met once the victims
//! are gone, evicting more if need be. Among the candidate nodes found (at
//! least 100 or a tenth of the cluster, from a rotating start) the one
//! needing the fewest victims wins, then the one whose highest-ranked
//! victim ranks lowest, then the first found. Victims go back to the queue,
//! uncharged; nothing is evicted unless the task then fits.

use std::cmp::Reverse;

use smallvec::SmallVec;

use super::{Assignment, CoreScheduler, TaskRecord};
use crate::cluster::{check_feasible, has_room, Allocation, ClusterNode, NodeFilter, Placement};
use crate::node::{NodeId, NodeState};
use crate::resources::GpuRequest;
use crate::task::{Constraints, Priority, QosClass, TaskId, TaskSpec};

/// Where a running task stands in the eviction order, lowest evicted (and
/// moved by the rebalancer) first: its priority, then its QoS class —
/// best-effort, burstable, latency-sensitive, guaranteed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct EvictionRank(u16);

impl EvictionRank {
    /// QoS classes per priority.
    const CLASSES: u16 = 4;
    /// How many ranks there are.
    pub(super) const COUNT: usize = 256 * Self::CLASSES as usize;

    pub(super) fn of(priority: Priority, qos: QosClass) -> Self {
        let class = match qos {
            QosClass::BestEffort => 0,
            QosClass::Burstable => 1,
            QosClass::LatencySensitive => 2,
            QosClass::Guaranteed => 3,
        };
        EvictionRank(u16::from(priority.0) * Self::CLASSES + class)
    }

    /// The lowest rank of `priority`: every rank below it has a lower priority.
    fn lowest_of(priority: Priority) -> Self {
        EvictionRank(u16::from(priority.0) * Self::CLASSES)
    }

    pub(super) fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A search that found no way to make room, remembered for the rest of the
/// cycle: placements only take room, so a task of no higher priority that
/// asks at least as much (and has no placement constraints) cannot succeed
/// either, and is not searched for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Miss {
    priority: Priority,
    cpu_milli: u64,
    memory_mib: u64,
    gpu: GpuRequest,
}

impl Miss {
    fn of(spec: &TaskSpec) -> Option<Miss> {
        (spec.constraints == Constraints::default()).then_some(Miss {
            priority: spec.priority,
            cpu_milli: spec.request.cpu_milli,
            memory_mib: spec.request.memory_mib,
            gpu: spec.gpu,
        })
    }

    fn covers(&self, other: &Miss) -> bool {
        other.priority <= self.priority
            && other.cpu_milli >= self.cpu_milli
            && other.memory_mib >= self.memory_mib
            && other.gpu.count >= self.gpu.count
            && other.gpu.milli_per_gpu >= self.gpu.milli_per_gpu
    }
}

/// Candidate nodes a search looks for, at least (kube-scheduler's
/// `minCandidateNodesAbsolute`).
const MIN_CANDIDATE_NODES: usize = 100;

/// Misses remembered per cycle, at most.
const MAX_MISSES: usize = 32;

/// Evicting `victims` (the highest ranked being `worst`) makes room on `node`.
struct Plan {
    node: NodeId,
    victims: Vec<TaskId>,
    worst: EvictionRank,
}

impl CoreScheduler {
    /// Places `task` by preempting lower-priority tasks, when preemption is
    /// on and some node can make room that way.
    pub(super) fn preempt_for(&mut self, task: TaskId) -> Option<Assignment> {
        if !self.config.preemption {
            return None;
        }
        let record = self.tasks.get(&task)?;
        if record.spec.qos == QosClass::BestEffort {
            return None;
        }
        // Within its queue's guarantee, it may also take back what other
        // queues borrowed, whatever their priority (see `admit.rs`).
        let reclaiming = self.reclaims(task);
        let below = EvictionRank::lowest_of(record.spec.priority).index();
        if !reclaiming && self.running_by_rank[..below].iter().all(|&n| n == 0) {
            return None;
        }
        let miss = Miss::of(&record.spec).filter(|_| !reclaiming);
        if let Some(miss) = miss {
            if self.preemption_misses.iter().any(|m| m.covers(&miss)) {
                return None;
            }
        }
        let plan = self
            .cheapest_eviction(&record.spec, reclaiming)
            .filter(|plan| !reclaiming || self.keeps_guarantees(&plan.victims));
        self.preemption_cursor = self.preemption_cursor.wrapping_add(1);
        let Some(plan) = plan else {
            if let Some(miss) = miss.filter(|_| self.preemption_misses.len() < MAX_MISSES) {
                self.preemption_misses.push(miss);
            }
            return None;
        };
        let priority = record.spec.priority;
        let mut evicted = Vec::with_capacity(plan.victims.len());
        for &victim in &plan.victims {
            let run = self.tasks.get(&victim).map(TaskRecord::run)?;
            // A victim runs on the plan's node: its allocation exists.
            let allocation = self.cluster.release(victim).ok()?;
            evicted.push((
                run,
                Placement::on_gpus(allocation.node, allocation.gpus.iter().copied()),
            ));
        }
        let record = self.tasks.get(&task)?;
        let filter = self.filter.as_deref();
        let booked = self
            .cluster
            .reserve_if(&record.spec, &Placement::on(plan.node), |node| {
                check_feasible(&record.spec, filter, node)
            });
        match booked {
            Ok(allocation) => {
                let booked = (allocation.node, allocation.gpus.clone());
                let mut runs = Vec::with_capacity(evicted.len());
                for (run, _) in evicted {
                    self.stats.preemptions += 1;
                    let outranked = self
                        .tasks
                        .get(&run.task)
                        .is_some_and(|victim| victim.spec.priority < priority);
                    if outranked {
                        self.enqueue(run.task);
                    } else {
                        // Reclaimed: its share goes back to its queue.
                        self.readmit(run.task);
                    }
                    runs.push(run);
                }
                Some(self.start(task, booked, runs))
            }
            Err(error) => {
                // The plan said it fits; if the cluster disagrees, the
                // victims keep running where they were.
                self.last_policy_error = Some(error);
                for (run, placement) in evicted {
                    self.rebook(run.task, &placement);
                }
                None
            }
        }
    }

    /// The best plan among the first nodes that have one, scanning from a
    /// rotating start: like kube-scheduler, the search stops once it has
    /// `max(100, nodes / 10)` candidates, so its cost does not grow with
    /// the whole cluster.
    fn cheapest_eviction(&self, spec: &TaskSpec, reclaiming: bool) -> Option<Plan> {
        // No plan beats one victim of the lowest running rank.
        let lowest = self.running_by_rank.iter().position(|&n| n > 0)?;
        let nodes = self.cluster.nodes();
        let enough = (nodes.len() / 10).max(MIN_CANDIDATE_NODES);
        let start = self.preemption_cursor % nodes.len().max(1);
        let mut best: Option<Plan> = None;
        let mut found = 0;
        let mut candidates = Vec::new();
        for node in nodes[start..].iter().chain(&nodes[..start]) {
            if found == enough {
                break;
            }
            candidates.clear();
            for &(task, priority) in node.tasks() {
                let borrowed = reclaiming && self.borrowed(task);
                if (priority < spec.priority || borrowed) && self.evictable(task) {
                    let allocation = self.cluster.allocation(task)?;
                    candidates.push((allocation, EvictionRank::of(priority, allocation.qos)));
                }
            }
            if candidates.is_empty() {
                continue;
            }
            let Some(plan) = eviction_on(node, spec, self.filter.as_deref(), &mut candidates)
            else {
                continue;
            };
            found += 1;
            let better = best.as_ref().is_none_or(|best| {
                (plan.victims.len(), plan.worst) < (best.victims.len(), best.worst)
            });
            if better {
                let unbeatable = plan.victims.len() == 1 && plan.worst.index() == lowest;
                best = Some(plan);
                if unbeatable {
                    break;
                }
            }
        }
        best
    }
}

/// The victims whose eviction lets `spec` onto `node`, if evicting lower
/// priorities there can: taken in eviction order until the task passes
/// the feasibility stage on the node as it would be without them.
fn eviction_on(
    node: &ClusterNode,
    spec: &TaskSpec,
    filter: Option<&dyn NodeFilter>,
    candidates: &mut [(&Allocation, EvictionRank)],
) -> Option<Plan> {
    // What eviction cannot change rules a node out before anything else.
    if node.state() != NodeState::Ready || node.check_rules(spec).is_err() {
        return None;
    }
    candidates.sort_by_key(|(allocation, rank)| {
        (
            *rank,
            Reverse(allocation.resources.cpu_milli),
            Reverse(allocation.gpus.len() as u64 * u64::from(allocation.milli_per_gpu)),
            allocation.task,
        )
    });
    // Capacity first, in plain numbers: the fewest victims that make room.
    // Most nodes searched end here, so they cost no copy of the node.
    let mut free = node.free().clone();
    let mut gpu_free = SmallVec::<[u32; 8]>::from_slice(node.gpu_free_milli());
    let mut taken = 0;
    while !has_room(spec, &free, &gpu_free) {
        let (allocation, _) = candidates.get(taken)?;
        free = free.checked_add(&allocation.resources).ok()?;
        for &gpu in &allocation.gpus {
            *gpu_free.get_mut(gpu as usize)? += allocation.milli_per_gpu;
        }
        taken += 1;
    }
    // Then the one feasibility stage, on the node as it would be: the
    // policy's filter may want more gone (a cap on use), or none at all.
    let mut after = node.hypothetical();
    for (allocation, _) in &candidates[..taken] {
        after.give_back(allocation);
    }
    while check_feasible(spec, filter, &after).is_err() {
        let (allocation, _) = candidates.get(taken)?;
        after.give_back(allocation);
        taken += 1;
    }
    let victims = &candidates[..taken];
    // Sorted by rank: the last victim ranks highest.
    let (_, worst) = *victims.last()?;
    Some(Plan {
        node: node.id(),
        victims: victims
            .iter()
            .map(|(allocation, _)| allocation.task)
            .collect(),
        worst,
    })
}
