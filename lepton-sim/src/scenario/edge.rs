//! The edge scenario: small edge sites close to their users and a central
//! cloud far away; each task comes from one site and has a latency
//! objective. Replayed in virtual time by [`run_timed`](crate::run_timed)
//! with the real scheduler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::quantile;
use crate::timed::{run_timed, TimedConfig, TimedTask};
use crate::Error;
use lepton_core::clock::Timestamp;
use lepton_core::cluster::{ClusterNode, NodeFilter};
use lepton_core::fragmentation::TargetWorkload;
use lepton_core::policy::{Feedback, Outcome};
use lepton_core::rng::SeededRng;
use lepton_core::{
    ClusterState, FeasibleNodes, NodeId, NodeSpec, Placement, Policy, Resources, TaskId, TaskSpec,
};
use lepton_policies::DemandForecast;

/// Round-trip latency from a user to the edge site it is at, ms.
pub const SAME_SITE_MS: u32 = 2;
/// Latency to another edge site: this plus [`PER_HOP_MS`] per hop around
/// the ring of sites, ms.
pub const OTHER_SITE_BASE_MS: u32 = 10;
/// Added per hop between edge sites, ms.
pub const PER_HOP_MS: u32 = 5;
/// Latency from any edge site to the cloud, ms.
pub const CLOUD_MS: u32 = 80;

/// Latency objective of interactive tasks, ms.
pub const INTERACTIVE_OBJECTIVE_MS: u32 = 20;
/// Latency objective of batch tasks, ms.
pub const BATCH_OBJECTIVE_MS: u32 = 150;

/// Settings of the edge scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EdgeConfig {
    /// Seeds the tasks.
    pub seed: u64,
    /// Edge sites, on a ring.
    pub sites: usize,
    /// Nodes per edge site (8 vCPUs, 32 GiB each).
    pub nodes_per_site: usize,
    /// Cloud nodes (16 vCPUs, 64 GiB each).
    pub cloud_nodes: usize,
    /// Tasks over `hours`.
    pub tasks: usize,
    /// Hours of arrivals.
    pub hours: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            seed: 1,
            sites: 8,
            nodes_per_site: 4,
            cloud_nodes: 100,
            tasks: 20_000,
            hours: 24,
        }
    }
}

impl EdgeConfig {
    /// Checks every value is in range.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the setting.
    pub fn validate(&self) -> Result<(), Error> {
        let bounds: [(&'static str, usize, usize, usize, &'static str); 5] = [
            ("sites", self.sites, 2, 1_000, "2 to 1,000 sites"),
            (
                "nodes_per_site",
                self.nodes_per_site,
                1,
                1_000,
                "1 to 1,000 nodes",
            ),
            (
                "cloud_nodes",
                self.cloud_nodes,
                1,
                100_000,
                "1 to 100,000 nodes",
            ),
            ("tasks", self.tasks, 1, 2_000_000, "1 to 2,000,000 tasks"),
            ("hours", self.hours as usize, 1, 720, "1 to 720 hours"),
        ];
        for (name, value, low, high, expected) in bounds {
            if !(low..=high).contains(&value) {
                return Err(Error::OutOfRange {
                    name,
                    value: value as f64,
                    expected,
                });
            }
        }
        Ok(())
    }
}

/// Where a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Site {
    /// Edge site number.
    Edge(usize),
    /// The central cloud.
    Cloud,
}

/// A task of the edge scenario: where its user is and its objective.
#[derive(Debug, Clone)]
pub struct EdgeTask {
    /// The task, arrival and duration.
    pub timed: TimedTask,
    /// The edge site its user is at.
    pub origin: usize,
    /// Its latency objective, ms.
    pub objective_ms: u32,
}

/// The scenario's sites, nodes and tasks, generated once per seed.
#[derive(Debug, Clone)]
pub struct EdgeWorld {
    /// The settings.
    pub config: EdgeConfig,
    /// Every node with its site.
    pub nodes: Vec<(NodeSpec, Site)>,
    /// The tasks, by arrival.
    pub tasks: Vec<EdgeTask>,
}

