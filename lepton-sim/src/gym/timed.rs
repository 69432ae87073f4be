//! The timed replay as an environment: [`run_timed`] runs unchanged on a
//! thread of its own, and its policy hands each decision over a channel
//! ([`Handoff`]).

use std::sync::Arc;

use lepton_core::fragmentation::TargetWorkload;
use lepton_core::model::GPU_MILLI_PER_GPU;
use lepton_core::NodeSpec;

use super::handoff::{FgdShortlist, Handoff};
use super::{utility, EnvConfig, Observation, Step, Summary};
use crate::timed::{run_timed, TimedConfig, TimedResult, TimedTask};
use crate::Error;

/// The timed replay as an environment; see the [module docs](super).
pub struct TimedEnv {
    nodes: Arc<Vec<NodeSpec>>,
    tasks: Arc<Vec<TimedTask>>,
    workload: Arc<TargetWorkload>,
    timed: TimedConfig,
    config: EnvConfig,
    episode: Option<Handoff<TimedResult>>,
}

impl std::fmt::Debug for TimedEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedEnv")
            .field("nodes", &self.nodes.len())
            .field("tasks", &self.tasks.len())
            .field("timed", &self.timed)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TimedEnv {
    /// An environment replaying `tasks` on `nodes` with the replay settings
    /// `timed` (its seed is replaced by each episode's), measuring
    /// fragmentation against `workload`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] when `max_candidates` is 0 or a replay setting
    /// is out of range ([`TimedConfig::validate`]).
    pub fn new(
        nodes: Vec<NodeSpec>,
        tasks: Vec<TimedTask>,
        workload: Arc<TargetWorkload>,
        timed: TimedConfig,
        config: EnvConfig,
    ) -> Result<TimedEnv, Error> {
        super::check(&config, "timed")?;
        timed.validate()?;
        Ok(TimedEnv {
            nodes: Arc::new(nodes),
            tasks: Arc::new(tasks),
            workload,
            timed,
            config,
            episode: None,
        })
    }

    /// Starts a replay with `seed` (ending the previous one) and returns
    /// the first decision, or `None` when the replay asks for none.
    ///
    /// # Errors
    /// The replay's own errors ([`run_timed`]), when it fails before its
    /// first decision.
    pub fn reset(&mut self, seed: u64) -> Result<Option<Observation>, Error> {
        // Dropping the old channels makes the old replay decline the rest.
        self.episode = None;
        let (nodes, tasks, workload) = (
            Arc::clone(&self.nodes),
            Arc::clone(&self.tasks),
            Arc::clone(&self.workload),
        );
        let timed = TimedConfig { seed, ..self.timed };
        let reward = self.config.reward;
        let capacity: f64 = nodes
            .iter()
            .map(|n| f64::from(n.gpus.count) * f64::from(GPU_MILLI_PER_GPU))
            .sum();
        let episode = Handoff::start(
            Arc::clone(&self.workload),
            FgdShortlist::new(Arc::clone(&self.workload)),
            self.config,
            self.nodes.len(),
            move |policy, _| run_timed(&nodes, &tasks, &workload, policy, &timed),
            move |result: &TimedResult, tally| {
                // What changed after the last decision, read off the end.
                let milli = |pct: f64| pct * capacity / 100.0;
                let end = &result.at_end;
                tally.moved_to(reward, milli(end.gpu_alloc_pct), milli(end.frag_pct));
            },
        );
        let (observation, _) = self.episode.insert(episode).next()?;
        Ok(observation)
    }

    /// Places the pending task on candidate `action` and runs the replay
    /// to the next decision.
    ///
    /// # Errors
    /// [`Error::NoEpisode`] with no decision pending;
    /// [`Error::InfeasibleAction`] when `action` names no candidate; the
    /// replay's own errors.
    pub fn step(&mut self, action: usize) -> Result<Step, Error> {
        self.episode.as_mut().ok_or(Error::NoEpisode)?.step(action)
    }
}

/// The figures of a replay that ended, for a cluster of `nodes` nodes.
fn final_summary(
    result: &TimedResult,
    deadline_misses: usize,
    nodes: usize,
) -> Result<Summary, Error> {
    let end = &result.at_end;
    Ok(Summary {
        alloc_pct: end.gpu_alloc_pct,
        frag_pct: end.frag_pct,
        tasks_arrived: result.tasks_submitted,
        tasks_placed: result.tasks_placed,
        tasks_dropped: 0,
        deadline_misses,
        utility: utility(
            end.nodes_in_use,
            result.tasks_placed,
            nodes,
            result.tasks_submitted,
        )?,
    })
}

impl TimedEnv {
    /// The episode's figures: at the last decision while it runs, from the
    /// replay's result once it ended (allocation and fragmentation at the
    /// end).
    ///
    /// # Errors
    /// [`Error::NoEpisode`] before the first [`reset`](Self::reset).
    pub fn summary(&self) -> Result<Summary, Error> {
        let episode = self.episode.as_ref().ok_or(Error::NoEpisode)?;
        match episode.ended() {
            Some(ended) => final_summary(&ended.result, ended.deadline_misses, self.nodes.len()),
            None => Ok(episode.last()),
        }
    }

    /// The replay's full result, once the episode ended.
    pub fn result(&self) -> Option<&TimedResult> {
        Some(&self.episode.as_ref()?.ended()?.result)
    }
}
