//! Scale-down as the Kubernetes cluster autoscaler decides it
//! (`Strategy::autoscaler`). Its documented rules and defaults
//! (cluster-autoscaler FAQ, "How does scale-down work?" and the flag
//! table), the timers and eviction settable as [`AutoscalerRules`]:
//! - a VM is *unneeded* when its utilization — the larger of requested
//!   CPU and memory over capacity, or on a GPU VM requested GPUs over its
//!   GPUs — is below 0.5 (`--scale-down-utilization-threshold`,
//!   `--scale-down-gpu-utilization-threshold`) and every task on it fits
//!   on another powered VM, checked by a simulated rescheduling;
//! - an unneeded VM is removed once it has been unneeded for 10 minutes
//!   (`--scale-down-unneeded-time`): empty VMs up to 10 at a time
//!   (`--max-scale-down-parallelism`), a VM with tasks one at a time
//!   (`--max-drain-parallelism`), its tasks evicted and started again
//!   elsewhere, their work so far lost;
//! - scale-down waits 10 minutes after any scale-up
//!   (`--scale-down-delay-after-add`) and is not evaluated in a loop that
//!   scaled up;
//! - one loop finds at most 30 unneeded VMs with tasks
//!   (`--scale-down-non-empty-candidates-count`), checking those already
//!   unneeded (so they keep counting their unneeded time) and then at
//!   most 10 % of the VMs, at least 50, more
//!   (`--scale-down-candidates-pool-ratio`, `-pool-min-count`), taken in
//!   turn round the fleet from loop to loop.
//!
//! The loop runs once a simulated minute (the autoscaler's is 10 s).

use std::collections::{HashMap, HashSet};

use lepton_core::{CoreScheduler, NodeId, Resources, TaskSpec};
use serde::Serialize;

use super::loads::VmLoads;
use super::power::Power;
use super::{FleetWorld, Pool};

/// Below this utilization a VM may be unneeded.
const UTILIZATION_THRESHOLD: f64 = 0.5;
/// VMs removed in one loop, at most.
const MAX_PARALLELISM: usize = 10;
/// Unneeded VMs with tasks found in one loop, at most.
const NON_EMPTY_CANDIDATES: usize = 30;
/// VMs with tasks, not unneeded before, checked in one loop: this share
/// of the fleet, at least [`CANDIDATES_POOL_MIN`].
const CANDIDATES_POOL_RATIO: f64 = 0.1;
/// See [`CANDIDATES_POOL_RATIO`].
const CANDIDATES_POOL_MIN: usize = 50;

/// The cluster autoscaler's scale-down settings an operator tunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AutoscalerRules {
    /// `--scale-down-unneeded-time`, minutes.
    pub unneeded_min: u64,
    /// `--scale-down-delay-after-add`, minutes.
    pub delay_after_add_min: u64,
    /// Whether VMs with tasks are drained; false is every task annotated
    /// `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`, as
    /// operators annotate batch jobs that a restart would set back.
    pub evict: bool,
}

impl AutoscalerRules {
    /// The autoscaler's defaults: 10 minutes, 10 minutes, evicting.
    pub const DEFAULTS: AutoscalerRules = AutoscalerRules {
        unneeded_min: 10,
        delay_after_add_min: 10,
        evict: true,
    };
}

/// What a scale-down loop reads: the fleet as it is this minute.
#[derive(Clone, Copy)]
pub(super) struct FleetNow<'a> {
    pub(super) scheduler: &'a CoreScheduler,
    /// Synced with the scheduler's cluster.
    pub(super) loads: &'a VmLoads,
    pub(super) world: &'a FleetWorld,
    pub(super) power: &'a [Power],
    pub(super) minute: u64,
}

/// What scale-down (the autoscaler's, or Karpenter's consolidation)
/// decided this minute.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ScaleDownPlan {
    /// Empty VMs to release, by fleet index.
    pub(super) release: Vec<usize>,
    /// A VM with tasks to drain and release.
    pub(super) drain: Option<usize>,
    /// The other VMs found unneeded: the autoscaler marks them with a
    /// soft taint, so the drained tasks go elsewhere when they can.
    pub(super) unneeded: Vec<usize>,
    /// A VM to cordon, and the cheaper VM to start in its place
    /// (consolidation's replacement).
    pub(super) replace: Option<(usize, usize)>,
}

/// The autoscaler's memory between loops.
#[derive(Debug)]
pub(super) struct Autoscaler {
    rules: AutoscalerRules,
    /// Per VM: since when it has been unneeded.
    unneeded_since: Vec<Option<u64>>,
    last_scale_up: Option<u64>,
    /// Where the next loop's new candidates with tasks start.
    next_candidate: usize,
}

impl Autoscaler {
    pub(super) fn new(rules: AutoscalerRules, vms: usize) -> Self {
        Autoscaler {
            rules,
            unneeded_since: vec![None; vms],
            last_scale_up: None,
            next_candidate: 0,
        }
    }

