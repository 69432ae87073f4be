//! The scenarios' fleets as an environment: the data center, the DLRM
//! trace's pool and the hybrid cloud run unchanged ([`run_datacenter`]),
//! with Lepton's strategy — its autoscaling, spare capacity and spot
//! rules — but placement decided by the agent, one task at a time
//! ([`Handoff`]).

use std::sync::Arc;

use lepton_core::fragmentation::TargetWorkload;
use lepton_core::{Policy, TaskSpec};

use super::handoff::{FgdShortlist, Handoff};
use super::{EnvConfig, Observation, Reward, Step, Summary};
use crate::scenario::{
    datacenter_strategies, datacenter_tuning, run_datacenter_while, DatacenterConfig, FleetWorld,
    HybridConfig, Strategy, StrategyReport, TraceWindow, HYBRID_SPARE, TRACE_TUNING,
};
use crate::{DlrmInstance, Error};

/// Makes an episode's world from its seed.
type MakeWorld = dyn Fn(u64) -> Result<FleetWorld, Error> + Send + Sync;

/// Lepton's strategy around the agent's placement policy.
type MakeStrategy = dyn Fn(Box<dyn Policy>) -> Strategy + Send + Sync;

/// A scenario's fleet as an environment (the [module docs](super): fleet
/// mode): the data center, the DLRM trace's pool or the hybrid cloud run
/// with Lepton's strategy around the agent's placements.
///
/// Rewards: [`Reward::Cost`] pays, when the episode ends, minus the run's
/// cost (USD) and [`EnvConfig::slo_penalty_usd`] per task that started
/// later than its objective or missed a deadline it could have met; the
/// other rewards are paid as in timed mode. The candidates' features are
/// measured against a target workload of the task shapes of the world the
/// scenario's own seed makes (shapes only: no durations, no arrival times).
pub struct FleetEnv {
    scenario: &'static str,
    make_world: Arc<MakeWorld>,
    make_strategy: Arc<MakeStrategy>,
    workload: Arc<TargetWorkload>,
    config: EnvConfig,
    episode: Option<Handoff<StrategyReport>>,
}

