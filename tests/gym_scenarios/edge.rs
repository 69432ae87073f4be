//! The edge scenario as an environment: each decision offers one node per
//! site with its latency columns, the replay is the scenario's own (a
//! cloud-only agent reproduces the cloud-only strategy's report), the cost
//! reward is the cloud's bill and the objective penalties, episodes repeat
//! per seed, and rewards without a meaning at the edge are refused.

use std::collections::HashSet;

use lepton::sim::gym::{
    EdgeEnv, EnvConfig, Observation, Reward, EDGE_FEATURE_BOUNDS, EDGE_FEATURE_NAMES,
};
use lepton::sim::scenario::{run_edge, EdgeConfig, EdgeReport, EdgeStrategy, EdgeWorld, Site};
use lepton::sim::Error;

fn small() -> EdgeConfig {
    EdgeConfig {
        seed: 3,
        tasks: 1_500,
        ..EdgeConfig::default()
    }
}

fn config(reward: Reward) -> EnvConfig {
    let mut config = EnvConfig::default();
    config.reward = reward;
    config.slo_penalty_usd = 0.25;
    config
}

/// The column of `name` in the edge rows.
fn column(name: &str) -> usize {
    EDGE_FEATURE_NAMES.iter().position(|n| *n == name).unwrap()
}

/// Plays an episode choosing with `choose`: the rewards, the decisions'
/// observations and the report.
fn episode(
    env: &mut EdgeEnv,
    seed: u64,
    mut choose: impl FnMut(&Observation) -> usize,
) -> (Vec<f64>, Vec<Observation>, EdgeReport) {
    let mut observation = env.reset(seed).unwrap();
    let (mut rewards, mut seen) = (Vec::new(), Vec::new());
    while let Some(current) = observation {
        let step = env.step(choose(&current)).unwrap();
        seen.push(current);
        rewards.push(step.reward);
        observation = step.observation;
    }
    (rewards, seen, env.report().unwrap().clone())
}

fn cloud_first(observation: &Observation) -> usize {
    let cloud = column("cloud");
    observation
        .edge
        .iter()
        .position(|row| row[cloud] == 1.0)
        .unwrap_or(0)
}

#[test]
fn a_cloud_only_agent_reproduces_the_cloud_only_strategy() {
    let mut env = EdgeEnv::new(small(), config(Reward::Cost)).unwrap();
    let (rewards, seen, report) = episode(&mut env, 3, cloud_first);
    let world = EdgeWorld::generate(&small()).unwrap();
    let expected = run_edge(&world, EdgeStrategy::CloudOnly).unwrap();
    assert_eq!(seen.len(), world.tasks.len(), "one decision per task");
    assert_eq!(report.cost, expected.cost);
    assert_eq!(report.objective_violations, expected.objective_violations);
    assert_eq!(report.p95_latency_ms, expected.p95_latency_ms);
    assert_eq!(report.completed, expected.completed);
    assert!(report.cost > 0.0);
    // The cost reward, paid at the end: the bill and the penalties.
    let total: f64 = rewards.iter().sum();
    let bill = report.cost + 0.25 * report.objective_violations as f64;
    assert!((total + bill).abs() < 1e-9, "{total} vs {bill}");
    assert!(rewards[..rewards.len() - 1].iter().all(|&r| r == 0.0));
}

#[test]
fn candidates_are_one_node_per_site_with_their_latencies() {
    // A busy morning: the users' sites fill up.
    let busy = EdgeConfig {
        tasks: 3_000,
        hours: 4,
        ..small()
    };
    let world = EdgeWorld::generate(&busy).unwrap();
    let mut config = config(Reward::Seed);
    config.max_candidates = 4;
    let mut env = EdgeEnv::new(busy, config).unwrap();
    // Always the nearest candidate, to fill the users' own sites.
    let nearest = |o: &Observation| {
        let latency = column("latency_over_objective");
        (0..o.edge.len())
            .min_by(|&a, &b| o.edge[a][latency].total_cmp(&o.edge[b][latency]))
            .unwrap()
    };
    let (rewards, seen, report) = episode(&mut env, 3, nearest);
    assert_eq!(rewards.iter().sum::<f64>(), report.completed as f64);
    let site_of = |node: u64| world.nodes[node as usize].1;
    let mut saw_a_full_site = false;
    for observation in &seen {
        let task = &world.tasks[observation.task.id.0 as usize];
        assert_eq!(observation.edge.len(), observation.candidates.len());
        assert!((1..=4).contains(&observation.candidates.len()));
        let sites: Vec<Site> = observation
            .candidates
            .iter()
            .map(|c| site_of(c.placement.node.0))
            .collect();
        assert_eq!(sites.iter().collect::<HashSet<_>>().len(), sites.len());
        for (site, row) in sites.iter().zip(&observation.edge) {
            let latency = world.latency_ms(task.origin, *site) as f32;
            let objective = task.objective_ms as f32;
            assert_eq!(row[column("latency_over_objective")], latency / objective);
            assert_eq!(row[column("meets_objective")] == 1.0, latency <= objective);
            assert_eq!(row[column("cloud")] == 1.0, *site == Site::Cloud);
            for (value, (low, high)) in row.iter().zip(EDGE_FEATURE_BOUNDS) {
                assert!((low..=high).contains(value), "{row:?}");
            }
        }
        // The user's own site is offered whenever it has room.
        saw_a_full_site |= !sites.contains(&Site::Edge(task.origin));
    }
    assert!(saw_a_full_site, "the sites never filled: a weak test");
}

#[test]
fn episodes_repeat_per_seed_and_differ_across_seeds() {
    let mut env = EdgeEnv::new(small(), config(Reward::Cost)).unwrap();
    let first = |_: &Observation| 0;
    let (a, _, report_a) = episode(&mut env, 7, first);
    let (b, _, report_b) = episode(&mut env, 7, first);
    let (_, _, report_c) = episode(&mut env, 8, first);
    assert_eq!(a, b);
    assert_eq!(report_a, report_b);
    assert_ne!(report_a.latencies_ms, report_c.latencies_ms);
}

#[test]
fn rewards_without_gpus_are_refused_at_the_edge() {
    for reward in [Reward::Gpus, Reward::Frag] {
        let err = EdgeEnv::new(small(), config(reward)).unwrap_err();
        assert_eq!(
            err,
            Error::RewardNotPaid {
                reward: reward.name(),
                mode: "edge",
                pays: "seed, cost".into()
            }
        );
    }
    let err = EdgeEnv::new(
        EdgeConfig {
            sites: 1,
            ..small()
        },
        config(Reward::Cost),
    )
    .unwrap_err();
    assert!(err.to_string().contains("sites"), "{err}");
}
