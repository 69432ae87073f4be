//! The data-center scenario: 1,000 VMs of a few priced shapes, one day of
//! compute, GPU and storage tasks with a day/night arrival pattern, run
//! minute by minute through the real scheduler, with or without releasing
//! idle VMs.
//!
//! Here: the settings, the shapes and what a strategy is and reports;
//! `world.rs` generates the fleet and its day, `run.rs` steps a strategy
//! through it minute by minute, `power.rs` starts, releases and revokes
//! VMs, `loads.rs` keeps what the minute's scans read of each VM's node.

mod autoscaler;
mod bound;
mod karpenter;
mod loads;
mod power;
mod run;
mod trace;
mod world;

use lepton_core::Policy;
use serde::Serialize;

use crate::Error;

pub use autoscaler::AutoscalerRules;
pub use bound::{floor_cover_cost, lower_bound_cost};
pub use karpenter::Consolidation;
pub use run::run_datacenter;
pub(crate) use run::run_datacenter_while;
pub use trace::{TraceWindow, DLRM_SHAPES};
pub(in crate::scenario) use world::{arrival_minutes, generate_fleet};
pub use world::{FleetWorld, ScenarioTask};

/// Who a VM belongs to, which decides what it costs and whether it stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Pool {
    /// Owned (on premises): already paid, always on, costs nothing more.
    Owned,
    /// Cloud on demand: paid per powered hour.
    OnDemand,
    /// Cloud spot: cheaper per hour, but revoked at random.
    Spot,
}

/// One VM shape of the fleet, with its hourly price.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VmShape {
    /// A cloud-style name.
    pub name: &'static str,
    /// vCPUs.
    pub cpus: u64,
    /// Memory, GiB.
    pub memory_gib: u64,
    /// GPUs (whole).
    pub gpus: u32,
    /// Local storage, GiB.
    pub storage_gib: u64,
    /// Price per powered hour, USD (on-demand list prices of the cloud
    /// shapes they are modelled on, 2024, us-east-1).
    pub price_per_hour: f64,
    /// Share of the fleet.
    pub share: f64,
    /// Owned, on demand or spot.
    pub pool: Pool,
}

/// The fleet's shapes (see `docs/SCENARIOS.md`).
pub const VM_SHAPES: [VmShape; 5] = [
    VmShape {
        name: "general-8",
        cpus: 8,
        memory_gib: 32,
        gpus: 0,
        storage_gib: 100,
        price_per_hour: 0.384,
        share: 0.40,
        pool: Pool::OnDemand,
    },
    VmShape {
        name: "compute-16",
        cpus: 16,
        memory_gib: 32,
        gpus: 0,
        storage_gib: 100,
        price_per_hour: 0.68,
        share: 0.25,
        pool: Pool::OnDemand,
    },
    VmShape {
        name: "memory-8",
        cpus: 8,
        memory_gib: 64,
        gpus: 0,
        storage_gib: 100,
        price_per_hour: 0.504,
        share: 0.15,
        pool: Pool::OnDemand,
    },
    VmShape {
        name: "storage-8",
        cpus: 8,
        memory_gib: 61,
        gpus: 0,
        storage_gib: 1_900,
        price_per_hour: 0.624,
        share: 0.10,
        pool: Pool::OnDemand,
    },
    VmShape {
        name: "gpu-8",
        cpus: 8,
        memory_gib: 61,
        gpus: 1,
        storage_gib: 100,
        price_per_hour: 3.06,
        share: 0.10,
        pool: Pool::OnDemand,
    },
];

/// The start-latency objective of latency-sensitive work, minutes from
/// arrival: the data center's high-priority tasks, the hybrid cloud's
/// urgent ones and every instance of the DLRM trace (all latency-sensitive
/// services) should start within it. A VM takes `startup_min` (3) to start,
/// so a task that needs a new VM can still make it; one that waits for
/// other work to end, or for a scale-up that comes late, may not.
pub const START_OBJECTIVE_MIN: u64 = 5;

/// The taint GPU VMs carry, so only GPU tasks (which tolerate it) use
/// them — as GPU node pools are set up in Kubernetes; every strategy sees
/// the same cluster.
const GPU_TAINT: &str = "gpu";

/// The taint storage VMs carry: only storage tasks use their disks.
const STORAGE_TAINT: &str = "storage";

