//! The gym environment agrees with the scheduler and the fill experiment:
//! FGD's choices through the environment give FGD's result, every step is a
//! feasible placement of the real scheduler, an infeasible action is an
//! error, and the rewards add up to what the episode measured.

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use lepton::fragmentation::TargetWorkload;
use lepton::policies::{by_name, CandidateBuilder};
use lepton::rng::SeededRng;
use lepton::scheduler::RetryPolicy;
use lepton::sim::gym::{EnvConfig, FillEnv, Observation, Reward, TimedEnv};
use lepton::sim::{run_fill, synthetic_nodes, synthetic_tasks, FillConfig, TimedConfig, TimedTask};
use lepton::{ClusterState, GpuRequest, NodeId, NodeSpec, Resources, TaskId, TaskSpec};
use support::{paper_cluster_and_pods, paper_context};

/// FGD's choice among the candidates: the best integer score (feature 1),
/// the earliest on ties.
fn fgd_action(observation: &Observation) -> usize {
    let mut best = 0;
    for (index, candidate) in observation.candidates.iter().enumerate() {
        if candidate.features[1] > observation.candidates[best].features[1] {
            best = index;
        }
    }
    best
}

fn env(nodes: Vec<NodeSpec>, tasks: Vec<TaskSpec>, reward: Reward, limit: usize) -> FillEnv {
    let workload = Arc::new(TargetWorkload::from_tasks(&tasks, 0.95));
    let mut config = EnvConfig::default();
    config.reward = reward;
    config.max_candidates = limit;
    FillEnv::new(nodes, tasks, workload, config).unwrap()
}

/// A small GPU cluster: synthetic nodes, each given GPUs, and tasks that
/// ask for shares or whole GPUs.
fn small_gpu_cluster() -> (Vec<NodeSpec>, Vec<TaskSpec>) {
    let nodes = synthetic_nodes(24, 3)
        .into_iter()
        .enumerate()
        .map(|(i, node)| node.with_gpus(lepton::Gpus::new("T4", 1 + (i % 4) as u32)))
        .collect();
    let tasks = synthetic_tasks(120, 4)
        .into_iter()
        .enumerate()
        .map(|(i, task)| {
            let gpu = match i % 3 {
                0 => GpuRequest::shared(250 + 250 * (i % 3) as u32),
                1 => GpuRequest::whole(1),
                _ => GpuRequest::whole(2),
            };
            task.with_gpu(gpu)
        })
        .collect();
    (nodes, tasks)
}

#[test]
fn fgd_choices_through_the_environment_give_fgds_fill_result() {
    let (nodes, tasks) = paper_cluster_and_pods("default");
    let (workload, context) = paper_context(&tasks);
    let mut env = FillEnv::new(
        nodes.clone(),
        tasks.clone(),
        Arc::clone(&workload),
        EnvConfig::default(),
    )
    .unwrap();
    let mut observation = env.reset(7).unwrap();
    let mut steps = 0;
    while let Some(current) = observation {
        observation = env.step(fgd_action(&current)).unwrap().observation;
        steps += 1;
    }
    let summary = env.summary().unwrap();
    let fgd = lepton::policies::build("fgd", &context).unwrap();
    let config = FillConfig { seed: 7, tune: 1.3 };
    let expected = run_fill(&nodes, &tasks, &workload, fgd, &config).unwrap();
    assert_eq!(summary.alloc_pct, expected.alloc_pct_at_100);
    assert!((summary.frag_pct - expected.frag_pct_at_100).abs() < 1e-9);
    assert_eq!(summary.tasks_placed, steps);
    assert!(steps > 5_000, "{steps} decisions");
}

