//! The fleet and its day: VMs of the catalog's shapes, tasks arriving by
//! a day/night pattern, generated once per seed and shared by every
//! strategy (or read from a user's workload).

use lepton_core::model::{Priority, Taint, Toleration};
use lepton_core::rng::SeededRng;
use lepton_core::{GpuRequest, Gpus, NodeId, NodeSpec, Resources, TaskId, TaskSpec};

use super::{
    DatacenterConfig, Pool, VmShape, GPU_TAINT, START_OBJECTIVE_MIN, STORAGE_TAINT, VM_SHAPES,
};
use crate::Error;

/// A fleet and its day, generated once per seed and shared by every
/// strategy: the data center ([`FleetWorld::generate`]) or the hybrid
/// cloud ([`FleetWorld::hybrid`](crate::scenario::HybridConfig)).
#[derive(Debug, Clone)]
pub struct FleetWorld {
    /// The settings (for the hybrid cloud: its seed, size and rules).
    pub config: DatacenterConfig,
    /// The VM shapes.
    pub shapes: Vec<VmShape>,
    /// The VMs, each with its shape index in `shapes`.
    pub fleet: Vec<(NodeSpec, usize)>,
    /// Whether cloud VMs are powered at the start (owned ones always are).
    pub cloud_starts_on: bool,
    /// How often a powered spot VM is revoked, per hour.
    pub spot_revocations_per_hour: f64,
    /// The tasks: spec, arrival minute, duration minutes, deadline minute.
    pub tasks: Vec<ScenarioTask>,
}

/// A task of the scenario.
#[derive(Debug, Clone)]
pub struct ScenarioTask {
    /// What it asks for.
    pub spec: TaskSpec,
    /// Arrival, minutes from the start.
    pub arrival_min: u64,
    /// How long a run takes, minutes.
    pub duration_min: u64,
    /// It should have ended by then, minutes from the start.
    pub deadline_min: u64,
    /// Whether its deadline leaves room to run on spot VMs (a revocation
    /// costs a restart); false for every data-center task.
    pub flexible: bool,
    /// The longest it should wait to start, minutes (a start-latency
    /// objective: [`START_OBJECTIVE_MIN`] for latency-sensitive work);
    /// `None`: it has none.
    pub start_within_min: Option<u64>,
    /// It ran before the world starts (an instance alive when a trace
    /// window opens): it arrives at minute 0 and is left out of the waits
    /// and the start-latency objectives.
    pub already_running: bool,
    /// A service deleted at a fixed minute (a trace's instances): each of
    /// its runs ends then, however late it started or often it was
    /// restarted; `None`: a run lasts `duration_min`.
    pub ends_at_min: Option<u64>,
}

impl FleetWorld {
    /// Generates the fleet and the tasks of `config`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for a setting out of range.
    pub fn generate(config: &DatacenterConfig) -> Result<FleetWorld, Error> {
        config.validate()?;
        let mut rng = SeededRng::new(config.seed);
        let fleet = generate_fleet(&VM_SHAPES, config.vms, &mut rng);
        let tasks = generate_tasks(config, &mut rng);
        Ok(FleetWorld {
            config: *config,
            shapes: VM_SHAPES.to_vec(),
            fleet,
            cloud_starts_on: true,
            spot_revocations_per_hour: 0.0,
            tasks,
        })
    }
}

/// `vms` VMs of `catalog`'s shapes in their shares, shuffled.
pub(in crate::scenario) fn generate_fleet(
    catalog: &[VmShape],
    vms: usize,
    rng: &mut SeededRng,
) -> Vec<(NodeSpec, usize)> {
    let mut shapes = Vec::with_capacity(vms);
    for (index, shape) in catalog.iter().enumerate() {
        let count = (shape.share * vms as f64).round() as usize;
        shapes.extend(std::iter::repeat_n(index, count));
    }
    shapes.resize(vms, 0);
    rng.shuffle(&mut shapes);
    shapes
        .into_iter()
        .enumerate()
        .map(|(i, index)| {
            let shape = &catalog[index];
            let resources = Resources::new(shape.cpus * 1_000, shape.memory_gib * 1_024)
                .with_storage_gib(shape.storage_gib);
            let pool = match shape.pool {
                Pool::Owned => "owned",
                Pool::OnDemand => "ondemand",
                Pool::Spot => "spot",
            };
            let mut spec = NodeSpec::new(NodeId(i as u64), resources)
                .with_label("shape", shape.name)
                .with_label("pool", pool)
                .with_name(format!("vm-{i:04}"));
            if shape.gpus > 0 {
                spec = spec
                    .with_gpus(Gpus::new("V100", shape.gpus))
                    .with_taint(Taint::new(GPU_TAINT, "true"));
            }
            if shape.storage_gib > 1_000 {
                spec = spec.with_taint(Taint::new(STORAGE_TAINT, "true"));
            }
            (spec, index)
        })
        .collect()
}

/// `config.tasks` arrival minutes over `config.hours`, sorted, at a
/// day/night rate 1 + 0.6·sin(2π(h − 9)/24) (peak at 15:00, trough at
/// 03:00), by thinning.
pub(in crate::scenario) fn arrival_minutes(
    config: &DatacenterConfig,
    rng: &mut SeededRng,
) -> Vec<u64> {
    let minutes = config.hours * 60;
    let mut arrivals = Vec::with_capacity(config.tasks);
    while arrivals.len() < config.tasks {
        let minute = rng.below(minutes);
        let hour = minute as f64 / 60.0;
        let rate = 1.0 + 0.6 * (2.0 * std::f64::consts::PI * (hour - 9.0) / 24.0).sin();
        if rng.uniform() * 1.6 < rate {
            arrivals.push(minute);
        }
    }
    arrivals.sort_unstable();
    arrivals
}

