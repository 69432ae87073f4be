//! The data center on a real trace: the instances of Alibaba's DLRM
//! serving trace ([`read_dlrm`](crate::read_dlrm)) in a window of days, on
//! a pool of priced CPU and GPU node shapes the strategies power up and
//! down.

use std::collections::HashMap;

use lepton_core::model::{Taint, Toleration};
use lepton_core::{Gpus, NodeId, NodeSpec, Resources, TaskId, TaskSpec};
use serde::Serialize;

use super::{DatacenterConfig, FleetWorld, Pool, ScenarioTask, VmShape, START_OBJECTIVE_MIN};
use crate::{DlrmInstance, Error, DLRM_GPU_TAINT, RDMA};

/// The node shapes of the trace's pool (the trace names none): AWS
/// on-demand list prices, us-east-1, Linux, 2024. CPU-node (`CN`)
/// instances ask about 5 GiB per vCPU, between the general-purpose (4) and
/// memory-optimised (8) shapes; GPU-node (`HN`) instances one GPU and
/// 8–16 vCPUs. CPU nodes' disks are EBS volumes not priced here (a few %
/// of the node's price); GPU nodes' are their local NVMe. Every node has
/// one RDMA NIC (100 % of [`RDMA`]).
pub const DLRM_SHAPES: [VmShape; 4] = [
    VmShape {
        name: "m7i.48xlarge",
        cpus: 192,
        memory_gib: 768,
        gpus: 0,
        storage_gib: 4_000,
        price_per_hour: 9.6768,
        share: 0.0,
        pool: Pool::OnDemand,
    },
    VmShape {
        name: "r7i.48xlarge",
        cpus: 192,
        memory_gib: 1_536,
        gpus: 0,
        storage_gib: 4_000,
        price_per_hour: 12.7008,
        share: 0.0,
        pool: Pool::OnDemand,
    },
    VmShape {
        name: "g5.12xlarge",
        cpus: 48,
        memory_gib: 192,
        gpus: 4,
        storage_gib: 3_800,
        price_per_hour: 5.672,
        share: 0.0,
        pool: Pool::OnDemand,
    },
    VmShape {
        name: "g5.48xlarge",
        cpus: 192,
        memory_gib: 768,
        gpus: 8,
        storage_gib: 7_600,
        price_per_hour: 16.288,
        share: 0.0,
        pool: Pool::OnDemand,
    },
];

/// Of each class of node (CPU, GPU), the first shape is the main one and
/// the second the larger one the instances too large for the main one
/// need; each gets enough nodes to hold this many times the window's peak
/// demand of the instances it is for.
const POOL_OVER_PEAK: f64 = 2.0;

/// The fewest nodes of each shape in the pool.
const MIN_PER_SHAPE: usize = 3;

/// The taint of the large shapes: only instances too large for their
/// class's main shape (which tolerate it) run there, as a dedicated node
/// pool for large pods is set up in Kubernetes.
const LARGE_TAINT: &str = "large";

/// Days of the trace a run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TraceWindow {
    /// The first day, from 0.
    pub first_day: u64,
    /// Days; the window ends earlier if the trace does.
    pub days: u64,
}

impl TraceWindow {
    /// Days 0–15: everything tuned on the trace is tuned here.
    pub const TUNING: TraceWindow = TraceWindow {
        first_day: 0,
        days: 16,
    };
    /// Days 16–30 (the trace's last): what is reported.
    pub const REPORT: TraceWindow = TraceWindow {
        first_day: 16,
        days: 15,
    };
    /// The whole trace (31 days).
    pub const WHOLE: TraceWindow = TraceWindow {
        first_day: 0,
        days: 31,
    };
}