/// Settings of the data-center scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DatacenterConfig {
    /// Seeds the fleet order, the tasks and which runs fail.
    pub seed: u64,
    /// VMs in the fleet.
    pub vms: usize,
    /// Tasks arriving over `hours`.
    pub tasks: usize,
    /// Hours of arrivals (the run goes on until every task has ended).
    pub hours: u64,
    /// A powered VM idle this many minutes is released (when the strategy
    /// releases idle VMs).
    pub idle_release_min: u64,
    /// Minutes from asking for a VM to its being ready.
    pub startup_min: u64,
    /// Share of runs that fail part-way (and are retried).
    pub failure_rate: f64,
}

impl Default for DatacenterConfig {
    fn default() -> Self {
        DatacenterConfig {
            seed: 1,
            vms: 1_000,
            tasks: 20_000,
            hours: 24,
            idle_release_min: 10,
            startup_min: 3,
            failure_rate: 0.02,
        }
    }
}

impl DatacenterConfig {
    /// Checks every value is in range.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the setting.
    pub fn validate(&self) -> Result<(), Error> {
        let check = |name, value: f64, ok: bool, expected| {
            if ok {
                Ok(())
            } else {
                Err(Error::OutOfRange {
                    name,
                    value,
                    expected,
                })
            }
        };
        check(
            "vms",
            self.vms as f64,
            (10..=100_000).contains(&self.vms),
            "10 to 100,000 VMs",
        )?;
        check(
            "tasks",
            self.tasks as f64,
            (1..=2_000_000).contains(&self.tasks),
            "1 to 2,000,000 tasks",
        )?;
        check(
            "hours",
            self.hours as f64,
            (1..=24 * 31).contains(&self.hours),
            "1 to 744 hours (31 days)",
        )?;
        check(
            "startup_min",
            self.startup_min as f64,
            self.startup_min <= 60,
            "0 to 60 minutes",
        )?;
        check(
            "failure_rate",
            self.failure_rate,
            (0.0..=0.5).contains(&self.failure_rate),
            "a share from 0 to 0.5",
        )
    }
}

/// Spare capacity a strategy keeps warm while releasing idle VMs: of each
/// shape, `share` of the fleet's VMs, at least `min`, stay powered while
/// idle, and VMs are started to restore them as they get used (as
/// Kubernetes users over-provision with placeholder pods).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spare {
    /// Share of each shape's VMs kept spare; 0 keeps none.
    pub share: f64,
    /// The fewest kept per shape when `share` is above 0.
    pub min: usize,
}

impl Spare {
    /// None, as the cluster autoscaler keeps by default.
    pub const NONE: Spare = Spare { share: 0.0, min: 0 };

    /// Spare VMs of a shape the fleet has `count` of.
    pub fn vms(&self, count: usize) -> usize {
        if self.share > 0.0 && count > 0 {
            ((count as f64 * self.share).ceil() as usize).max(self.min)
        } else {
            0
        }
    }
}

/// How a strategy schedules: its policy and whether it releases idle VMs.
pub struct Strategy {
    /// The name reported.
    pub name: String,
    /// The placement policy.
    pub policy: Box<dyn Policy>,
    /// Release VMs idle for `idle_release_min` and start them again (after
    /// `startup_min`) when tasks wait; otherwise every VM is powered all
    /// the time.
    pub release_idle: bool,
    /// With `release_idle`: scale down as the Kubernetes cluster
    /// autoscaler does, by these rules (VMs below half requested whose
    /// tasks fit elsewhere are removed, nothing within a while of a
    /// scale-up; see [`AutoscalerRules`]) instead of releasing VMs idle for
    /// `idle_release_min`.
    pub autoscaler: Option<AutoscalerRules>,
    /// With `release_idle`: consolidate as Karpenter does, by these rules
    /// (VMs whose tasks fit elsewhere are drained, or replaced by a
    /// cheaper VM; see [`Consolidation`]), on top of releasing VMs idle
    /// for `idle_release_min`.
    pub consolidation: Option<Consolidation>,
    /// Whether higher priorities may preempt lower ones.
    pub preemption: bool,
    /// Spare capacity kept warm, when releasing idle VMs.
    pub spare: Spare,
    /// Spare capacity by forecast demand, `spare` at least: per shape,
    /// this factor times the VMs expected to be taken into use (those
    /// that turn from idle, starting or off to busy, a rate learned online
    /// by [`DemandForecast`](lepton_policies::DemandForecast)) during one
    /// start-up time, rounded up.
    pub spare_forecast: Option<f64>,
    /// Whether spot VMs may be started for tasks with slack (see
    /// [`ScenarioTask::flexible`]); otherwise only on-demand ones are.
    pub use_spot: bool,
}