impl FleetWorld {
    /// A data center from a user's nodes and tasks (the JSON workload
    /// format of [`read_workload`](crate::read_workload)) instead of the
    /// built-in ones: each node keeps its spec and its `price_per_hour`
    /// (a node priced 0 is owned: always on, never released); tasks are
    /// numbered in arrival order, need a `duration_s`, and get the
    /// built-in deadline (duration + max(20 min, duration / 2)). Times are
    /// rounded to whole minutes. `rules` gives the seed (failures), the
    /// idle and start-up times and the failure rate; its size fields are
    /// taken from the workload.
    ///
    /// # Errors
    /// [`Error::Workload`] for a task without a duration, or a workload
    /// whose size is out of the scenario's ranges.
    pub fn from_workload(
        nodes: &[NodeSpec],
        tasks: &[crate::TimedTask],
        rules: &DatacenterConfig,
    ) -> Result<FleetWorld, Error> {
        let mut shapes: Vec<VmShape> = Vec::new();
        let mut fleet = Vec::with_capacity(nodes.len());
        for node in nodes {
            let pool = if node.price_per_hour == 0.0 {
                Pool::Owned
            } else {
                Pool::OnDemand
            };
            let shape = VmShape {
                name: "custom",
                cpus: node.capacity.cpu_milli / 1_000,
                memory_gib: node.capacity.memory_mib / 1_024,
                gpus: node.gpus.count,
                storage_gib: node.capacity.storage_gib,
                price_per_hour: node.price_per_hour,
                share: 0.0,
                pool,
            };
            let index = match shapes.iter().position(|s| *s == shape) {
                Some(index) => index,
                None => {
                    shapes.push(shape);
                    shapes.len() - 1
                }
            };
            fleet.push((node.clone(), index));
        }
        let mut ordered: Vec<&crate::TimedTask> = tasks.iter().collect();
        ordered.sort_by_key(|t| t.arrival_s);
        let mut scenario_tasks = Vec::with_capacity(ordered.len());
        for (index, task) in ordered.into_iter().enumerate() {
            let Some(duration_s) = task.duration_s else {
                return Err(Error::Workload {
                    message: format!(
                        "task {} has no duration_s: every task of a scenario needs one",
                        task.spec.id
                    ),
                });
            };
            let arrival_min = task.arrival_s / 60;
            let duration_min = duration_s.div_ceil(60).max(1);
            let mut spec = task.spec.clone();
            spec.id = TaskId(index as u64);
            scenario_tasks.push(ScenarioTask {
                spec,
                arrival_min,
                duration_min,
                deadline_min: arrival_min + duration_min + (duration_min / 2).max(20),
                flexible: false,
                start_within_min: None,
                already_running: false,
                ends_at_min: None,
            });
        }
        let last_arrival_min = scenario_tasks.last().map_or(0, |t| t.arrival_min);
        let config = DatacenterConfig {
            vms: nodes.len(),
            tasks: scenario_tasks.len(),
            hours: (last_arrival_min / 60 + 1).max(1),
            ..*rules
        };
        // In the workload's terms: its nodes are the VMs, its last arrival
        // sets the hours.
        config.validate().map_err(|error| match error {
            Error::OutOfRange {
                name,
                value,
                expected,
            } => Error::Workload {
                message: format!(
                    "its {} come to {}: a data-center scenario needs {expected}",
                    match name {
                        "vms" => "nodes",
                        "hours" => "hours (to its last arrival)",
                        other => other,
                    },
                    lepton_core::readable_number(value)
                ),
            },
            other => other,
        })?;
        Ok(FleetWorld {
            config,
            shapes,
            fleet,
            cloud_starts_on: true,
            spot_revocations_per_hour: 0.0,
            tasks: scenario_tasks,
        })
    }
}

/// The data center's tasks, arriving by [`arrival_minutes`].
fn generate_tasks(config: &DatacenterConfig, rng: &mut SeededRng) -> Vec<ScenarioTask> {
    arrival_minutes(config, rng)
        .into_iter()
        .enumerate()
        .map(|(i, arrival_min)| {
            let kind = rng.uniform();
            let between =
                |rng: &mut SeededRng, low: u64, high: u64| low + rng.below(high - low + 1);
            let (spec, duration_min) = if kind < 0.03 {
                let spec = TaskSpec::new(TaskId(i as u64), Resources::new(4_000, 16_384))
                    .with_gpu(GpuRequest::whole(1))
                    .with_toleration(Toleration::key(GPU_TAINT));
                (spec, between(rng, 30, 180))
            } else if kind < 0.25 {
                let storage = between(rng, 200, 800);
                let resources = Resources::new(2_000, 8_192).with_storage_gib(storage);
                let spec = TaskSpec::new(TaskId(i as u64), resources)
                    .with_toleration(Toleration::key(STORAGE_TAINT));
                (spec, between(rng, 10, 60))
            } else {
                let cpus = between(rng, 1, 8);
                let memory_gib = cpus * between(rng, 1, 4);
                let resources = Resources::new(cpus * 1_000, memory_gib * 1_024);
                (
                    TaskSpec::new(TaskId(i as u64), resources),
                    between(rng, 10, 120),
                )
            };
            let priority = match rng.below(10) {
                0 => Priority(200),
                1..=4 => Priority::NORMAL,
                _ => Priority(50),
            };
            let slack = (duration_min / 2).max(20);
            ScenarioTask {
                spec: spec.with_priority(priority),
                arrival_min,
                duration_min,
                deadline_min: arrival_min + duration_min + slack,
                flexible: false,
                start_within_min: (priority == Priority(200)).then_some(START_OBJECTIVE_MIN),
                already_running: false,
                ends_at_min: None,
            }
        })
        .collect()
}
