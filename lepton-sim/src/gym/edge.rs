//! The edge scenario as an environment: the replay of
//! [`run_edge`](crate::scenario::run_edge) runs unchanged on a thread of
//! its own and the agent chooses each task's site ([`Handoff`]).

use std::sync::Arc;

use lepton_core::fragmentation::{Growth, TargetWorkload};
use lepton_core::FeasibleNodes;
use lepton_policies::describe_candidates;

use super::handoff::{Handoff, Shortlist};
use super::{EnvConfig, Observation, Reward, Step, Summary};
use crate::scenario::{
    latency_ms, run_edge_with, EdgeConfig, EdgeReport, EdgeWorld, Site, INTERACTIVE_OBJECTIVE_MS,
};
use crate::Error;

/// Width of a candidate's edge columns ([`Observation::edge`]).
pub const EDGE_FEATURES: usize = 5;

/// The edge columns' names, in order.
pub const EDGE_FEATURE_NAMES: [&str; EDGE_FEATURES] = [
    "latency_over_objective",
    "meets_objective",
    "cloud",
    "interactive",
    "site_cpu_free_after",
];

/// Each edge column's least and greatest value: the latency from the
/// task's user to the candidate's site over the task's objective (clamped
/// to 8), whether it meets the objective, whether the candidate is in the
/// cloud, whether the task is interactive, the free CPU share of the
/// candidate's site (all its nodes) once the task is placed there.
pub const EDGE_FEATURE_BOUNDS: [(f32, f32); EDGE_FEATURES] =
    [(0.0, 8.0), (0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (0.0, 1.0)];

/// The edge scenario as an environment (`lepton demo --scenario edge`):
/// each episode is the replay of one day of tasks from the users of the
/// edge sites, and each decision is where a task runs.
///
/// Candidates: one node per site where the task fits — the site's best
/// fit (least left over; the earliest on ties), the cloud counting as one
/// site — the `max_candidates` nearest to the task's user, in cluster
/// order. Each row is the usual one ([`lepton_policies::CandidateBuilder`])
/// with the edge columns ([`EDGE_FEATURE_NAMES`]) beside it.
///
/// Rewards: [`Reward::Cost`] pays, when the episode ends, minus what the
/// cloud charged (USD; edge sites are owned) and
/// [`EnvConfig::slo_penalty_usd`] per task run farther than its latency
/// objective; [`Reward::Seed`] as in timed mode. There are no GPUs, so
/// `gpus` and `frag` are refused.
pub struct EdgeEnv {
    config: EdgeConfig,
    env: EnvConfig,
    episode: Option<Handoff<EdgeReport>>,
}

impl std::fmt::Debug for EdgeEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeEnv")
            .field("config", &self.config)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

impl EdgeEnv {
    /// The scenario of `config`, each episode's world made with the
    /// episode's seed.
    ///
    /// # Errors
    /// A setting out of range ([`EdgeConfig::validate`], `max_candidates`
    /// 0, a penalty that is no amount); [`Error::RewardNotPaid`] for
    /// `gpus` or `frag`.
    pub fn new(config: EdgeConfig, env: EnvConfig) -> Result<EdgeEnv, Error> {
        super::check(&env, "edge")?;
        config.validate()?;
        Ok(EdgeEnv {
            config,
            env,
            episode: None,
        })
    }

    /// Starts a replay with `seed` (ending the previous one) and returns
    /// the first decision, or `None` when the replay asks for none.
    ///
    /// # Errors
    /// The replay's own errors, when it fails before its first decision.
    pub fn reset(&mut self, seed: u64) -> Result<Option<Observation>, Error> {
        self.episode = None;
        let world = EdgeWorld::generate(&EdgeConfig {
            seed,
            ..self.config
        })?;
        let shortlist = Box::new(EdgeShortlist::new(&world));
        let (reward, penalty) = (self.env.reward, self.env.slo_penalty_usd);
        let episode = Handoff::start(
            Arc::new(TargetWorkload::default()),
            shortlist,
            self.env,
            world.nodes.len(),
            move |policy, _| run_edge_with(&world, "gym", policy),
            move |report: &EdgeReport, tally| {
                if reward == Reward::Cost {
                    tally.reward -= report.cost + penalty * report.objective_violations as f64;
                }
            },
        );
        let (observation, _) = self.episode.insert(episode).next()?;
        Ok(observation)
    }

    /// Places the pending task on candidate `action` and runs to the next
    /// decision.
    ///
    /// # Errors
    /// [`Error::NoEpisode`] with no decision pending;
    /// [`Error::InfeasibleAction`] when `action` names no candidate; the
    /// replay's own errors.
    pub fn step(&mut self, action: usize) -> Result<Step, Error> {
        self.episode.as_mut().ok_or(Error::NoEpisode)?.step(action)
    }

    /// The episode's figures: at the last decision while it runs; once it
    /// ended, tasks completed and runs that failed from the report.
    ///
    /// # Errors
    /// [`Error::NoEpisode`] before the first [`reset`](Self::reset).
    pub fn summary(&self) -> Result<Summary, Error> {
        let episode = self.episode.as_ref().ok_or(Error::NoEpisode)?;
        let last = episode.last();
        Ok(match episode.ended() {
            Some(ended) => Summary {
                tasks_arrived: ended.result.completed + ended.result.lost,
                tasks_placed: ended.result.completed,
                deadline_misses: ended.deadline_misses,
                ..last
            },
            None => last,
        })
    }

    /// The run's report (latencies, objective violations, cost, …), once
    /// the episode ended.
    pub fn report(&self) -> Option<&EdgeReport> {
        Some(&self.episode.as_ref()?.ended()?.result)
    }
}

/// The edge environment's candidates (see [`EdgeEnv`]).
struct EdgeShortlist {
    /// Per node position: its site's slot (edge sites, then the cloud).
    slots: Vec<usize>,
    /// Per slot: its site and its CPU, milli.
    sites: Vec<(Site, u64)>,
    /// Per task id: its user's site and its objective, ms.
    origins: Vec<(usize, u32)>,
    ring: usize,
    /// Scratch, reused: per slot the best fit (leftover share, position)
    /// and the CPU free; the picks.
    best: Vec<Option<(f64, usize)>>,
    free: Vec<u64>,
    picks: Vec<(usize, Growth)>,
}

impl EdgeShortlist {
    fn new(world: &EdgeWorld) -> EdgeShortlist {
        let ring = world.config.sites;
        let slot = |site: Site| match site {
            Site::Edge(edge) => edge,
            Site::Cloud => ring,
        };
        let mut sites: Vec<(Site, u64)> = (0..ring)
            .map(|edge| (Site::Edge(edge), 0))
            .chain([(Site::Cloud, 0)])
            .collect();
        for (node, site) in &world.nodes {
            sites[slot(*site)].1 += node.capacity.cpu_milli;
        }
        EdgeShortlist {
            slots: world.nodes.iter().map(|(_, site)| slot(*site)).collect(),
            best: vec![None; sites.len()],
            free: vec![0; sites.len()],
            sites,
            origins: world.origins(),
            ring,
            picks: Vec::new(),
        }
    }
}

impl Shortlist for EdgeShortlist {
    fn build(&mut self, nodes: &FeasibleNodes<'_>, limit: usize, observation: &mut Observation) {
        let task = nodes.task();
        let Some(&(origin, objective)) = usize::try_from(task.id.0)
            .ok()
            .and_then(|id| self.origins.get(id))
        else {
            return;
        };
        self.best.fill(None);
        self.free.fill(0);
        for (position, node) in nodes.cluster().nodes().iter().enumerate() {
            if let Some(&slot) = self.slots.get(position) {
                self.free[slot] += node.free().cpu_milli;
            }
        }
        for (position, node) in nodes.with_positions() {
            let Some(&slot) = self.slots.get(position) else {
                continue;
            };
            let leftover = nodes.leftover_share(node);
            if self.best[slot].is_none_or(|(kept, _)| leftover < kept) {
                self.best[slot] = Some((leftover, position));
            }
        }
        let latency = |slot: usize| latency_ms(self.ring, origin, self.sites[slot].0);
        let mut slots: Vec<usize> = (0..self.best.len())
            .filter(|&slot| self.best[slot].is_some())
            .collect();
        slots.sort_by_key(|&slot| (latency(slot), slot));
        slots.truncate(limit);
        slots.sort_by_key(|&slot| self.best[slot].map(|(_, position)| position));
        let workload = TargetWorkload::default();
        let cluster = nodes.cluster().nodes();
        self.picks.clear();
        observation.edge.clear();
        for slot in slots {
            let Some((_, position)) = self.best[slot] else {
                continue;
            };
            let Some(node) = cluster.get(position) else {
                continue;
            };
            let growth = workload
                .growth(task, node)
                .unwrap_or(Growth::new(0.0, None));
            self.picks.push((position, growth));
            let (site, capacity) = self.sites[slot];
            let latency = latency(slot) as f32;
            let free_after = self.free[slot].saturating_sub(task.request.cpu_milli);
            observation.edge.push([
                (latency / objective.max(1) as f32).min(8.0),
                f32::from(u8::from(latency <= objective as f32)),
                f32::from(u8::from(site == Site::Cloud)),
                f32::from(u8::from(objective == INTERACTIVE_OBJECTIVE_MS)),
                free_after as f32 / capacity.max(1) as f32,
            ]);
        }
        describe_candidates(nodes, &self.picks, &mut observation.candidates);
    }
}
