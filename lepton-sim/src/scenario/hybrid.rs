//! The hybrid-cloud scenario: owned VMs (already paid), cloud VMs on demand
//! and cheaper spot VMs that the cloud revokes at random. Run by the same
//! engine as the data center ([`run_datacenter`](super::run_datacenter)).

use std::sync::Arc;

use serde::Serialize;

use super::datacenter::{
    arrival_minutes, generate_fleet, FleetWorld, Pool, ScenarioTask, VmShape, START_OBJECTIVE_MIN,
};
use crate::Error;
use lepton_core::cluster::{ClusterNode, NodeFilter};
use lepton_core::rng::SeededRng;
use lepton_core::{FeasibleNodes, Misfit, Placement, Policy, Resources, TaskId, TaskSpec};
use lepton_policies::KubeResources;

/// Settings of the hybrid-cloud scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HybridConfig {
    /// Seeds the fleet order, the tasks, the failures and the revocations.
    pub seed: u64,
    /// Owned VMs (always on, already paid).
    pub owned_vms: usize,
    /// Cloud VMs available on demand.
    pub on_demand_vms: usize,
    /// Cloud spot VMs available.
    pub spot_vms: usize,
    /// Tasks over `hours`.
    pub tasks: usize,
    /// Hours of arrivals.
    pub hours: u64,
    /// How often a powered spot VM is revoked, per hour.
    pub spot_revocations_per_hour: f64,
}

impl Default for HybridConfig {
    fn default() -> Self {
        HybridConfig {
            seed: 1,
            owned_vms: 200,
            on_demand_vms: 400,
            spot_vms: 400,
            tasks: 12_000,
            hours: 24,
            spot_revocations_per_hour: 0.05,
        }
    }
}

/// The shapes of the hybrid cloud: the same 8 vCPU / 32 GiB VM owned, on
/// demand (m5.2xlarge's list price) and spot (about 70 % less, as spot
/// prices typically are).
const fn shape(name: &'static str, price_per_hour: f64, pool: Pool) -> VmShape {
    VmShape {
        name,
        cpus: 8,
        memory_gib: 32,
        gpus: 0,
        storage_gib: 100,
        price_per_hour,
        share: 0.0,
        pool,
    }
}

/// Owned, on-demand and spot shapes, in that order.
pub const HYBRID_SHAPES: [VmShape; 3] = [
    shape("owned-8", 0.0, Pool::Owned),
    shape("ondemand-8", 0.384, Pool::OnDemand),
    shape("spot-8", 0.115, Pool::Spot),
];

/// Tasks with this much slack beyond their duration, or more, may run on
/// spot VMs (a revocation costs a restart), minutes.
pub const FLEXIBLE_SLACK_MIN: u64 = 240;

impl HybridConfig {
    /// Checks every value is in range.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the setting.
    pub fn validate(&self) -> Result<(), Error> {
        let rate = self.spot_revocations_per_hour;
        if !(0.0..=60.0).contains(&rate) {
            return Err(Error::OutOfRange {
                name: "spot_revocations_per_hour",
                value: rate,
                expected: "0 to 60 per hour",
            });
        }
        if self.owned_vms == 0 {
            return Err(Error::OutOfRange {
                name: "owned_vms",
                value: 0.0,
                expected: "at least 1",
            });
        }
        self.as_fleet_config().validate()
    }

    fn as_fleet_config(&self) -> super::DatacenterConfig {
        super::DatacenterConfig {
            seed: self.seed,
            vms: self.owned_vms + self.on_demand_vms + self.spot_vms,
            tasks: self.tasks,
            hours: self.hours,
            ..super::DatacenterConfig::default()
        }
    }
}

