//! Gym-style environments over the simulator, for learning policies:
//! [`FillEnv`] over the fill experiment, [`TimedEnv`] over the timed replay,
//! [`FleetEnv`] over the scenarios' fleets (data center, DLRM trace, hybrid
//! cloud), [`EdgeEnv`] over the edge scenario.
//!
//! `reset(seed)` starts an episode and returns the first decision to make;
//! `step(action)` places the task on the candidate the action names and
//! returns the reward and the next decision. Each decision is an
//! [`Observation`]: the task and up to `max_candidates` candidate nodes, each
//! with one fixed-width feature row (see [`lepton_policies::CandidateBuilder`],
//! which also prunes the candidates; the learned policy builds its
//! observations with the same code). Actions index the candidates;
//! [`Observation::mask`] marks the valid ones over the padded width, and an
//! action outside them is an [`Error::InfeasibleAction`], never a silent skip.
//!
//! # Fill mode ([`FillEnv`])
//! An episode is one run of [`run_fill`](crate::run_fill)'s experiment,
//! driven through the real scheduler: every placement is the scheduler's
//! own, re-checked by it. A task with no candidate is dropped without a
//! decision, as in the experiment. The episode ends at the arrival where the
//! GPU request reaches 100% of capacity — the moment the paper's metric is
//! read — so its return is what that metric measures.
//!
//! # Timed mode ([`TimedEnv`])
//! An episode is one [`run_timed`](crate::run_timed) replay: tasks arrive
//! and complete in virtual time, wait when nothing fits (no decision is
//! asked then), and a run that outlives its task's `timeout_ms` is ended by
//! the scheduler and retried within [`TimedConfig::retry`](crate::TimedConfig::retry). The replay runs
//! unchanged on a thread of its own; its policy hands each decision to the
//! environment and waits for the action.
//!
//! # Fleet mode ([`FleetEnv`])
//! An episode is one run of a scenario's fleet
//! ([`run_datacenter`](crate::scenario::run_datacenter)) with Lepton's
//! strategy — autoscaling, spare capacity, spot VMs — but each placement
//! the agent's; it runs on a thread of its own like the timed replay.
//!
//! # Edge mode ([`EdgeEnv`])
//! An episode is one replay of the edge scenario
//! ([`run_edge`](crate::scenario::run_edge)): each decision is where a task
//! from an edge site's user runs, one candidate per site (the site's best
//! fit, the cloud counting as one), each row with edge columns beside it
//! ([`Observation::edge`]: latency over the task's objective, whether it
//! meets it, cloud or edge, the task's class, the site's free CPU).
//!
//! # Rewards ([`Reward`])
//! - `gpus`: the change in GPUs allocated since the previous decision (in
//!   fill mode: the GPUs the step placed, so the return is the allocation
//!   the metric reads);
//! - `frag`: minus the change in the cluster's fragmentation, in GPUs;
//! - `seed`: the article's: +1 when a task completes, −1 when it times out
//!   or fails (timed, fleet and edge modes); in fill mode, where tasks never end, +1 for each
//!   task placed and −1 for each dropped;
//! - `cost` (fleet and edge modes): at the end, minus the run's cost in USD
//!   and [`EnvConfig::slo_penalty_usd`] per late start or avoidable
//!   deadline miss (edge: per task run farther than its latency objective).
//!   Edge mode pays `seed` or `cost` only: it has no GPUs.
//!
//! [`Summary`] gives the episode's allocation and fragmentation %, the
//! deadline misses (fill: tasks dropped; timed: runs that timed out or
//! failed) and the article's utility U(S, T, P)
//! ([`article_utility`](lepton_core::article::article_utility)) with S = nodes in use,
//! T = tasks placed, α = the cluster's nodes and β = the tasks arrived
//! (timed mode: submitted).

mod edge;
mod fill;
mod fleet;
mod handoff;
mod timed;

use lepton_core::{Placement, TaskSpec};
use lepton_policies::Candidate;
use serde::Serialize;

use crate::fill::FillConfig;
use crate::Error;

pub use edge::{EdgeEnv, EDGE_FEATURES, EDGE_FEATURE_BOUNDS, EDGE_FEATURE_NAMES};
pub use fill::FillEnv;
pub use fleet::FleetEnv;
pub use handoff::receive;
pub use timed::TimedEnv;

/// The reward an environment pays; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Reward {
    /// GPUs placed by the step.
    Gpus,
    /// Minus the fragmentation growth of the step, in GPUs.
    Frag,
    /// The article's: +1 per task placed, −1 per task dropped.
    Seed,
    /// Minus the run's cost and a penalty per SLO violation, at the end
    /// (the scenarios only: [`FleetEnv`], [`EdgeEnv`]).
    Cost,
}