impl EdgeWorld {
    /// Generates the sites and tasks of `config`: every site's users are
    /// busiest at its own afternoon (the sites' clocks are spread around
    /// the day); 60 % of tasks are interactive (1–2 vCPUs, 1–10 minutes,
    /// objective 20 ms), 40 % batch (2–4 vCPUs, 10–60 minutes, 150 ms).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for a setting out of range.
    pub fn generate(config: &EdgeConfig) -> Result<EdgeWorld, Error> {
        config.validate()?;
        let mut nodes = Vec::new();
        for site in 0..config.sites {
            for n in 0..config.nodes_per_site {
                let id = NodeId(nodes.len() as u64);
                let spec = NodeSpec::new(id, Resources::new(8_000, 32_768))
                    .with_name(format!("edge-{site}-{n}"))
                    .with_label("site", format!("edge-{site}"));
                nodes.push((spec, Site::Edge(site)));
            }
        }
        for n in 0..config.cloud_nodes {
            let id = NodeId(nodes.len() as u64);
            let spec = NodeSpec::new(id, Resources::new(16_000, 65_536))
                .with_name(format!("cloud-{n}"))
                .with_label("site", "cloud");
            nodes.push((spec, Site::Cloud));
        }
        let mut rng = SeededRng::new(config.seed);
        let seconds = config.hours * 3_600;
        let mut tasks = Vec::with_capacity(config.tasks);
        while tasks.len() < config.tasks {
            let origin = rng.index(config.sites);
            let arrival_s = rng.below(seconds);
            // Each site's afternoon peak, spread around the day.
            let phase = 24.0 * origin as f64 / config.sites as f64;
            let hour = arrival_s as f64 / 3_600.0;
            let rate = 1.0 + 0.8 * (2.0 * std::f64::consts::PI * (hour - 9.0 - phase) / 24.0).sin();
            if rng.uniform() * 1.8 >= rate {
                continue;
            }
            let id = TaskId(tasks.len() as u64);
            let interactive = rng.uniform() < 0.6;
            let (spec, duration_s, objective_ms) = if interactive {
                let cpus = 1 + rng.below(2);
                let spec = TaskSpec::new(id, Resources::new(cpus * 1_000, 2_048));
                (spec, 60 + rng.below(9 * 60 + 1), INTERACTIVE_OBJECTIVE_MS)
            } else {
                let cpus = 2 + rng.below(3);
                let spec = TaskSpec::new(id, Resources::new(cpus * 1_000, cpus * 2_048));
                (spec, 600 + rng.below(50 * 60 + 1), BATCH_OBJECTIVE_MS)
            };
            let spec = spec.with_config("origin", origin.to_string());
            tasks.push(EdgeTask {
                timed: TimedTask::new(spec, arrival_s, Some(duration_s)),
                origin,
                objective_ms,
            });
        }
        tasks.sort_by_key(|t| t.timed.arrival_s);
        for (index, task) in tasks.iter_mut().enumerate() {
            task.timed.spec.id = TaskId(index as u64);
        }
        Ok(EdgeWorld {
            config: *config,
            nodes,
            tasks,
        })
    }

    /// The latency from edge site `origin` to `site`, ms.
    pub fn latency_ms(&self, origin: usize, site: Site) -> u32 {
        latency_ms(self.config.sites, origin, site)
    }

    /// Each node's site, in node order.
    pub fn sites(&self) -> Vec<Site> {
        self.nodes.iter().map(|(_, site)| *site).collect()
    }

    /// Each task's origin and objective (ms), by task id.
    pub fn origins(&self) -> Vec<(usize, u32)> {
        self.tasks
            .iter()
            .map(|t| (t.origin, t.objective_ms))
            .collect()
    }
}

/// The latency from edge site `origin` to `site` on a ring of `sites`, ms.
pub(crate) fn latency_ms(sites: usize, origin: usize, site: Site) -> u32 {
    match site {
        Site::Cloud => CLOUD_MS,
        Site::Edge(site) if site == origin => SAME_SITE_MS,
        Site::Edge(site) => {
            let apart = origin.abs_diff(site);
            let hops = apart.min(sites - apart) as u32;
            OTHER_SITE_BASE_MS + PER_HOP_MS * hops
        }
    }
}