impl Strategy {
    /// A strategy that releases idle VMs (and starts them for waiting
    /// tasks), keeps `spare`, never preempts, starts no spot VM and
    /// releases by idle time rather than the autoscaler's rules.
    pub fn releasing(name: impl Into<String>, policy: Box<dyn Policy>, spare: Spare) -> Strategy {
        Strategy {
            name: name.into(),
            policy,
            release_idle: true,
            autoscaler: None,
            consolidation: None,
            preemption: false,
            spare,
            spare_forecast: None,
            use_spot: false,
        }
    }
}

impl std::fmt::Debug for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strategy")
            .field("name", &self.name)
            .field("policy", &self.policy.name())
            .field("release_idle", &self.release_idle)
            .field("autoscaler", &self.autoscaler)
            .field("consolidation", &self.consolidation)
            .field("preemption", &self.preemption)
            .field("spare", &self.spare)
            .field("use_spot", &self.use_spot)
            .finish()
    }
}

/// What one strategy measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyReport {
    /// The strategy.
    #[serde(rename = "name")]
    pub policy: String,
    /// Mean of the CPU, memory and GPU utilization of powered capacity, %.
    pub utilization_pct: f64,
    /// Allocated CPU over powered CPU, over the whole run, %.
    pub cpu_utilization_pct: f64,
    /// The same for memory, %.
    pub memory_utilization_pct: f64,
    /// The same for GPUs, %.
    pub gpu_utilization_pct: f64,
    /// Powered VM-hours × price, USD.
    #[serde(rename = "cost_usd")]
    pub cost: f64,
    /// Powered VM-hours.
    pub vm_hours: f64,
    /// Tasks that ended after their deadline, or failed.
    pub deadline_misses: usize,
    /// Of those, the tasks no scheduler could have kept from missing: even
    /// started on arrival with every failed run retried at once, they end
    /// after their deadline, or every run their retry budget allows fails
    /// (the same for every strategy on one world).
    pub unavoidable_misses: usize,
    /// Tasks that started later than their start-latency objective
    /// ([`ScenarioTask::start_within_min`]), or never.
    pub slo_violations: usize,
    /// Mean wait (first start − arrival), seconds; tasks already running
    /// when the world starts are left out of the waits.
    pub mean_wait_s: f64,
    /// Median wait, seconds.
    #[serde(rename = "wait_p50_s")]
    pub p50_wait_s: f64,
    /// 95th percentile of the waits, seconds.
    #[serde(rename = "wait_p95_s")]
    pub p95_wait_s: f64,
    /// 99th percentile of the waits, seconds.
    #[serde(rename = "wait_p99_s")]
    pub p99_wait_s: f64,
    /// Hours of runs the strategy stopped before they ended (preempted, or
    /// on a revoked spot VM), lost and run again; runs the world fails
    /// part-way are the same under every strategy and not counted.
    pub lost_work_hours: f64,
    /// Tasks completed.
    pub completed: usize,
    /// Tasks that failed more often than their retry budget allows.
    pub failed: usize,
    /// Tasks neither completed nor failed at the end: lost (must be 0).
    /// Counted by the independent checker the chaos runs use, from the
    /// log of what the simulated world did.
    pub lost: usize,
    /// Tasks the checker saw complete twice or run twice at once (must be 0).
    #[serde(rename = "run_twice")]
    pub ran_twice: usize,
    /// Moments the checker saw a VM hold more than its capacity (must be 0).
    pub overcommitted: usize,
    /// Preemptions.
    pub preemptions: usize,
    /// Spot VMs revoked (their runs were taken off and queued again).
    pub revocations: usize,
    /// Every 10 minutes: (hour, powered VMs, utilization %, cost so far,
    /// VMs taken into use and forecast).
    pub timeline: Vec<TimelinePoint>,
    /// Waits of all tasks, seconds, sorted (for distributions).
    #[serde(skip)]
    pub waits_s: Vec<f64>,
}

/// One point of a strategy's day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Hours since the start.
    pub hour: f64,
    /// VMs powered (ready or starting).
    pub powered_vms: usize,
    /// Mean of CPU, memory and GPU utilization of powered capacity now, %.
    pub utilization_pct: f64,
    /// Cost so far, USD.
    pub cost: f64,
    /// VMs taken into use (turned from idle, starting or off to busy)
    /// since the previous point.
    pub vms_taken_into_use: usize,
    /// How many of those the demand forecast, learned online in every run
    /// and used by a spare by forecast, expected, each minute from what
    /// came before it.
    pub forecast_vms_taken_into_use: f64,
}