impl Reward {
    /// The reward's name, as [`parse`](Self::parse) reads it.
    pub fn name(self) -> &'static str {
        match self {
            Reward::Gpus => "gpus",
            Reward::Frag => "frag",
            Reward::Seed => "seed",
            Reward::Cost => "cost",
        }
    }

    /// Parses `gpus`, `frag`, `seed` or `cost`.
    ///
    /// # Errors
    /// [`Error::UnknownReward`] naming the text.
    pub fn parse(text: &str) -> Result<Reward, Error> {
        match text {
            "gpus" => Ok(Reward::Gpus),
            "frag" => Ok(Reward::Frag),
            "seed" => Ok(Reward::Seed),
            "cost" => Ok(Reward::Cost),
            _ => Err(Error::UnknownReward {
                name: text.to_owned(),
            }),
        }
    }
}

/// Locks `mutex`; a panic while it was held cannot leave the values the
/// environments share (an `Option`, counters) half-written.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The utility of the article, U(S, T, P), for an episode; see the
/// [module docs](self).
fn utility(nodes_in_use: usize, placed: usize, nodes: usize, arrived: usize) -> Result<f64, Error> {
    let count = |n: usize| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    Ok(lepton_core::article::article_utility(
        count(nodes_in_use),
        count(placed),
        f64::from(count(nodes)),
        f64::from(count(arrived)),
    )?)
}

/// `config` checked for an environment of `mode` (`fill`, `timed`,
/// `fleet`, `edge`): at least one candidate, a reward the mode pays (cost
/// only where there is a bill, GPUs only where there are GPUs), a penalty
/// that is a finite amount.
fn check(config: &EnvConfig, mode: &'static str) -> Result<(), Error> {
    if config.max_candidates == 0 {
        return Err(Error::OutOfRange {
            name: "max_candidates",
            value: 0.0,
            expected: "at least 1",
        });
    }
    let pays: &[Reward] = match mode {
        "fleet" => &[Reward::Gpus, Reward::Frag, Reward::Seed, Reward::Cost],
        "edge" => &[Reward::Seed, Reward::Cost],
        _ => &[Reward::Gpus, Reward::Frag, Reward::Seed],
    };
    if !pays.contains(&config.reward) {
        return Err(Error::RewardNotPaid {
            reward: config.reward.name(),
            mode,
            pays: pays
                .iter()
                .map(|reward| reward.name())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if !(config.slo_penalty_usd.is_finite() && config.slo_penalty_usd >= 0.0) {
        return Err(Error::OutOfRange {
            name: "slo_penalty_usd",
            value: config.slo_penalty_usd,
            expected: "a finite amount of 0 or more",
        });
    }
    Ok(())
}

/// Settings of an environment.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct EnvConfig {
    /// The reward.
    pub reward: Reward,
    /// At most this many candidates per decision (the rest are pruned; see
    /// [`lepton_policies::CandidateBuilder`]).
    pub max_candidates: usize,
    /// The fill experiment's inflation (see [`FillConfig::tune`]).
    pub tune: f64,
    /// The [`Reward::Cost`] penalty per SLO violation, in USD.
    pub slo_penalty_usd: f64,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            reward: Reward::Gpus,
            max_candidates: 64,
            tune: FillConfig::default().tune,
            slo_penalty_usd: 1.0,
        }
    }
}

/// One decision: the task and its candidates.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The task to place.
    pub task: TaskSpec,
    /// Where it may go, in cluster order (never empty).
    pub candidates: Vec<Candidate>,
    /// Edge mode only ([`EdgeEnv`]): each candidate's latency and site
    /// columns ([`EDGE_FEATURE_NAMES`]), in the candidates' order; empty in
    /// the other modes.
    pub edge: Vec<[f32; EDGE_FEATURES]>,
}

impl Observation {
    /// For each of `width` action slots, whether it names a candidate.
    pub fn mask(&self, width: usize) -> Vec<bool> {
        (0..width).map(|i| i < self.candidates.len()).collect()
    }
}

/// What a step returns.
#[derive(Debug, Clone)]
pub struct Step {
    /// The next decision; `None` when the episode is over.
    pub observation: Option<Observation>,
    /// The reward for the step and what happened until the next decision.
    pub reward: f64,
    /// Whether the episode is over.
    pub done: bool,
    /// Details of the step.
    pub info: StepInfo,
}

/// Details of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInfo {
    /// Where the task went.
    pub placement: Placement,
    /// Fill mode: tasks dropped (no candidate) after it, before the next
    /// decision; 0 in timed mode.
    pub dropped: usize,
}

/// Figures of an episode so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// GPU allocation, % of capacity.
    pub alloc_pct: f64,
    /// Fragmentation against the target workload, % of GPU capacity.
    pub frag_pct: f64,
    /// Tasks arrived.
    pub tasks_arrived: usize,
    /// Tasks placed.
    pub tasks_placed: usize,
    /// Tasks dropped (fill mode only: they never run).
    pub tasks_dropped: usize,
    /// Deadline misses: tasks dropped (fill), runs that timed out or failed
    /// (timed).
    pub deadline_misses: usize,
    /// The article's utility U(S, T, P); see the [module docs](self).
    pub utility: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "alloc {:.2}% frag {:.2}% placed {}/{} deadline misses {} utility {:.4}",
            self.alloc_pct,
            self.frag_pct,
            self.tasks_placed,
            self.tasks_arrived,
            self.deadline_misses,
            self.utility
        )
    }
}