    /// VMs were started this minute (for waiting tasks or spare capacity).
    pub(super) fn scaled_up(&mut self, minute: u64) {
        self.last_scale_up = Some(minute);
    }

    /// One loop: updates which VMs are unneeded and, unless scale-down is
    /// cooling down, what to remove. `spare[shape]` counts the idle or
    /// starting VMs of each shape and `headroom[shape]` how many of them
    /// the strategy keeps (placeholder capacity is never released).
    ///
    /// VMs are checked empty ones first, then those with tasks (the ones
    /// already unneeded first, at most [`NON_EMPTY_CANDIDATES`] found), in
    /// fleet order, each against
    /// the VMs not already found unneeded in this loop, with the tasks of those that were
    /// booked on their simulated destinations (as the autoscaler's
    /// simulation removes each unneeded node before checking the next).
    pub(super) fn scale_down(
        &mut self,
        fleet: &FleetNow<'_>,
        spare: &mut [usize],
        headroom: &[usize],
    ) -> ScaleDownPlan {
        let FleetNow {
            scheduler,
            loads,
            world,
            power,
            minute,
        } = *fleet;
        let rules = self.rules;
        let cooling = self
            .last_scale_up
            .is_some_and(|up| minute < up + rules.delay_after_add_min);
        let mut plan = ScaleDownPlan::default();
        let mut moves = Moves::default();
        // Empty VMs first, as the autoscaler sorts its candidates: tasks
        // are not moved onto a VM that is going.
        let tasks = |index: usize| loads.get(index).tasks;
        let vms = power.len();
        let order = check_order(vms, self.next_candidate, |index| {
            let busy = tasks(index) > 0;
            (busy, busy && self.unneeded_since[index].is_none())
        });
        let pool = ((vms as f64 * CANDIDATES_POOL_RATIO).ceil() as usize).max(CANDIDATES_POOL_MIN);
        let (mut non_empty_found, mut new_checked) = (0, 0);
        for (busy, new, index) in order {
            let (node, shape) = &world.fleet[index];
            let candidate = matches!(power[index], Power::On { .. })
                && world.shapes[*shape].pool != Pool::Owned
                && (!busy || non_empty_found < NON_EMPTY_CANDIDATES)
                && (!new || new_checked < pool);
            new_checked += usize::from(candidate && new);
            let unneeded = candidate && moves.off(scheduler, node.id, UTILIZATION_THRESHOLD);
            non_empty_found += usize::from(busy && unneeded);
            if !unneeded {
                self.unneeded_since[index] = None;
                continue;
            }
            let since = *self.unneeded_since[index].get_or_insert(minute);
            if cooling || minute < since + rules.unneeded_min {
                plan.unneeded.push(index);
                continue;
            }
            let empty = tasks(index) == 0;
            let room = plan.release.len() + usize::from(plan.drain.is_some()) < MAX_PARALLELISM;
            if empty && room && spare[*shape] > headroom[*shape] {
                spare[*shape] -= 1;
                plan.release.push(index);
            } else if !empty && room && plan.drain.is_none() && rules.evict {
                plan.drain = Some(index);
            } else {
                plan.unneeded.push(index);
            }
        }
        self.next_candidate = (self.next_candidate + new_checked) % vms.max(1);
        plan
    }
}

/// The order scale-down checks the `vms` VMs in, each with whether it is
/// busy and whether it is new (busy and not yet unneeded; `class` says
/// both): empty VMs first, then busy ones already unneeded, then new ones,
/// each group in fleet order rotated to begin at `start` (modulo `vms`) —
/// the order of sorting by (busy, new, place in the rotation), built
/// without the sort.
fn check_order(
    vms: usize,
    start: usize,
    class: impl Fn(usize) -> (bool, bool),
) -> Vec<(bool, bool, usize)> {
    let start = start % vms.max(1);
    let mut groups: [Vec<usize>; 3] = Default::default();
    for index in (start..vms).chain(0..start) {
        let (busy, new) = class(index);
        groups[usize::from(busy) + usize::from(new)].push(index);
    }
    let mut order = Vec::with_capacity(vms);
    for (group, indices) in groups.into_iter().enumerate() {
        order.extend(
            indices
                .into_iter()
                .map(|index| (group > 0, group == 2, index)),
        );
    }
    order
}

/// What this loop's simulated moves take from each destination VM, and
/// the VMs found unneeded (no destination for anyone).
#[derive(Debug, Default)]
pub(super) struct Moves {
    taken: HashMap<NodeId, (Resources, u32)>,
    gone: HashSet<NodeId>,
}