impl std::fmt::Debug for FleetEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetEnv")
            .field("scenario", &self.scenario)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FleetEnv {
    /// The data center of `config` (`lepton demo --scenario datacenter`),
    /// each episode's world made with the episode's seed.
    ///
    /// # Errors
    /// A setting out of range ([`DatacenterConfig::validate`],
    /// `max_candidates` 0).
    pub fn datacenter(config: DatacenterConfig, env: EnvConfig) -> Result<FleetEnv, Error> {
        let tuning = datacenter_tuning(config.vms);
        FleetEnv::new(
            "datacenter",
            move |seed| FleetWorld::generate(&DatacenterConfig { seed, ..config }),
            move |policy| datacenter_strategies("gym", policy, &tuning).1,
            config.seed,
            env,
        )
    }

    /// The DLRM trace's `window` (`datacenter-trace`) on an autoscaled
    /// pool, the episode's seed drawing the world's failures.
    ///
    /// # Errors
    /// As [`FleetWorld::from_dlrm`]; `max_candidates` 0.
    pub fn trace(
        instances: Arc<Vec<DlrmInstance>>,
        window: TraceWindow,
        env: EnvConfig,
    ) -> Result<FleetEnv, Error> {
        let seed = DatacenterConfig::default().seed;
        FleetEnv::new(
            "datacenter-trace",
            move |seed| {
                let rules = DatacenterConfig {
                    seed,
                    ..DatacenterConfig::default()
                };
                FleetWorld::from_dlrm(&instances, window, &rules)
            },
            |policy| datacenter_strategies("gym", policy, &TRACE_TUNING).1,
            seed,
            env,
        )
    }

    /// The hybrid cloud of `config` (owned, on-demand and spot VMs), with
    /// Lepton's spare capacity and spot VMs for tasks with slack.
    ///
    /// # Errors
    /// A setting out of range ([`HybridConfig::validate`]; `max_candidates`
    /// 0).
    pub fn hybrid(config: HybridConfig, env: EnvConfig) -> Result<FleetEnv, Error> {
        FleetEnv::new(
            "hybrid",
            move |seed| FleetWorld::hybrid(&HybridConfig { seed, ..config }),
            |policy| Strategy {
                use_spot: true,
                ..Strategy::releasing("gym", policy, HYBRID_SPARE)
            },
            config.seed,
            env,
        )
    }

    fn new(
        scenario: &'static str,
        make_world: impl Fn(u64) -> Result<FleetWorld, Error> + Send + Sync + 'static,
        make_strategy: impl Fn(Box<dyn Policy>) -> Strategy + Send + Sync + 'static,
        seed: u64,
        config: EnvConfig,
    ) -> Result<FleetEnv, Error> {
        super::check(&config, "fleet")?;
        let world = make_world(seed)?;
        let specs: Vec<&TaskSpec> = world.tasks.iter().map(|task| &task.spec).collect();
        let workload = Arc::new(TargetWorkload::from_tasks(specs, 0.95));
        Ok(FleetEnv {
            scenario,
            make_world: Arc::new(make_world),
            make_strategy: Arc::new(make_strategy),
            workload,
            config,
            episode: None,
        })
    }

    /// The target workload the candidates' features are measured against
    /// (the policy scoring them needs the same).
    pub fn workload(&self) -> &Arc<TargetWorkload> {
        &self.workload
    }

    /// The scenario's name.
    pub fn scenario(&self) -> &str {
        self.scenario
    }

    /// Starts a run with `seed` (ending the previous one) and returns the
    /// first decision, or `None` when the run asks for none.
    ///
    /// # Errors
    /// The world's or the run's own errors, when it fails before its first
    /// decision.
    pub fn reset(&mut self, seed: u64) -> Result<Option<Observation>, Error> {
        self.episode = None;
        let world = (self.make_world)(seed)?;
        let nodes = world.fleet.iter().map(|(_, count)| count).sum();
        let make_strategy = Arc::clone(&self.make_strategy);
        let (reward, penalty) = (self.config.reward, self.config.slo_penalty_usd);
        let episode = Handoff::start(
            Arc::clone(&self.workload),
            FgdShortlist::new(Arc::clone(&self.workload)),
            self.config,
            nodes,
            move |policy, go_on| run_datacenter_while(&world, make_strategy(policy), go_on),
            move |report: &StrategyReport, tally| {
                if reward == Reward::Cost {
                    tally.reward -= report.cost + penalty * penalized(report) as f64;
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
    /// run's own errors.
    pub fn step(&mut self, action: usize) -> Result<Step, Error> {
        self.episode.as_mut().ok_or(Error::NoEpisode)?.step(action)
    }

    /// The episode's figures: at the last decision while it runs; once it
    /// ended, tasks completed and deadline misses from the run's report.
    ///
    /// # Errors
    /// [`Error::NoEpisode`] before the first [`reset`](Self::reset).
    pub fn summary(&self) -> Result<Summary, Error> {
        let episode = self.episode.as_ref().ok_or(Error::NoEpisode)?;
        let last = episode.last();
        Ok(match episode.ended() {
            Some(ended) => {
                let report = &ended.result;
                Summary {
                    tasks_arrived: report.completed + report.failed + report.lost,
                    tasks_placed: report.completed,
                    deadline_misses: report.deadline_misses,
                    ..last
                }
            }
            None => last,
        })
    }

    /// The run's report (cost, utilization, SLO violations, …), once the
    /// episode ended.
    pub fn report(&self) -> Option<&StrategyReport> {
        Some(&self.episode.as_ref()?.ended()?.result)
    }
}

/// What the cost reward penalizes: late starts, and deadline misses a
/// scheduler could have avoided.
fn penalized(report: &StrategyReport) -> usize {
    report.slo_violations
        + report
            .deadline_misses
            .saturating_sub(report.unavoidable_misses)
}