/// What a vCPU-hour in the cloud costs, USD: m5.2xlarge's on-demand list
/// price (0.384 USD an hour, 2024, us-east-1) over its 8 vCPUs.
pub const CLOUD_USD_PER_VCPU_HOUR: f64 = 0.048;

/// How a strategy places edge tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EdgeStrategy {
    /// The user's own site if it has room, else the nearest edge site with
    /// room, else the cloud.
    NearestSite,
    /// Everything in the cloud.
    CloudOnly,
    /// What an operator sets by task class: interactive tasks on their
    /// own site, else the nearest edge site within their objective; batch
    /// tasks in the cloud; otherwise the nearest node with room (node
    /// affinity by site label and class, first fit inside a site).
    ClassAware,
    /// Lepton: interactive tasks at the nearest site that meets their
    /// objective, best fit inside it; batch work on an owned edge site
    /// while the site's forecast interactive demand leaves room for it
    /// ([`EDGE_RESERVE`]), else in the cloud; when no node meeting the
    /// objective has room, the nearest with room.
    Lepton,
}

impl EdgeStrategy {
    /// The name reported.
    pub fn name(self) -> &'static str {
        match self {
            EdgeStrategy::NearestSite => "nearest-site",
            EdgeStrategy::CloudOnly => "cloud-only",
            EdgeStrategy::ClassAware => "class-aware",
            EdgeStrategy::Lepton => "lepton",
        }
    }
}

/// What one strategy measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeReport {
    /// The strategy.
    #[serde(rename = "name")]
    pub policy: String,
    /// 95th percentile of the network latency from each task's user to
    /// where it ran, ms.
    pub p95_latency_ms: f64,
    /// The same over interactive tasks only, ms.
    pub p95_interactive_latency_ms: f64,
    /// Mean latency, ms.
    pub mean_latency_ms: f64,
    /// Tasks that ran farther than their objective.
    pub objective_violations: usize,
    /// Coefficient of variation of the edge sites' CPU utilization over the
    /// day (lower is more even), %; `None` when no task ran at the edge.
    pub site_load_cv_pct: Option<f64>,
    /// CPU utilization of each edge site over the day, %.
    pub site_utilization_pct: Vec<f64>,
    /// What the cloud charged: CPU-hours run there ×
    /// [`CLOUD_USD_PER_VCPU_HOUR`] (edge sites are owned), USD.
    #[serde(rename = "cost_usd")]
    pub cost: f64,
    /// Mean wait before starting, seconds.
    pub mean_wait_s: f64,
    /// Tasks that completed.
    pub completed: usize,
    /// Tasks that never ran or did not complete.
    pub lost: usize,
    /// Every task's latency, ms, sorted (for distributions).
    #[serde(skip)]
    pub latencies_ms: Vec<f64>,
}

/// How much of an edge site's forecast interactive need Lepton keeps
/// free of batch work: its batch work on a site may use the site's CPU
/// less this factor times the interactive CPU the site is expected to
/// hold (the forecast arrival rate of interactive CPU times how long
/// interactive tasks run, both learned online; Little's law). Tuned on
/// seeds 101–103 (`cargo run --release --example tune_edge`).
pub const EDGE_RESERVE: f64 = 2.5;

/// The demand forecast's bucket at the edge: ten minutes.
const EDGE_BUCKET_S: u64 = 600;

/// The policy of a strategy, recording where each task was placed.
struct EdgePolicy {
    strategy: EdgeStrategy,
    /// Per node position: its site.
    sites: Vec<Site>,
    origins: Arc<Vec<(usize, u32)>>,
    /// Edge sites on the ring (for latencies).
    ring: usize,
    /// Lepton's: what it learns as tasks arrive and end.
    learning: Option<EdgeLearning>,
}

