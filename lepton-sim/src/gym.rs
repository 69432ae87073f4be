//! A gym-style environment over the fill experiment, for learning policies.
//!
//! `reset(seed)` starts an episode and returns the first decision to make;
//! `step(action)` places the task on the candidate the action names and
//! returns the reward and the next decision. Each decision is an
//! [`Observation`]: the task and up to `max_candidates` candidate nodes, each
//! with one fixed-width feature row (see [`lepton_core::CandidateBuilder`],
//! which also prunes the candidates; the learned policy builds its
//! observations with the same code). Actions index the candidates;
//! [`Observation::mask`] marks the valid ones over the padded width, and an
//! action outside them is an [`Error::InfeasibleAction`], never a silent skip.
//!
//! An episode is one run of [`run_fill`](crate::run_fill)'s experiment,
//! driven through the real scheduler: every placement is the scheduler's
//! own, re-checked by it. A task with no candidate is dropped without a
//! decision, as in the experiment. The episode ends at the arrival where the
//! GPU request reaches 100% of capacity — the moment the paper's metric is
//! read — so its return is what that metric measures.
//!
//! # Rewards ([`Reward`])
//! - `gpus`: the GPUs the step placed (its return is the allocation the
//!   metric reads, in GPUs);
//! - `frag`: minus the growth of fragmentation the step caused, in GPUs;
//! - `seed`: the article's: +1 for each task placed, −1 for each dropped
//!   (in fill mode a dropped task is the failure).
//!
//! [`Summary`] gives the episode's allocation and fragmentation %, the
//! dropped tasks and the article's utility U(S, T, P)
//! ([`seed_utility`](lepton_core::seed_utility)) with S = nodes in use,
//! T = tasks placed, α = the cluster's nodes and β = the tasks arrived.

use std::sync::{Arc, Mutex};

use lepton_core::{
    seed_utility, Candidate, CandidateBuilder, ClusterState, NodeSpec, Placement, Policy,
    Scheduler, TargetWorkload, TaskSpec,
};
use serde::Serialize;

use crate::fill::{FillConfig, FillRun};
use crate::Error;

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
}

impl Reward {
    /// Parses `gpus`, `frag` or `seed`.
    ///
    /// # Errors
    /// [`Error::UnknownReward`] naming the text.
    pub fn parse(text: &str) -> Result<Reward, Error> {
        match text {
            "gpus" => Ok(Reward::Gpus),
            "frag" => Ok(Reward::Frag),
            "seed" => Ok(Reward::Seed),
            _ => Err(Error::UnknownReward {
                name: text.to_owned(),
            }),
        }
    }
}

/// Settings of an environment.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct EnvConfig {
    /// The reward.
    pub reward: Reward,
    /// At most this many candidates per decision (the rest are pruned; see
    /// [`lepton_core::CandidateBuilder`]).
    pub max_candidates: usize,
    /// The fill experiment's inflation (see [`FillConfig::tune`]).
    pub tune: f64,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            reward: Reward::Gpus,
            max_candidates: 64,
            tune: FillConfig::default().tune,
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
    /// The reward for the step (and the drops that followed it).
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
    /// Tasks dropped (no candidate) after it, before the next decision.
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
    /// Tasks dropped (fill mode's deadline misses: they never run).
    pub tasks_dropped: usize,
    /// The article's utility U(S, T, P); see the [module docs](self).
    pub utility: f64,
}

/// The fill experiment as an environment.
pub struct FillEnv {
    nodes: Vec<NodeSpec>,
    tasks: Vec<TaskSpec>,
    workload: Arc<TargetWorkload>,
    config: EnvConfig,
    /// The placement the scheduler's policy hands back at the next cycle.
    choice: Arc<Mutex<Option<Placement>>>,
    builder: CandidateBuilder,
    run: Option<FillRun>,
    /// The decision waiting for an action.
    pending: Option<Observation>,
}