impl FleetWorld {
    /// The data center of `instances` (a DLRM-format trace) over `window`.
    ///
    /// An instance alive when the window opens arrives at its minute 0,
    /// already running (left out of the waits); one alive when it closes
    /// ends then; every other arrives at its creation. Each is deleted at
    /// its deletion time, however late it started or often it was moved
    /// ([`ScenarioTask::ends_at_min`]). Every instance
    /// is a latency-sensitive service with a start objective of
    /// [`START_OBJECTIVE_MIN`] and no deadline; the trace records no
    /// failures, so none are drawn (`failure_rate` 0). The pool is sized
    /// from the window's peak ([`DLRM_SHAPES`]). `rules` gives the seed,
    /// the idle and start-up times.
    ///
    /// # Errors
    /// [`Error::Workload`] for a window that starts after the trace ends
    /// or holds no instance.
    pub fn from_dlrm(
        instances: &[DlrmInstance],
        window: TraceWindow,
        rules: &DatacenterConfig,
    ) -> Result<FleetWorld, Error> {
        let trace_end_s = instances
            .iter()
            .flat_map(|i| [i.created_s, i.deleted_s])
            .flatten()
            .fold(0.0f64, f64::max);
        // Days past the trace (or past u64) are simply after its end.
        let last_day = window.first_day.saturating_add(window.days);
        let start_s = window.first_day.saturating_mul(86_400) as f64;
        let end_s = last_day.saturating_mul(86_400) as f64;
        let end_s = end_s.min(trace_end_s);
        if window.days == 0 || start_s >= end_s {
            return Err(Error::Workload {
                message: format!(
                    "the window of days {}–{} holds nothing: the trace ends at {:.1} days",
                    window.first_day,
                    last_day.saturating_sub(1),
                    trace_end_s / 86_400.0
                ),
            });
        }
        let window_min = ((end_s - start_s) / 60.0).ceil() as u64;
        let mut tasks: Vec<(ScenarioTask, bool)> = Vec::new();
        for instance in instances {
            let created = instance.created_s.unwrap_or(f64::NEG_INFINITY);
            let deleted = instance.deleted_s.unwrap_or(f64::INFINITY);
            if created >= end_s || deleted <= start_s {
                continue;
            }
            let already_running = created <= start_s;
            let arrival_min = if already_running {
                0
            } else {
                ((created - start_s) / 60.0) as u64
            };
            let end_min = (((deleted.min(end_s)) - start_s) / 60.0).ceil() as u64;
            let end_min = end_min.max(arrival_min + 1);
            let task = ScenarioTask {
                spec: instance.spec.clone(),
                arrival_min,
                duration_min: end_min - arrival_min,
                deadline_min: u64::MAX,
                flexible: false,
                start_within_min: Some(START_OBJECTIVE_MIN),
                already_running,
                ends_at_min: Some(end_min),
            };
            tasks.push((task, instance.gpu_node));
        }
        if tasks.is_empty() {
            return Err(Error::Workload {
                message: format!(
                    "no instance of the trace is alive in days {}–{}",
                    window.first_day,
                    last_day.saturating_sub(1)
                ),
            });
        }
        for (task, gpu_node) in &mut tasks {
            if needs_large(&task.spec, *gpu_node) {
                task.spec = task
                    .spec
                    .clone()
                    .with_toleration(Toleration::key(LARGE_TAINT));
            }
        }
        // Numbered in arrival order: a task's id is its index.
        tasks.sort_by_key(|(t, _)| (t.arrival_min, t.spec.id));
        for (index, (task, _)) in tasks.iter_mut().enumerate() {
            task.spec.id = TaskId(index as u64);
        }
        let fleet = pool(&tasks, window_min);
        let config = DatacenterConfig {
            vms: fleet.len(),
            tasks: tasks.len(),
            hours: window_min.div_ceil(60),
            failure_rate: 0.0,
            ..*rules
        };
        config.validate()?;
        Ok(FleetWorld {
            config,
            shapes: DLRM_SHAPES.to_vec(),
            fleet,
            cloud_starts_on: true,
            spot_revocations_per_hour: 0.0,
            tasks: tasks.into_iter().map(|(t, _)| t).collect(),
        })
    }
}

/// The pool for `tasks` (each with whether it is a GPU-node instance):
/// per class, [`POOL_OVER_PEAK`] times the peak demand of what each shape
/// must hold.
fn pool(tasks: &[(ScenarioTask, bool)], window_min: u64) -> Vec<(NodeSpec, usize)> {
    let mut fleet = Vec::new();
    for (main, large, gpu_class) in [(0, 1, false), (2, 3, true)] {
        let of = |large: bool| -> Vec<&ScenarioTask> {
            tasks
                .iter()
                .filter(|(t, gpu)| *gpu == gpu_class && needs_large(&t.spec, *gpu) == large)
                .map(|(t, _)| t)
                .collect()
        };
        for (shape, demand) in [(main, &of(false)), (large, &of(true))] {
            let count = nodes_for(&peak(demand, window_min, requests), &DLRM_SHAPES[shape])
                .max(spread_nodes(demand, window_min))
                .max(MIN_PER_SHAPE);
            for _ in 0..count {
                let index = fleet.len();
                fleet.push((node(index, shape), shape));
            }
        }
    }
    fleet
}

