//! VM power: releasing idle VMs, starting VMs for waiting tasks, keeping
//! the strategy's spare capacity warm, and spot revocations.

use std::collections::BTreeSet;

use lepton_core::rng::SeededRng;
use lepton_core::{CoreScheduler, Resources, Run, TaskId, TaskSpec};

use super::loads::VmLoads;
use super::{FleetWorld, Pool};
use crate::chaos::check::Record;
use crate::Error;

/// A VM's power state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Power {
    Off,
    /// A spot VM taken back by the cloud: gone for the rest of the run.
    Revoked,
    Starting {
        ready_min: u64,
    },
    On {
        idle_since: Option<u64>,
    },
}

/// What manages the fleet's power in one minute: the world, the minute and
/// the strategy's rules.
pub(super) struct PowerManager<'a> {
    pub(super) world: &'a FleetWorld,
    pub(super) minute: u64,
    /// Spare VMs to keep per shape.
    pub(super) headroom: &'a [usize],
    pub(super) use_spot: bool,
}

impl PowerManager<'_> {
    /// Releases idle VMs and starts VMs for waiting tasks: VMs idle for
    /// `idle_release_min` are released (beyond the spare capacity kept),
    /// then for each waiting task the cheapest off VM that holds it is
    /// started (counting capacity already starting), then spare capacity
    /// used up is restored.
    pub(super) fn manage(
        &self,
        scheduler: &mut CoreScheduler,
        power: &mut [Power],
        waiting: &BTreeSet<TaskId>,
        loads: &mut VmLoads,
    ) -> Result<(), Error> {
        let loads = loads.sync(self.world, scheduler.cluster());
        let mut spare = self.spare(loads, power);
        self.release_idle(scheduler, power, &mut spare, loads)?;
        self.scale_up(power, waiting, &spare);
        Ok(())
    }

    /// Starts VMs for waiting tasks, then to restore spare capacity;
    /// whether any was started.
    pub(super) fn scale_up(
        &self,
        power: &mut [Power],
        waiting: &BTreeSet<TaskId>,
        spare: &[usize],
    ) -> bool {
        let starting = |power: &[Power]| {
            power
                .iter()
                .filter(|state| matches!(state, Power::Starting { .. }))
                .count()
        };
        let before = starting(power);
        self.start_for_waiting(power, waiting);
        self.restore_spare(power, spare);
        starting(power) > before
    }

    /// The idle or starting VMs per shape: the spare capacity (`loads`
    /// synced with the cluster).
    pub(super) fn spare(&self, loads: &VmLoads, power: &[Power]) -> Vec<usize> {
        let world = self.world;
        let mut spare = vec![0usize; world.shapes.len()];
        for (index, state) in power.iter().enumerate() {
            let spare_now = match state {
                Power::Starting { .. } => true,
                Power::On { .. } => loads.get(index).tasks == 0,
                Power::Off | Power::Revoked => false,
            };
            if spare_now {
                spare[world.fleet[index].1] += 1;
            }
        }
        spare
    }

    /// Releases VMs idle long enough, beyond the spare capacity (`spare`
    /// counts what is left). Who is busy is read from `loads`, synced
    /// before: releasing (a cordon) changes no VM's tasks.
    fn release_idle(
        &self,
        scheduler: &mut CoreScheduler,
        power: &mut [Power],
        spare: &mut [usize],
        loads: &VmLoads,
    ) -> Result<(), Error> {
        let world = self.world;
        for (index, state) in power.iter_mut().enumerate() {
            let Power::On { idle_since } = state else {
                continue;
            };
            if loads.get(index).tasks > 0 {
                *idle_since = None;
                continue;
            }
            let since = *idle_since.get_or_insert(self.minute);
            let shape = world.fleet[index].1;
            let owned = world.shapes[shape].pool == Pool::Owned;
            let idle_long = self.minute - since >= world.config.idle_release_min;
            if !owned && idle_long && spare[shape] > self.headroom[shape] {
                scheduler.cordon(world.fleet[index].0.id)?;
                *state = Power::Off;
                spare[shape] -= 1;
            }
        }
        Ok(())
    }

    /// For each waiting task, room on a VM already starting, or else the
    /// cheapest off VM that holds it (GPU VMs only for GPU tasks) is
    /// started.
    fn start_for_waiting(&self, power: &mut [Power], waiting: &BTreeSet<TaskId>) {
        let world = self.world;
        // Capacity already starting, per VM: (cpu, memory, storage, gpus) left.
        let mut starting: Vec<(usize, Resources, u32)> = power
            .iter()
            .enumerate()
            .filter(|(_, state)| matches!(state, Power::Starting { .. }))
            .map(|(index, _)| {
                let spec = &world.fleet[index].0;
                (index, spec.capacity.clone(), spec.gpus.count)
            })
            .collect();
        for task in waiting {
            let task = &world.tasks[task.0 as usize];
            let spec = &task.spec;
            // Spot only for tasks with slack, and only when the strategy uses it.
            let allowed = |index: usize| match world.shapes[world.fleet[index].1].pool {
                Pool::Owned | Pool::OnDemand => true,
                Pool::Spot => self.use_spot && task.flexible,
            };
            if let Some((_, free, gpus)) = starting
                .iter_mut()
                .find(|(index, f, g)| allowed(*index) && holds(spec, f, *g))
            {
                take(spec, free, gpus);
                continue;
            }
            let candidate = power
                .iter()
                .enumerate()
                .filter(|&(index, state)| *state == Power::Off && allowed(index))
                .map(|(index, _)| (index, &world.fleet[index]))
                .filter(|(_, (node, _))| tolerates_all(spec, node))
                .filter(|(_, (node, _))| holds(spec, &node.capacity, node.gpus.count))
                .min_by(|(a, (_, sa)), (b, (_, sb))| {
                    world.shapes[*sa]
                        .price_per_hour
                        .total_cmp(&world.shapes[*sb].price_per_hour)
                        .then(a.cmp(b))
                })
                .map(|(index, _)| index);
            let Some(index) = candidate else {
                continue;
            };
            power[index] = Power::Starting {
                ready_min: self.minute + world.config.startup_min,
            };
            let node = &world.fleet[index].0;
            let mut free = node.capacity.clone();
            let mut gpus = node.gpus.count;
            take(spec, &mut free, &mut gpus);
            starting.push((index, free, gpus));
        }
    }

    /// Starts off VMs until each shape has its spare capacity again.
    fn restore_spare(&self, power: &mut [Power], spare: &[usize]) {
        let world = self.world;
        for (shape, &want) in self.headroom.iter().enumerate() {
            let mut missing = want.saturating_sub(spare[shape]);
            for (index, state) in power.iter_mut().enumerate() {
                if missing == 0 {
                    break;
                }
                if *state == Power::Off && world.fleet[index].1 == shape {
                    *state = Power::Starting {
                        ready_min: self.minute + world.config.startup_min,
                    };
                    missing -= 1;
                }
            }
        }
    }
}