/// What Lepton learns at the edge from what a scheduler sees — tasks as
/// it places them, runs as they end, the clock — never a task's duration
/// or arrivals to come.
struct EdgeLearning {
    reserve: f64,
    now_s: u64,
    /// Per edge site: interactive CPU (milli) placed per second, learned.
    demand: Vec<DemandForecast>,
    /// Interactive runs completed: total seconds and count.
    interactive_s: (f64, u64),
    /// Per edge site: its CPU, and the CPU of the batch runs Lepton put
    /// there that have not ended, milli.
    capacity_milli: Vec<u64>,
    batch_milli: Vec<u64>,
    /// Runs placed and not yet ended: their edge site (if any), CPU and
    /// whether interactive.
    running: HashMap<TaskId, (Option<usize>, u64, bool)>,
}

impl EdgeLearning {
    fn new(world: &EdgeWorld, reserve: f64) -> Self {
        let mut capacity_milli = vec![0; world.config.sites];
        for (node, site) in &world.nodes {
            if let Site::Edge(edge) = site {
                capacity_milli[*edge] += node.capacity.cpu_milli;
            }
        }
        EdgeLearning {
            reserve,
            now_s: 0,
            demand: vec![DemandForecast::new(EDGE_BUCKET_S); world.config.sites],
            interactive_s: (0.0, 0),
            batch_milli: vec![0; world.config.sites],
            capacity_milli,
            running: HashMap::new(),
        }
    }

    /// Whether batch work of `cpu_milli` more fits on `edge` beside the
    /// interactive CPU the site is expected to hold; never before an
    /// interactive run has ended and a bucket of demand has been seen.
    fn batch_fits(&mut self, edge: usize, cpu_milli: u64) -> bool {
        let (total_s, runs) = self.interactive_s;
        let rate = self.demand[edge].rate_per_s(self.now_s);
        if runs == 0 || rate == 0.0 {
            return false;
        }
        let need = self.reserve * rate * total_s / runs as f64;
        let room = self.capacity_milli[edge] as f64 - need;
        (self.batch_milli[edge] + cpu_milli) as f64 <= room
    }

    /// A run of a task from `origin` placed at `site`: interactive demand
    /// counts at the site its user is at.
    fn placed(&mut self, task: &TaskSpec, origin: usize, site: Site, interactive: bool) {
        let edge = match site {
            Site::Edge(edge) => Some(edge),
            Site::Cloud => None,
        };
        let cpu = task.request.cpu_milli;
        if self
            .running
            .insert(task.id, (edge, cpu, interactive))
            .is_some()
        {
            return;
        }
        match (edge, interactive) {
            (Some(edge), false) => self.batch_milli[edge] += cpu,
            (_, true) => {
                if let Some(demand) = self.demand.get_mut(origin) {
                    demand.observe(self.now_s, cpu as f64);
                }
            }
            (None, false) => {}
        }
    }

    fn ended(&mut self, feedback: &Feedback<'_>) {
        let Some((edge, cpu, interactive)) = self.running.remove(&feedback.task.id) else {
            return;
        };
        if let (Some(edge), false) = (edge, interactive) {
            self.batch_milli[edge] = self.batch_milli[edge].saturating_sub(cpu);
        }
        if interactive && feedback.outcome == Outcome::Completed {
            self.interactive_s.0 += feedback.ran_s();
            self.interactive_s.1 += 1;
        }
    }
}

/// How Lepton ranks a node, least first: misses the objective, tier (batch
/// work: an edge site with room by the forecast, the cloud, another
/// site), latency, what is left after placing (best fit).
type LeptonKey = (bool, u8, u32, u64);