/// Whether `spec`, of a GPU-node instance or not, is too large for its
/// class's main shape.
fn needs_large(spec: &TaskSpec, gpu_node: bool) -> bool {
    let main = &DLRM_SHAPES[if gpu_node { 2 } else { 0 }];
    spec.request.cpu_milli > main.cpus * 1_000 || spec.request.memory_mib > main.memory_gib * 1_024
}

/// The node `index` of shape `shape`.
fn node(index: usize, shape: usize) -> NodeSpec {
    let vm = &DLRM_SHAPES[shape];
    let resources = Resources::new(vm.cpus * 1_000, vm.memory_gib * 1_024)
        .with_storage_gib(vm.storage_gib)
        .with_extended(RDMA, 100);
    let mut spec = NodeSpec::new(NodeId(index as u64), resources)
        .with_label("shape", vm.name)
        .with_label("pool", "ondemand")
        .with_name(format!("node-{index:05}"));
    if vm.gpus > 0 {
        spec = spec
            .with_gpus(Gpus::new("A10G", vm.gpus))
            .with_taint(Taint::new(DLRM_GPU_TAINT, "true"));
    }
    if shape % 2 == 1 {
        spec = spec.with_taint(Taint::new(LARGE_TAINT, "true"));
    }
    spec
}

/// What `task` asks for: CPUs, memory (GiB) and GPUs.
fn requests(task: &ScenarioTask) -> [f64; 3] {
    [
        task.spec.request.cpu_milli as f64 / 1_000.0,
        task.spec.request.memory_mib as f64 / 1_024.0,
        f64::from(task.spec.gpu.count),
    ]
}

/// The most of `amount` (three figures per task) `tasks` hold at once.
fn peak(
    tasks: &[&ScenarioTask],
    window_min: u64,
    amount: impl Fn(&ScenarioTask) -> [f64; 3],
) -> [f64; 3] {
    let mut changes: Vec<(u64, [f64; 3], bool)> = Vec::with_capacity(tasks.len() * 2);
    for task in tasks {
        let amount = amount(task);
        let end = (task.arrival_min + task.duration_min).min(window_min);
        changes.push((task.arrival_min, amount, true));
        changes.push((end, amount, false));
    }
    // Ends before starts at the same minute.
    changes.sort_by_key(|&(minute, _, starts)| (minute, starts));
    let mut now = [0.0f64; 3];
    let mut most = [0.0f64; 3];
    for (_, amount, starts) in changes {
        for r in 0..3 {
            now[r] += if starts { amount[r] } else { -amount[r] };
            most[r] = most[r].max(now[r]);
        }
    }
    most
}

/// The nodes the density limits of `tasks` need at least: for each
/// anti-affinity group, its most instances alive at once over the limit.
fn spread_nodes(tasks: &[&ScenarioTask], window_min: u64) -> usize {
    let mut groups: HashMap<&str, Vec<&ScenarioTask>> = HashMap::new();
    for task in tasks {
        if let Some(group) = &task.spec.constraints.anti_affinity {
            groups.entry(group).or_default().push(task);
        }
    }
    groups
        .values()
        .map(|members| {
            let limit = members
                .iter()
                .filter_map(|t| t.spec.constraints.max_per_node)
                .min()
                .unwrap_or(1)
                .max(1) as usize;
            let alive = peak(members, window_min, |_| [1.0, 0.0, 0.0])[0];
            (alive as usize).div_ceil(limit)
        })
        .max()
        .unwrap_or(0)
}

/// Nodes of `shape` that hold [`POOL_OVER_PEAK`] times `demand`, by its
/// scarcest resource.
fn nodes_for(demand: &[f64; 3], shape: &VmShape) -> usize {
    let capacity = [
        shape.cpus as f64,
        shape.memory_gib as f64,
        f64::from(shape.gpus),
    ];
    demand
        .iter()
        .zip(capacity)
        .filter(|&(_, c)| c > 0.0)
        .map(|(d, c)| (POOL_OVER_PEAK * d / c).ceil() as usize)
        .max()
        .unwrap_or(0)
}