#[test]
fn every_observation_and_step_agrees_with_a_mirror_of_the_cluster() {
    let (nodes, tasks) = small_gpu_cluster();
    let workload = TargetWorkload::from_tasks(&tasks, 0.95);
    let limit = 5;
    let mut env = env(nodes.clone(), tasks, Reward::Gpus, limit);
    let mut mirror = ClusterState::new();
    for node in &nodes {
        mirror.add_node(node.clone()).unwrap();
    }
    let mut rng = SeededRng::new(11);
    let mut builder = CandidateBuilder::new();
    let mut expected = Vec::new();
    let mut observation = env.reset(5).unwrap();
    let mut steps = 0;
    while let Some(current) = observation {
        // The candidates are feasible and as many as the limit allows.
        let view = mirror.feasible(&current.task, None);
        let feasible = view.count();
        assert_eq!(current.candidates.len(), feasible.min(limit));
        for candidate in &current.candidates {
            let node = mirror.node(candidate.placement.node).unwrap();
            assert_eq!(view.check(node), Ok(()), "{:?}", candidate.placement);
        }
        // The same candidates as the builder finds on the mirror (node
        // order differs, so compare the sets).
        builder.build(&workload, &view, limit, &mut expected);
        let mut got: Vec<_> = current
            .candidates
            .iter()
            .map(|c| c.placement.node)
            .collect();
        let mut want: Vec<_> = expected.iter().map(|c| c.placement.node).collect();
        got.sort();
        want.sort();
        if feasible <= limit {
            assert_eq!(got, want);
        }
        let mask = current.mask(limit + 2);
        assert_eq!(
            mask.iter().filter(|&&m| m).count(),
            current.candidates.len()
        );
        assert!(!mask[limit] && !mask[limit + 1]);

        let action = rng.index(current.candidates.len());
        let step = env.step(action).unwrap();
        assert_eq!(step.info.placement, current.candidates[action].placement);
        mirror.reserve(&current.task, &step.info.placement).unwrap();
        steps += 1;
        observation = step.observation;
        assert_eq!(step.done, observation.is_none());
    }
    let summary = env.summary().unwrap();
    assert_eq!(summary.tasks_placed, steps);
    assert_eq!(
        summary.tasks_placed + summary.tasks_dropped,
        summary.tasks_arrived
    );
    let capacity: u64 = nodes.iter().map(|n| u64::from(n.gpus.count) * 1_000).sum();
    let allocated: u64 = mirror
        .allocations()
        .map(|a| a.gpu_request().total_milli())
        .sum();
    assert!((summary.alloc_pct - allocated as f64 * 100.0 / capacity as f64).abs() < 1e-9);
}

#[test]
fn an_infeasible_action_is_an_error_and_the_decision_stays() {
    let (nodes, tasks) = small_gpu_cluster();
    let mut env = env(nodes, tasks, Reward::Gpus, 4);
    let err = env.step(0).unwrap_err();
    assert_eq!(err, lepton::sim::Error::NoEpisode);

    let first = env.reset(1).unwrap().unwrap();
    let count = first.candidates.len();
    let err = env.step(count).unwrap_err();
    assert_eq!(
        err,
        lepton::sim::Error::InfeasibleAction {
            action: count,
            candidates: count
        }
    );
    assert!(err.to_string().contains(&format!("action {count}")));
    // The decision is still pending: a valid action goes through.
    let step = env.step(0).unwrap();
    assert_eq!(step.info.placement, first.candidates[0].placement);

    let mut observation = step.observation;
    while let Some(current) = observation {
        observation = env.step(fgd_action(&current)).unwrap().observation;
    }
    assert_eq!(env.step(0).unwrap_err(), lepton::sim::Error::NoEpisode);
}

#[test]
fn the_rewards_add_up_to_what_the_episode_measured() {
    let (nodes, tasks) = small_gpu_cluster();
    let capacity: f64 = nodes.iter().map(|n| f64::from(n.gpus.count)).sum();
    for reward in [Reward::Gpus, Reward::Frag, Reward::Seed] {
        let mut env = env(nodes.clone(), tasks.clone(), reward, 8);
        let mut observation = env.reset(3).unwrap();
        let start = env.summary().unwrap();
        let mut total = 0.0;
        while let Some(current) = observation {
            let step = env.step(fgd_action(&current)).unwrap();
            total += step.reward;
            observation = step.observation;
        }
        let end = env.summary().unwrap();
        let expected = match reward {
            Reward::Gpus => end.alloc_pct * capacity / 100.0,
            Reward::Frag => -(end.frag_pct - start.frag_pct) * capacity / 100.0,
            _ => end.tasks_placed as f64 - (end.tasks_dropped - start.tasks_dropped) as f64,
        };
        assert!(
            (total - expected).abs() < 1e-6,
            "{reward:?}: {total} vs {expected}"
        );
        assert!(end.utility.is_finite());
    }
}

#[test]
fn episodes_are_reproducible_per_seed() {
    let (nodes, tasks) = small_gpu_cluster();
    let play = |seed| {
        let mut env = env(nodes.clone(), tasks.clone(), Reward::Gpus, 6);
        let mut trace = Vec::new();
        let mut observation = env.reset(seed).unwrap();
        while let Some(current) = observation {
            trace.push(current.candidates.clone());
            observation = env.step(current.candidates.len() - 1).unwrap().observation;
        }
        trace
    };
    assert_eq!(play(9), play(9));
    assert_ne!(play(9), play(10));
}

