//! The fill experiment as an environment.

use std::sync::{Arc, Mutex};

use lepton_core::fragmentation::TargetWorkload;
use lepton_core::{FeasibleNodes, NodeSpec, Placement, Policy, Scheduler, TaskSpec};
use lepton_policies::CandidateBuilder;

use super::{lock, utility, EnvConfig, Observation, Reward, Step, StepInfo, Summary};
use crate::fill::{FillConfig, FillRun};
use crate::Error;

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
    pending: Option<Pending>,
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

/// What a step needs of the decision waiting for it: each candidate's
/// placement and fragmentation growth, and the task's GPUs.
struct Pending {
    candidates: Vec<(Placement, f64)>,
    gpu_milli: u64,
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

    fn select(&mut self, _nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        lock(&self.choice).take()
    }
}

impl FillEnv {
    /// An environment over `nodes` and the trace's `tasks`, with FGD's
    /// target `workload` (for the fragmentation features and reward).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] when `max_candidates` is 0 or `tune` is outside
    /// 1 to [`MAX_TUNE`](crate::MAX_TUNE).
    pub fn new(
        nodes: Vec<NodeSpec>,
        tasks: Vec<TaskSpec>,
        workload: Arc<TargetWorkload>,
        config: EnvConfig,
    ) -> Result<FillEnv, Error> {
        super::check(&config, "fill")?;
        crate::fill::validate_tune(config.tune)?;
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
        self.run = Some(FillRun::new(
            &self.nodes,
            &self.tasks,
            Box::new(policy),
            &fill,
        )?);
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
        let Some(mut pending) = self.pending.take() else {
            return Err(Error::NoEpisode);
        };
        let candidates = pending.candidates.len();
        if action >= candidates {
            self.pending = Some(pending);
            return Err(Error::InfeasibleAction { action, candidates });
        }
        let (placement, growth_milli) = pending.candidates.swap_remove(action);
        let run = self.run.as_mut().ok_or(Error::NoEpisode)?;
        *lock(&self.choice) = Some(placement.clone());
        if !run.arrive(&self.workload)? {
            return Err(Error::InfeasibleAction { action, candidates });
        }
        let reward = match self.config.reward {
            Reward::Gpus => pending.gpu_milli as f64 / 1000.0,
            Reward::Frag => -growth_milli / 1000.0,
            Reward::Seed => 1.0,
            // Refused by `new`.
            Reward::Cost => 0.0,
        };
        let (next, dropped) = self.advance()?;
        let penalty = match self.config.reward {
            Reward::Seed => dropped as f64,
            Reward::Gpus | Reward::Frag | Reward::Cost => 0.0,
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
            let feasible = run.scheduler().cluster().feasible(task, None);
            let limit = self.config.max_candidates;
            self.builder
                .build(&self.workload, &feasible, limit, &mut candidates);
            if !candidates.is_empty() {
                self.pending = Some(Pending {
                    candidates: candidates
                        .iter()
                        .map(|c| (c.placement.clone(), c.growth.milli))
                        .collect(),
                    gpu_milli: task.gpu.total_milli(),
                });
                let observation = Observation {
                    task: task.clone(),
                    candidates,
                    edge: Vec::new(),
                };
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
        Ok(Summary {
            alloc_pct: run.allocated_milli() as f64 * 100.0 / capacity,
            frag_pct: frag * 100.0 / capacity,
            tasks_arrived: arrived,
            tasks_placed: placed,
            tasks_dropped: arrived - placed,
            deadline_misses: arrived - placed,
            utility: utility(report.nodes_in_use, placed, self.nodes.len(), arrived)?,
        })
    }

    /// A one-line summary for people.
    ///
    /// # Errors
    /// As [`summary`](Self::summary).
    pub fn render(&self) -> Result<String, Error> {
        Ok(self.summary()?.to_string())
    }
}
