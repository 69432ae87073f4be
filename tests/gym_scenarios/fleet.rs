//! The scenarios' fleets as environments: FGD's choices through the
//! environment give the run Lepton's strategy makes with FGD placing, the
//! cost reward is the run's cost and penalties, episodes repeat per seed,
//! and the cost reward is refused where there is no cost.

use std::sync::Arc;

use lepton::fragmentation::TargetWorkload;
use lepton::policies::Fgd;
use lepton::sim::fgd_choice;
use lepton::sim::gym::{EnvConfig, FillEnv, FleetEnv, Reward, TimedEnv};
use lepton::sim::scenario::{
    datacenter_strategies, datacenter_tuning, run_datacenter, DatacenterConfig, FleetWorld,
    HybridConfig, StrategyReport,
};
use lepton::sim::{synthetic_nodes, synthetic_tasks, Error, TimedConfig};
use lepton::TaskSpec;

fn small() -> DatacenterConfig {
    DatacenterConfig {
        seed: 5,
        vms: 30,
        tasks: 400,
        hours: 2,
        ..DatacenterConfig::default()
    }
}

fn cost_config() -> EnvConfig {
    let mut config = EnvConfig::default();
    config.reward = Reward::Cost;
    config.slo_penalty_usd = 2.5;
    config
}

/// Plays an episode with FGD's choices: the rewards and the run's report.
fn fgd_episode(env: &mut FleetEnv, seed: u64) -> (Vec<f64>, StrategyReport) {
    let mut rewards = Vec::new();
    let mut observation = env.reset(seed).unwrap();
    while let Some(current) = observation {
        let step = env.step(fgd_choice(&current).unwrap()).unwrap();
        rewards.push(step.reward);
        observation = step.observation;
    }
    (rewards, env.report().unwrap().clone())
}

#[test]
fn fgd_through_the_environment_is_lepton_with_fgd_placing() {
    let config = small();
    let mut env = FleetEnv::datacenter(config, cost_config()).unwrap();
    let (rewards, report) = fgd_episode(&mut env, 11);
    assert!(rewards.len() > 300, "{} decisions", rewards.len());
    // The same run, FGD inside Lepton's strategy, its target workload the
    // environment's: the task shapes of the config's own world.
    let own = FleetWorld::generate(&config).unwrap();
    let specs: Vec<&TaskSpec> = own.tasks.iter().map(|task| &task.spec).collect();
    let workload = Arc::new(TargetWorkload::from_tasks(specs, 0.95));
    let world = FleetWorld::generate(&DatacenterConfig { seed: 11, ..config }).unwrap();
    let tuning = datacenter_tuning(config.vms);
    let strategy = datacenter_strategies("gym", Box::new(Fgd::new(workload)), &tuning).1;
    let expected = run_datacenter(&world, strategy).unwrap();
    assert_eq!(report.cost, expected.cost);
    assert_eq!(report.completed, expected.completed);
    assert_eq!(report.slo_violations, expected.slo_violations);
    assert_eq!(report.mean_wait_s, expected.mean_wait_s);
    assert_eq!(report.lost, 0);
    // The cost reward: nothing until the end, then the cost and penalties.
    let (last, before) = rewards.split_last().unwrap();
    assert!(before.iter().all(|&reward| reward == 0.0));
    let penalized = report.slo_violations + report.deadline_misses - report.unavoidable_misses;
    assert_eq!(*last, -(report.cost + 2.5 * penalized as f64));
    assert!(report.cost > 0.0);
}

#[test]
fn episodes_repeat_per_seed_and_the_agent_matters() {
    let mut env = FleetEnv::datacenter(small(), cost_config()).unwrap();
    let (first, report) = fgd_episode(&mut env, 3);
    let (again, _) = fgd_episode(&mut env, 3);
    assert_eq!(first, again);
    // Always the last candidate: another run.
    let mut observation = env.reset(3).unwrap();
    while let Some(current) = observation {
        observation = env.step(current.candidates.len() - 1).unwrap().observation;
    }
    assert_ne!(env.report().unwrap().cost, report.cost);
}

#[test]
fn the_hybrid_cloud_runs_as_an_environment() {
    let config = HybridConfig {
        tasks: 300,
        hours: 2,
        ..HybridConfig::default()
    };
    let mut env = FleetEnv::hybrid(config, cost_config()).unwrap();
    let (rewards, report) = fgd_episode(&mut env, 1);
    assert!(rewards.len() > 200);
    assert_eq!(report.lost, 0);
    assert!(*rewards.last().unwrap() < 0.0);
    assert_eq!(
        env.summary().unwrap().deadline_misses,
        report.deadline_misses
    );
}

#[test]
fn the_cost_reward_is_refused_where_there_is_no_cost() {
    let nodes = synthetic_nodes(4, 1);
    let tasks = synthetic_tasks(10, 1);
    let workload = Arc::new(TargetWorkload::from_tasks(&tasks, 0.95));
    let err = FillEnv::new(nodes.clone(), tasks, Arc::clone(&workload), cost_config()).unwrap_err();
    assert_eq!(
        err,
        Error::RewardNotPaid {
            reward: "cost",
            mode: "fill",
            pays: "gpus, frag, seed".into()
        }
    );
    let err = TimedEnv::new(
        nodes,
        Vec::new(),
        workload,
        TimedConfig::default(),
        cost_config(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::RewardNotPaid {
            reward: "cost",
            mode: "timed",
            pays: "gpus, frag, seed".into()
        }
    );
    let mut config = cost_config();
    config.slo_penalty_usd = f64::NAN;
    let err = FleetEnv::datacenter(small(), config).unwrap_err();
    assert!(err.to_string().contains("slo_penalty_usd"), "{err}");
}