/// Whether `free` capacity and `gpus` hold `spec`.
fn holds(spec: &TaskSpec, free: &Resources, gpus: u32) -> bool {
    free.cpu_milli >= spec.request.cpu_milli
        && free.memory_mib >= spec.request.memory_mib
        && free.storage_gib >= spec.request.storage_gib
        && gpus >= spec.gpu.count
}

/// Takes `spec`'s request out of `free` and `gpus` (which hold it).
fn take(spec: &TaskSpec, free: &mut Resources, gpus: &mut u32) {
    free.cpu_milli -= spec.request.cpu_milli;
    free.memory_mib -= spec.request.memory_mib;
    free.storage_gib -= spec.request.storage_gib;
    *gpus -= spec.gpu.count;
}

/// Whether `task` tolerates every taint of `node`.
fn tolerates_all(task: &TaskSpec, node: &lepton_core::NodeSpec) -> bool {
    node.taints.iter().all(|taint| {
        task.constraints
            .tolerations
            .iter()
            .any(|t| t.tolerates(taint))
    })
}

/// Revokes each powered spot VM with the world's rate (per minute: the
/// hourly rate / 60, drawn from the seed, the VM and the minute, so every
/// strategy faces the same odds): its runs are logged as stopped and go
/// back to the queue, and the VM is gone. Returns, per VM revoked, the
/// runs it stopped.
pub(super) fn revoke_spot(
    scheduler: &mut CoreScheduler,
    world: &FleetWorld,
    power: &mut [Power],
    minute: u64,
    log: &mut Vec<Record>,
) -> Result<Vec<Vec<Run>>, Error> {
    let rate = world.spot_revocations_per_hour / 60.0;
    if rate <= 0.0 {
        return Ok(Vec::new());
    }
    let mut revoked = Vec::new();
    for (index, state) in power.iter_mut().enumerate() {
        let (node, shape) = &world.fleet[index];
        let powered = matches!(state, Power::On { .. } | Power::Starting { .. });
        if !powered || world.shapes[*shape].pool != Pool::Spot {
            continue;
        }
        let draw = world.config.seed ^ node.id.0.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ minute << 32;
        if SeededRng::new(draw).next_u64() as f64 / u64::MAX as f64 >= rate {
            continue;
        }
        let runs: Vec<Run> = scheduler
            .cluster()
            .tasks_on(node.id)
            .into_iter()
            .filter_map(|task| scheduler.current_run(task))
            .collect();
        log.extend(runs.iter().map(|&run| Record::Stopped(run)));
        // The scheduler queues its tasks again, uncharged.
        scheduler.remove_node(node.id)?;
        *state = Power::Revoked;
        revoked.push(runs);
    }
    Ok(revoked)
}