impl EdgePolicy {
    /// Lepton's choice: see [`EdgeStrategy::Lepton`].
    fn lepton<'a>(
        &mut self,
        nodes: &FeasibleNodes<'a>,
        origin: usize,
        objective: u32,
    ) -> Option<&'a ClusterNode> {
        let task = nodes.task();
        let interactive = objective == INTERACTIVE_OBJECTIVE_MS;
        let ring = self.ring;
        let learning = self.learning.as_mut()?;
        let mut admitted = vec![None; learning.capacity_milli.len()];
        let mut best: Option<(LeptonKey, Site, &ClusterNode)> = None;
        for (position, node) in nodes.with_positions() {
            let Some(&site) = self.sites.get(position) else {
                continue;
            };
            let latency = latency_ms(ring, origin, site);
            let meets = latency <= objective;
            // Batch work: an edge site whose forecast leaves it room, then
            // the cloud, then any other site.
            let tier = match site {
                _ if interactive => 0,
                Site::Edge(edge) => {
                    let fits = *admitted[edge]
                        .get_or_insert_with(|| learning.batch_fits(edge, task.request.cpu_milli));
                    if fits {
                        0
                    } else {
                        2
                    }
                }
                Site::Cloud => 1,
            };
            let leftover = (nodes.leftover_share(node) * 1e6) as u64;
            let key = (!meets, tier, latency, leftover);
            if best.as_ref().is_none_or(|(kept, _, _)| key < *kept) {
                best = Some((key, site, node));
            }
        }
        let (_, site, node) = best?;
        learning.placed(task, origin, site, interactive);
        Some(node)
    }
}

impl Policy for EdgePolicy {
    fn name(&self) -> &str {
        self.strategy.name()
    }

    fn begin_cycle(&mut self, _cluster: &ClusterState, now: Timestamp) {
        if let Some(learning) = &mut self.learning {
            learning.now_s = now.as_micros() / 1_000_000;
        }
    }

    fn observe(&mut self, feedback: &Feedback<'_>) {
        if let Some(learning) = &mut self.learning {
            learning.ended(feedback);
        }
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let task = nodes.task();
        let (origin, objective) = *self.origins.get(task.id.0 as usize)?;
        let feasible = nodes
            .with_positions()
            .filter_map(|(position, node)| Some((node, self.sites.get(position)?)));
        let chosen = match self.strategy {
            EdgeStrategy::CloudOnly => feasible
                .filter(|(_, site)| **site == Site::Cloud)
                .map(|(node, _)| node)
                .next(),
            EdgeStrategy::NearestSite => feasible
                .min_by_key(|(_, site)| latency_ms(self.ring, origin, **site))
                .map(|(node, _)| node),
            EdgeStrategy::ClassAware => {
                let interactive = objective == INTERACTIVE_OBJECTIVE_MS;
                let key = |site: Site| {
                    let latency = latency_ms(self.ring, origin, site);
                    let preferred = if interactive {
                        site != Site::Cloud && latency <= objective
                    } else {
                        site == Site::Cloud
                    };
                    (!preferred, latency)
                };
                feasible
                    .min_by_key(|(_, site)| key(**site))
                    .map(|(node, _)| node)
            }
            EdgeStrategy::Lepton => self.lepton(nodes, origin, objective),
        }?;
        Some(Placement::on(chosen.id()))
    }
}

/// A policy whose placements are written down, for the report; the rest
/// is the policy's own.
struct Recorded {
    inner: Box<dyn Policy>,
    placed: Arc<Mutex<HashMap<TaskId, NodeId>>>,
}

impl Policy for Recorded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn filter(&self) -> Option<Arc<dyn NodeFilter>> {
        self.inner.filter()
    }

    fn reseed(&mut self, seed: u64) {
        self.inner.reseed(seed);
    }

    fn begin_cycle(&mut self, cluster: &ClusterState, now: Timestamp) {
        self.inner.begin_cycle(cluster, now);
    }

    fn observe(&mut self, feedback: &Feedback<'_>) {
        self.inner.observe(feedback);
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let placement = self.inner.select(nodes)?;
        if let Ok(mut placed) = self.placed.lock() {
            placed.insert(nodes.task().id, placement.node);
        }
        Some(placement)
    }
}

/// Runs `strategy` on the scenario `world` and measures it.
///
/// # Errors
/// Errors of the timed replay (none are expected for generated workloads).
pub fn run_edge(world: &EdgeWorld, strategy: EdgeStrategy) -> Result<EdgeReport, Error> {
    run_edge_reserving(world, strategy, EDGE_RESERVE)
}