impl std::fmt::Debug for FillEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillEnv")
            .field("nodes", &self.nodes.len())
            .field("tasks", &self.tasks.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The policy inside the environment's scheduler: it places where the
/// last action said, once.
struct ActionPolicy {
    choice: Arc<Mutex<Option<Placement>>>,
}

impl Policy for ActionPolicy {
    fn name(&self) -> &str {
        "gym"
    }

    fn select(&mut self, _task: &TaskSpec, _cluster: &ClusterState) -> Option<Placement> {
        lock(&self.choice).take()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding it cannot leave an Option half-written.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FillEnv {
    /// An environment over `nodes` and the trace's `tasks`, with FGD's
    /// target `workload` (for the fragmentation features and reward).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] when `max_candidates` is 0 or `tune` is not a
    /// finite number above 0.
    pub fn new(
        nodes: Vec<NodeSpec>,
        tasks: Vec<TaskSpec>,
        workload: Arc<TargetWorkload>,
        config: EnvConfig,
    ) -> Result<FillEnv, Error> {
        if config.max_candidates == 0 {
            return Err(Error::OutOfRange {
                name: "max_candidates",
                value: 0.0,
                expected: "at least 1",
            });
        }
        if !config.tune.is_finite() || config.tune <= 0.0 {
            return Err(Error::OutOfRange {
                name: "tune",
                value: config.tune,
                expected: "a finite number above 0",
            });
        }
        Ok(FillEnv {
            nodes,
            tasks,
            workload,
            config,
            choice: Arc::new(Mutex::new(None)),
            builder: CandidateBuilder::new(),
            run: None,
            pending: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &EnvConfig {
        &self.config
    }

    /// Starts an episode with `seed` (as [`run_fill`](crate::run_fill)'s
    /// seed: it shuffles tasks and nodes and draws the clones). Returns the
    /// first decision, or `None` when no task of the episode can be placed.
    ///
    /// # Errors
    /// As [`run_fill`](crate::run_fill): a cluster without GPUs, duplicate
    /// ids, malformed specs.
    pub fn reset(&mut self, seed: u64) -> Result<Option<Observation>, Error> {
        let fill = FillConfig {
            seed,
            tune: self.config.tune,
        };
        let policy = ActionPolicy {
            choice: Arc::clone(&self.choice),
        };
        self.run = Some(FillRun::new(&self.nodes, &self.tasks, Box::new(policy), &fill)?);
        self.builder.clear();
        let (observation, _) = self.advance()?;
        Ok(observation)
    }

    /// Places the pending task on candidate `action`.
    ///
    /// # Errors
    /// [`Error::NoEpisode`] before [`reset`](Self::reset) or after the end;
    /// [`Error::InfeasibleAction`] when `action` names no candidate (or the
    /// scheduler refuses it); scheduler errors.
    pub fn step(&mut self, action: usize) -> Result<Step, Error> {
        let Some(observation) = self.pending.take() else {
            return Err(Error::NoEpisode);
        };
        let Some(candidate) = observation.candidates.get(action) else {
            let candidates = observation.candidates.len();
            self.pending = Some(observation);
            return Err(Error::InfeasibleAction { action, candidates });
        };
        let run = self.run.as_mut().ok_or(Error::NoEpisode)?;
        *lock(&self.choice) = Some(candidate.placement.clone());
        if !run.arrive(&self.workload)? {
            return Err(Error::InfeasibleAction {
                action,
                candidates: observation.candidates.len(),
            });
        }
        let reward = match self.config.reward {
            Reward::Gpus => observation.task.gpu.total_milli() as f64 / 1000.0,
            Reward::Frag => -candidate.growth.milli / 1000.0,
            Reward::Seed => 1.0,
        };
        let placement = candidate.placement.clone();
        let (next, dropped) = self.advance()?;
        let penalty = match self.config.reward {
            Reward::Seed => dropped as f64,
            Reward::Gpus | Reward::Frag => 0.0,
        };
        Ok(Step {
            done: next.is_none(),
            observation: next,
            reward: reward - penalty,
            info: StepInfo { placement, dropped },
        })
    }

    /// Drops tasks without candidates until one has some (the next
    /// decision, also kept as pending) or the episode ends.
    fn advance(&mut self) -> Result<(Option<Observation>, usize), Error> {
        let run = self.run.as_mut().ok_or(Error::NoEpisode)?;
        let mut dropped = 0;
        let mut candidates = Vec::new();
        while !run.reached_100() {
            let Some(task) = run.next_task() else {
                break;
            };
            let cluster = run.scheduler().cluster();
            let limit = self.config.max_candidates;
            self.builder
                .build(&self.workload, task, cluster, limit, &mut candidates);
            if !candidates.is_empty() {
                let observation = Observation {
                    task: task.clone(),
                    candidates,
                };
                self.pending = Some(observation.clone());
                return Ok((Some(observation), dropped));
            }
            run.arrive(&self.workload)?;
            dropped += 1;
        }
        Ok((None, dropped))
    }

    /// The episode's figures so far.
    ///
    /// # Errors
    /// [`Error::NoEpisode`] before the first [`reset`](Self::reset).
    pub fn summary(&self) -> Result<Summary, Error> {
        let run = self.run.as_ref().ok_or(Error::NoEpisode)?;
        let (arrived, placed) = run.counts();
        let capacity = run.capacity() as f64;
        let scheduler = run.scheduler();
        let frag: f64 = scheduler
            .cluster()
            .nodes()
            .iter()
            .map(|node| self.workload.node_fragment_milli(node))
            .sum();
        let report = scheduler.report();
        let nodes = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let utility = seed_utility(
            to_u32(report.nodes_in_use).max(1),
            to_u32(placed).max(1),
            f64::from(nodes.max(1)),
            arrived.max(1) as f64,
        )?;
        Ok(Summary {
            alloc_pct: run.allocated_milli() as f64 * 100.0 / capacity,
            frag_pct: frag * 100.0 / capacity,
            tasks_arrived: arrived,
            tasks_placed: placed,
            tasks_dropped: arrived - placed,
            utility,
        })
    }

    /// A one-line summary for people.
    ///
    /// # Errors
    /// As [`summary`](Self::summary).
    pub fn render(&self) -> Result<String, Error> {
        let s = self.summary()?;
        Ok(format!(
            "alloc {:.2}% frag {:.2}% placed {}/{} dropped {} utility {:.4}",
            s.alloc_pct, s.frag_pct, s.tasks_placed, s.tasks_arrived, s.tasks_dropped, s.utility
        ))
    }
}