impl FleetWorld {
    /// Generates the hybrid cloud of `config`: the owned VMs on at the
    /// start, the cloud's off; compute tasks (1–8 vCPUs, 10–120 minutes)
    /// with the data center's day/night arrivals, half of them urgent
    /// (deadline: duration + max(20 min, duration / 2)), half flexible
    /// (duration + [`FLEXIBLE_SLACK_MIN`]).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for a setting out of range.
    pub fn hybrid(config: &HybridConfig) -> Result<FleetWorld, Error> {
        config.validate()?;
        let fleet_config = config.as_fleet_config();
        let total = fleet_config.vms as f64;
        let mut shapes = HYBRID_SHAPES.to_vec();
        let counts = [config.owned_vms, config.on_demand_vms, config.spot_vms];
        for (shape, count) in shapes.iter_mut().zip(counts) {
            shape.share = count as f64 / total;
        }
        let mut rng = SeededRng::new(config.seed);
        let fleet = generate_fleet(&shapes, fleet_config.vms, &mut rng);
        let tasks = arrival_minutes(&fleet_config, &mut rng)
            .into_iter()
            .enumerate()
            .map(|(i, arrival_min)| {
                let cpus = 1 + rng.below(8);
                let memory_gib = cpus * (1 + rng.below(4));
                let duration_min = 10 + rng.below(111);
                let flexible = rng.below(2) == 0;
                let slack = if flexible {
                    FLEXIBLE_SLACK_MIN
                } else {
                    (duration_min / 2).max(20)
                };
                let spec = TaskSpec::new(
                    TaskId(i as u64),
                    Resources::new(cpus * 1_000, memory_gib * 1_024),
                )
                .with_config(SLACK_KEY, if flexible { FLEXIBLE } else { URGENT });
                ScenarioTask {
                    spec,
                    arrival_min,
                    duration_min,
                    deadline_min: arrival_min + duration_min + slack,
                    flexible,
                    start_within_min: (!flexible).then_some(START_OBJECTIVE_MIN),
                    already_running: false,
                    ends_at_min: None,
                }
            })
            .collect();
        Ok(FleetWorld {
            config: fleet_config,
            shapes,
            fleet,
            cloud_starts_on: false,
            spot_revocations_per_hour: config.spot_revocations_per_hour,
            tasks,
        })
    }
}

const SLACK_KEY: &str = "slack";
const FLEXIBLE: &str = "flexible";
const URGENT: &str = "urgent";

/// Places by cost tier: owned VMs first, then (when allowed) spot for
/// flexible tasks, then on demand; best fit inside a tier, or
/// kube-scheduler's scoring. With `use_spot` false it is the baseline
/// "on-premises first, then on demand".
#[derive(Debug, Clone, Copy)]
pub struct TierPolicy {
    /// Whether flexible tasks may go to spot VMs.
    pub use_spot: bool,
    /// Inside a tier, kube-scheduler's scoring (the tiers then being what
    /// a Kubernetes operator sets with preferred node affinity and a spot
    /// taint only flexible tasks tolerate) instead of best fit.
    pub kube: Option<KubeResources>,
}

impl TierPolicy {
    fn pool(node: &ClusterNode) -> Option<&str> {
        node.spec().labels.get("pool").map(String::as_str)
    }
}

impl Policy for TierPolicy {
    fn name(&self) -> &str {
        match (self.use_spot, self.kube.is_some()) {
            (false, _) => "on-prem first, then on demand",
            (true, false) => "cost tiers + spot, best fit",
            (true, true) => "cost tiers + spot, kube-scheduler scoring",
        }
    }

    fn filter(&self) -> Option<Arc<dyn NodeFilter>> {
        let use_spot = self.use_spot;
        Some(Arc::new(move |task: &TaskSpec, node: &ClusterNode| {
            let flexible = task.config.get(SLACK_KEY).map(String::as_str) == Some(FLEXIBLE);
            if Self::pool(node) == Some("spot") && !(use_spot && flexible) {
                return Err(Misfit::Policy("spot VMs only for flexible tasks".into()));
            }
            Ok(())
        }))
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        nodes
            .iter()
            .min_by_key(|node| {
                let tier = match Self::pool(node) {
                    Some("owned") => 0,
                    Some("spot") => 1,
                    _ => 2,
                };
                let rank = match self.kube {
                    Some(kube) => -kube.score(nodes.task(), node),
                    None => (nodes.leftover_share(node) * 1e6) as i64,
                };
                (tier, rank)
            })
            .map(|node| Placement::on(node.id()))
    }
}