/// [`run_edge`], Lepton keeping `reserve` times each site's forecast
/// interactive need free of batch work (see [`EDGE_RESERVE`]; other
/// strategies ignore it): to tune it.
///
/// # Errors
/// As [`run_edge`].
pub fn run_edge_reserving(
    world: &EdgeWorld,
    strategy: EdgeStrategy,
    reserve: f64,
) -> Result<EdgeReport, Error> {
    let policy = EdgePolicy {
        strategy,
        sites: world.sites(),
        origins: Arc::new(world.origins()),
        ring: world.config.sites,
        learning: (strategy == EdgeStrategy::Lepton).then(|| EdgeLearning::new(world, reserve)),
    };
    run_edge_with(world, strategy.name(), Box::new(policy))
}

/// Runs `policy` on the scenario `world` and measures it, reported as
/// `name`.
///
/// # Errors
/// As [`run_edge`].
pub(crate) fn run_edge_with(
    world: &EdgeWorld,
    name: &str,
    policy: Box<dyn Policy>,
) -> Result<EdgeReport, Error> {
    let placed = Arc::new(Mutex::new(HashMap::new()));
    let policy = Recorded {
        inner: policy,
        placed: Arc::clone(&placed),
    };
    let nodes: Vec<NodeSpec> = world.nodes.iter().map(|(n, _)| n.clone()).collect();
    let tasks: Vec<TimedTask> = world.tasks.iter().map(|t| t.timed.clone()).collect();
    let config = TimedConfig {
        seed: world.config.seed,
        sample_every_s: 3_600,
        ..TimedConfig::default()
    };
    let result = run_timed(
        &nodes,
        &tasks,
        &TargetWorkload::default(),
        Box::new(policy),
        &config,
    )?;
    let placed = placed.lock().map(|p| p.clone()).unwrap_or_default();
    let site_of: HashMap<NodeId, Site> = world.nodes.iter().map(|(n, s)| (n.id, *s)).collect();
    let mut latencies = Vec::new();
    let mut interactive = Vec::new();
    let mut violations = 0;
    let mut busy = vec![0.0f64; world.config.sites];
    let mut cloud_cpu_hours = 0.0;
    for task in &world.tasks {
        let Some(site) = placed.get(&task.timed.spec.id).and_then(|n| site_of.get(n)) else {
            continue;
        };
        let latency = f64::from(world.latency_ms(task.origin, *site));
        latencies.push(latency);
        if task.objective_ms == INTERACTIVE_OBJECTIVE_MS {
            interactive.push(latency);
        }
        if latency > f64::from(task.objective_ms) {
            violations += 1;
        }
        let duration = task.timed.duration_s.unwrap_or(0) as f64;
        let cpu_milli = task.timed.spec.request.cpu_milli as f64;
        match site {
            Site::Edge(edge) => busy[*edge] += cpu_milli * duration,
            Site::Cloud => cloud_cpu_hours += cpu_milli / 1_000.0 * duration / 3_600.0,
        }
    }
    let site_capacity = world.config.nodes_per_site as f64 * 8_000.0 * result.end_s.max(1.0);
    let utilization: Vec<f64> = busy.iter().map(|b| b * 100.0 / site_capacity).collect();
    let mean = utilization.iter().sum::<f64>() / utilization.len() as f64;
    let variance =
        utilization.iter().map(|u| (u - mean).powi(2)).sum::<f64>() / utilization.len() as f64;
    let mean_latency = latencies.iter().sum::<f64>() / latencies.len().max(1) as f64;
    latencies.sort_by(f64::total_cmp);
    interactive.sort_by(f64::total_cmp);
    Ok(EdgeReport {
        policy: name.to_owned(),
        p95_latency_ms: quantile(&latencies, 0.95),
        p95_interactive_latency_ms: quantile(&interactive, 0.95),
        mean_latency_ms: mean_latency,
        objective_violations: violations,
        site_load_cv_pct: (mean > 0.0).then(|| variance.sqrt() * 100.0 / mean),
        site_utilization_pct: utilization,
        cost: cloud_cpu_hours * CLOUD_USD_PER_VCPU_HOUR,
        mean_wait_s: result.mean_wait_s,
        completed: result.tasks_completed,
        lost: world.tasks.len() - result.tasks_completed,
        latencies_ms: latencies,
    })
}