impl Moves {
    /// Whether the VM `id` is unneeded: below `threshold` utilization and
    /// each of its tasks, largest first, fits on another VM still here. If
    /// so its tasks are booked where they would go and it is gone for the
    /// rest of the loop; if not nothing is booked.
    pub(super) fn off(&mut self, scheduler: &CoreScheduler, id: NodeId, threshold: f64) -> bool {
        let cluster = scheduler.cluster();
        let Some(node) = cluster.node(id) else {
            return false;
        };
        if utilization(node) >= threshold {
            return false;
        }
        let mut tasks: Vec<&TaskSpec> = cluster
            .tasks_on(id)
            .into_iter()
            .filter_map(|task| scheduler.task(task))
            .collect();
        tasks.sort_by_key(|spec| std::cmp::Reverse(spec.request.cpu_milli));
        self.gone.insert(id);
        let mut booked: Vec<(NodeId, &TaskSpec)> = Vec::with_capacity(tasks.len());
        for spec in tasks {
            match self.destination(scheduler, spec) {
                Some(to) => {
                    self.book(to, spec, true);
                    booked.push((to, spec));
                }
                None => {
                    for (to, spec) in booked {
                        self.book(to, spec, false);
                    }
                    self.gone.remove(&id);
                    return false;
                }
            }
        }
        true
    }

    /// The first VM in cluster order, not gone, that admits `spec` with
    /// what the moves already take there. A GPU task goes only where no
    /// other move took a GPU.
    fn destination(&self, scheduler: &CoreScheduler, spec: &TaskSpec) -> Option<NodeId> {
        let cluster = scheduler.cluster();
        let feasible = cluster.feasible(spec, None);
        // The first node that admits it now, through the index; the moves
        // only take room, so none before it does. (Its position is its id
        // in the scenario's fleets, else the scan starts at 0.)
        let first = feasible.first_fit()?;
        let nodes = cluster.nodes();
        let start = usize::try_from(first.id().0)
            .ok()
            .filter(|&p| nodes.get(p).is_some_and(|n| n.id() == first.id()))
            .unwrap_or(0);
        let found = nodes[start..].iter().find(|node| {
            if !feasible.admits(node) || self.gone.contains(&node.id()) {
                return false;
            }
            let Some((taken, gpus)) = self.taken.get(&node.id()) else {
                return true;
            };
            let fits = node
                .free()
                .checked_sub(taken)
                .is_ok_and(|left| left.fits(&spec.request));
            fits && (spec.gpu.count == 0 || *gpus == 0)
        });
        found.map(|node| node.id())
    }

    /// Books (or, `add` false, unbooks) `spec` on `to`.
    fn book(&mut self, to: NodeId, spec: &TaskSpec, add: bool) {
        let entry = self.taken.entry(to).or_default();
        let changed = if add {
            entry.0.checked_add(&spec.request)
        } else {
            entry.0.checked_sub(&spec.request)
        };
        // Sums of requests that fit on one VM cannot overflow.
        if let Ok(total) = changed {
            entry.0 = total;
        }
        entry.1 = if add {
            entry.1 + spec.gpu.count
        } else {
            entry.1.saturating_sub(spec.gpu.count)
        };
    }
}

/// The autoscaler's utilization of a VM: requested GPUs over its GPUs on
/// a GPU VM, else the larger of requested CPU and memory over capacity.
fn utilization(node: &lepton_core::cluster::ClusterNode) -> f64 {
    let share = |capacity: u64, free: u64| {
        if capacity == 0 {
            0.0
        } else {
            capacity.saturating_sub(free) as f64 / capacity as f64
        }
    };
    let gpus = u64::from(node.spec().gpus.count) * u64::from(lepton_core::model::GPU_MILLI_PER_GPU);
    if gpus > 0 {
        return share(gpus, node.gpu_free_milli_total());
    }
    let capacity = &node.spec().capacity;
    let free = node.free();
    share(capacity.cpu_milli, free.cpu_milli).max(share(capacity.memory_mib, free.memory_mib))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::check_order;

    proptest! {
        /// The grouped order is the sort it replaces: by busy, new, then
        /// place in the rotation that begins at `start`.
        #[test]
        fn the_check_order_is_the_sorted_rotation(
            classes in prop::collection::vec((any::<bool>(), any::<bool>()), 0..40),
            start in 0..100usize,
        ) {
            let vms = classes.len();
            // New implies busy.
            let class = |index: usize| {
                let (busy, new) = classes[index];
                (busy, busy && new)
            };
            let turn = |index: usize| (index + vms - start % vms.max(1)) % vms.max(1);
            let mut sorted: Vec<(bool, bool, usize, usize)> = (0..vms)
                .map(|index| {
                    let (busy, new) = class(index);
                    (busy, new, turn(index), index)
                })
                .collect();
            sorted.sort_unstable();
            let expected: Vec<(bool, bool, usize)> =
                sorted.into_iter().map(|(busy, new, _, index)| (busy, new, index)).collect();
            let order = check_order(vms, start, class);
            prop_assert_eq!(order, expected);
        }
    }
}
