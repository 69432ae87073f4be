//! Consolidation as Karpenter decides it with its default policy,
//! `WhenEmptyOrUnderutilized` (`Strategy::consolidation`; karpenter.sh,
//! "Disruption"; the `disruption` controller of kubernetes-sigs/karpenter
//! v1.13):
//! - a VM is a candidate once its tasks have not changed for
//!   `consolidateAfter` (default 0 s; a command is validated 15 s after it
//!   is computed, so a minute at least here);
//! - at most 10 % of the powered VMs, rounded up, are being disrupted at
//!   once (the default budget), replacements starting counted;
//! - one method acts per loop, in Karpenter's order: **emptiness** removes
//!   every empty candidate the budget allows; else **single-node
//!   consolidation** takes candidates with the fewest tasks first (each
//!   task's disruption cost is 1 without priorities or deletion costs)
//!   and removes the first whose tasks all fit on other VMs (drained, its
//!   tasks restarted there, their work so far lost), or else, with
//!   `replace`, replaces it by one off VM strictly cheaper than it that
//!   holds all its tasks: the VM is cordoned, the replacement started, and
//!   the VM drained once the replacement is ready. There is no
//!   utilization threshold: "underutilized" means a cheaper packing
//!   exists.
//!
//! Not modelled: multi-node consolidation (several VMs onto at most one
//! new one), spot-to-spot replacement, drift and expiry. Single-node
//! consolidation looks at 100 candidates a loop at most (Karpenter's
//! stops after 3 minutes).

use lepton_core::{CoreScheduler, Resources};
use serde::Serialize;

use super::autoscaler::{FleetNow, Moves, ScaleDownPlan};
use super::power::Power;
use super::{FleetWorld, Pool};

/// Candidates single-node consolidation looks at in one loop, at most.
const SINGLE_NODE_CANDIDATES: usize = 100;
/// Share of the powered VMs that may be disrupted at once.
const BUDGET_SHARE: f64 = 0.1;

/// Karpenter's consolidation settings an operator tunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Consolidation {
    /// `consolidateAfter`, minutes (at least 1: the validation delay).
    pub after_min: u64,
    /// Whether a VM whose tasks fit nowhere else is replaced by a cheaper
    /// VM that holds them (otherwise only deleted).
    pub replace: bool,
    /// Whether VMs with tasks are disrupted at all; false is every task
    /// annotated `karpenter.sh/do-not-disrupt`, as operators annotate
    /// batch jobs a restart would set back: only empty VMs go.
    pub evict: bool,
}

/// Consolidation's memory between loops.
#[derive(Debug)]
pub(super) struct Consolidator {
    rules: Consolidation,
    /// Per VM: its generation when last seen, and since when it has not
    /// changed.
    unchanged: Vec<(u64, u64)>,
    /// VMs being replaced, each with its replacement.
    replacing: Vec<(usize, usize)>,
}

impl Consolidator {
    pub(super) fn new(rules: Consolidation, vms: usize) -> Self {
        Consolidator {
            rules,
            unchanged: vec![(0, 0); vms],
            replacing: Vec::new(),
        }
    }

    /// One loop. `spare[shape]` counts the idle or starting VMs of each
    /// shape and `headroom[shape]` how many of them the strategy keeps.
    pub(super) fn plan(
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
        let tasks = |index: usize| loads.get(index).tasks;
        for (index, seen) in self.unchanged.iter_mut().enumerate() {
            let generation = loads.get(index).generation;
            if generation != seen.0 {
                *seen = (generation, minute);
            }
        }
        let mut plan = ScaleDownPlan::default();
        // A replacement that is ready: the VM it replaces is drained.
        if let Some(at) = self
            .replacing
            .iter()
            .position(|&(_, new)| matches!(power[new], Power::On { .. }))
        {
            plan.drain = Some(self.replacing.swap_remove(at).0);
            return plan;
        }
        let powered = power
            .iter()
            .filter(|p| matches!(p, Power::On { .. } | Power::Starting { .. }))
            .count();
        let budget =
            ((powered as f64 * BUDGET_SHARE).ceil() as usize).saturating_sub(self.replacing.len());
        let after = self.rules.after_min.max(1);
        let replacing = &self.replacing;
        let candidate = |index: usize| {
            matches!(power[index], Power::On { .. })
                && world.shapes[world.fleet[index].1].pool != Pool::Owned
                && minute >= self.unchanged[index].1 + after
                && !replacing.iter().any(|&(old, _)| old == index)
        };
        // Emptiness.
        for index in (0..power.len()).filter(|&i| candidate(i) && tasks(i) == 0) {
            let shape = world.fleet[index].1;
            if plan.release.len() < budget && spare[shape] > headroom[shape] {
                spare[shape] -= 1;
                plan.release.push(index);
            }
        }
        if !plan.release.is_empty() || budget == 0 || !self.rules.evict {
            return plan;
        }
        // Single-node consolidation, fewest tasks first.
        let mut candidates: Vec<(u32, usize)> = (0..power.len())
            .filter(|&i| candidate(i))
            .map(|i| (tasks(i), i))
            .collect();
        candidates.sort_unstable();
        // The first off on-demand VM of each shape: where a replacement
        // would come from.
        let mut off = vec![None; world.shapes.len()];
        for (index, state) in power.iter().enumerate() {
            let shape = world.fleet[index].1;
            if *state == Power::Off && world.shapes[shape].pool == Pool::OnDemand {
                off[shape].get_or_insert(index);
            }
        }
        for &(_, index) in candidates.iter().take(SINGLE_NODE_CANDIDATES) {
            let mut moves = Moves::default();
            if moves.off(scheduler, world.fleet[index].0.id, f64::INFINITY) {
                plan.drain = Some(index);
                return plan;
            }
            if !self.rules.replace {
                continue;
            }
            if let Some(new) = cheaper_replacement(scheduler, world, &off, index) {
                self.replacing.push((index, new));
                plan.replace = Some((index, new));
                return plan;
            }
        }
        plan
    }
}

/// Of the off VMs `off` (one per shape, if any), the cheapest strictly
/// cheaper than the VM at `index` whose capacity holds every task on it
/// and whose taints they tolerate.
fn cheaper_replacement(
    scheduler: &CoreScheduler,
    world: &FleetWorld,
    off: &[Option<usize>],
    index: usize,
) -> Option<usize> {
    let cluster = scheduler.cluster();
    let (node, shape) = &world.fleet[index];
    let price = world.shapes[*shape].price_per_hour;
    let specs: Vec<_> = cluster
        .tasks_on(node.id)
        .into_iter()
        .filter_map(|task| scheduler.task(task))
        .collect();
    let mut need = Resources::zero();
    let mut gpus = 0;
    for spec in &specs {
        need = need.checked_add(&spec.request).ok()?;
        gpus += spec.gpu.count;
    }
    off.iter()
        .flatten()
        .copied()
        .filter(|&i| world.shapes[world.fleet[i].1].price_per_hour < price)
        .filter(|&i| {
            let candidate = &world.fleet[i].0;
            candidate.capacity.fits(&need)
                && candidate.gpus.count >= gpus
                && specs.iter().all(|spec| {
                    candidate.taints.iter().all(|taint| {
                        spec.constraints
                            .tolerations
                            .iter()
                            .any(|t| t.tolerates(taint))
                    })
                })
        })
        .min_by(|&a, &b| {
            let price = |i: usize| world.shapes[world.fleet[i].1].price_per_hour;
            price(a).total_cmp(&price(b)).then(a.cmp(&b))
        })
}