#[test]
fn bad_settings_are_named() {
    let (nodes, tasks) = small_gpu_cluster();
    let workload = Arc::new(TargetWorkload::default());
    let mut config = EnvConfig::default();
    config.max_candidates = 0;
    let err =
        FillEnv::new(nodes.clone(), tasks.clone(), Arc::clone(&workload), config).unwrap_err();
    assert!(err.to_string().contains("max_candidates = 0"), "{err}");
    let mut config = EnvConfig::default();
    config.tune = f64::NAN;
    let err = FillEnv::new(nodes, tasks, workload, config).unwrap_err();
    assert!(err.to_string().contains("tune"), "{err}");
    let err = Reward::parse("gpu").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown reward \"gpu\"; valid rewards: gpus, frag, seed, cost"
    );
    assert!(by_name("fgd").is_ok());
}

/// Three 1-GPU nodes; twelve 1-GPU tasks arriving 10 s apart, running 100
/// s, every third with a 50 s timeout (so that run times out), retried at
/// most once.
fn timed_case(reward: Reward) -> TimedEnv {
    let nodes: Vec<NodeSpec> = (1..=3)
        .map(|id| {
            NodeSpec::new(NodeId(id), Resources::new(8_000, 16_384))
                .with_gpus(lepton::Gpus::new("T4", 1))
        })
        .collect();
    let tasks: Vec<TimedTask> = (0..12)
        .map(|i| {
            let mut spec = TaskSpec::new(TaskId(i), Resources::new(1_000, 1_024))
                .with_gpu(GpuRequest::whole(1));
            if i % 3 == 0 {
                spec = spec.with_timeout_ms(50_000);
            }
            TimedTask::new(spec, i * 10, Some(100))
        })
        .collect();
    let specs: Vec<TaskSpec> = tasks.iter().map(|t| t.spec.clone()).collect();
    let workload = Arc::new(TargetWorkload::from_tasks(&specs, 1.0));
    let timed = TimedConfig {
        retry: RetryPolicy {
            max_retries: Some(1),
            ..RetryPolicy::IMMEDIATE
        },
        ..TimedConfig::default()
    };
    let mut config = EnvConfig::default();
    config.reward = reward;
    TimedEnv::new(nodes, tasks, workload, timed, config).unwrap()
}

#[test]
fn the_timed_environment_pays_the_articles_reward() {
    let mut env = timed_case(Reward::Seed);
    let mut total = 0.0;
    let mut steps = 0;
    let mut observation = env.reset(1).unwrap();
    while let Some(current) = observation {
        assert!(!current.candidates.is_empty());
        let step = env.step(current.candidates.len() - 1).unwrap();
        total += step.reward;
        steps += 1;
        observation = step.observation;
    }
    let result = env.result().unwrap().clone();
    // Every placement was a decision of the environment.
    assert_eq!(steps, result.placements);
    // +1 per completion, −1 per run that timed out: the four tasks with a
    // timeout outlive it twice each, then fail.
    assert_eq!(result.timeouts, 8);
    assert_eq!(result.tasks_failed, 4);
    assert_eq!(result.tasks_completed, 8);
    assert_eq!(total, 8.0 - 8.0);
    let summary = env.summary().unwrap();
    assert_eq!(summary.deadline_misses, 8);
    assert_eq!(summary.tasks_arrived, 12);
    assert!(summary.utility.is_finite());
    assert_eq!(env.step(0).unwrap_err(), lepton::sim::Error::NoEpisode);
}

#[test]
fn the_timed_environment_refuses_infeasible_actions_and_restarts() {
    let mut env = timed_case(Reward::Gpus);
    assert_eq!(env.step(0).unwrap_err(), lepton::sim::Error::NoEpisode);
    let first = env.reset(2).unwrap().unwrap();
    let count = first.candidates.len();
    assert_eq!(
        env.step(count).unwrap_err(),
        lepton::sim::Error::InfeasibleAction {
            action: count,
            candidates: count
        }
    );
    env.step(0).unwrap();
    // A reset mid-episode starts over; the old replay is abandoned.
    let again = env.reset(2).unwrap().unwrap();
    assert_eq!(again.candidates, first.candidates);
    let mut gpus = 0.0;
    let mut observation = Some(again);
    while let Some(current) = observation {
        let step = env.step(0).unwrap();
        gpus += step.reward;
        observation = step.observation;
        let _ = current;
    }
    // Every GPU placed is released by the end.
    assert!(gpus.abs() < 1e-9, "net GPUs {gpus}");
}
