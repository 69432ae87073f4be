//! The learned policy: training improves it, models survive a save and a
//! load, bad model files are typed errors naming the file, the evaluation
//! seeds are refused, online learning changes the network, and the shipped
//! model schedules the trace.

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use lepton::clock::Timestamp;
use lepton::fragmentation::TargetWorkload;
use lepton::policies::{build, Drl, PolicyContext};
use lepton::policy::{Feedback, Outcome};
use lepton::sim::gym::{EnvConfig, FillEnv, FleetEnv, Reward};
use lepton::sim::scenario::DatacenterConfig;
use lepton::sim::{play_greedy, train, TrainConfig};
use lepton::sim::{run_fill, synthetic_nodes, synthetic_tasks, FillConfig};
use lepton::{ClusterState, GpuRequest, Gpus, NodeSpec, Policy, TaskSpec};
use support::{paper_cluster_and_pods, paper_context};

/// A small GPU cluster where placement matters: 2- and 4-GPU nodes, and
/// tasks asking for a quarter, a half, one or two GPUs.
fn small_gpu_cluster() -> (Vec<NodeSpec>, Vec<TaskSpec>) {
    let nodes = synthetic_nodes(16, 3)
        .into_iter()
        .enumerate()
        .map(|(i, node)| node.with_gpus(Gpus::new("T4", if i % 2 == 0 { 2 } else { 4 })))
        .collect();
    let tasks = synthetic_tasks(200, 4)
        .into_iter()
        .enumerate()
        .map(|(i, task)| {
            let gpu = match i % 4 {
                0 => GpuRequest::shared(250),
                1 => GpuRequest::shared(500),
                2 => GpuRequest::whole(1),
                _ => GpuRequest::whole(2),
            };
            task.with_gpu(gpu)
        })
        .collect();
    (nodes, tasks)
}

fn workload(tasks: &[TaskSpec]) -> Arc<TargetWorkload> {
    Arc::new(TargetWorkload::from_tasks(tasks, 0.95))
}

/// Mean GPU allocation % of `drl` in the fill experiment over `seeds`.
fn mean_alloc(drl: &Drl, nodes: &[NodeSpec], tasks: &[TaskSpec], seeds: &[u64]) -> f64 {
    let workload = workload(tasks);
    let total: f64 = seeds
        .iter()
        .map(|&seed| {
            let config = FillConfig { seed, tune: 1.3 };
            run_fill(nodes, tasks, &workload, Box::new(drl.clone()), &config)
                .unwrap()
                .alloc_pct_at_100
        })
        .sum();
    total / seeds.len() as f64
}

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lepton-drl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn reinforce_improves_an_untrained_network() {
    let (nodes, tasks) = small_gpu_cluster();
    let mut config = EnvConfig::default();
    config.reward = Reward::Gpus;
    let mut env = FillEnv::new(nodes.clone(), tasks.clone(), workload(&tasks), config).unwrap();
    let untrained = Drl::untrained(5, workload(&tasks));
    let held_out: Vec<u64> = (300..310).collect();
    let before = mean_alloc(&untrained, &nodes, &tasks, &held_out);

    let mut train_config = TrainConfig::default();
    train_config.imitation_episodes = 0;
    train_config.episodes = 60;
    train_config.seed = 100;
    train_config.reinforce_learning_rate = 3e-3;
    let (trained, history) = train(&mut env, untrained, &train_config, |_| {}).unwrap();
    assert_eq!(history.len(), 60);
    assert!(history.iter().all(|s| s.phase == "reinforce"));
    let after = mean_alloc(&trained, &nodes, &tasks, &held_out);
    assert!(
        after > before + 1.0,
        "allocation on held-out seeds: {before:.2}% untrained, {after:.2}% trained"
    );
}

#[test]
fn imitation_learns_fgds_choices() {
    let (nodes, tasks) = small_gpu_cluster();
    let mut env =
        FillEnv::new(nodes, tasks.clone(), workload(&tasks), EnvConfig::default()).unwrap();
    let mut config = TrainConfig::default();
    config.imitation_episodes = 30;
    config.episodes = 0;
    config.seed = 200;
    // Episodes here are ~150 decisions: small batches, many steps.
    config.batch = 16;
    let (_, history) = train(
        &mut env,
        Drl::untrained(1, workload(&tasks)),
        &config,
        |_| {},
    )
    .unwrap();
    let first = history.first().unwrap().fgd_agreement_pct;
    let last = history.last().unwrap().fgd_agreement_pct;
    assert!(
        last > 90.0 && last > first,
        "agreement {first:.1}% → {last:.1}%"
    );
}

#[test]
fn training_is_deterministic_and_refuses_the_evaluation_seeds() {
    let (nodes, tasks) = small_gpu_cluster();
    let run = |seed| {
        let mut env = FillEnv::new(
            nodes.clone(),
            tasks.clone(),
            workload(&tasks),
            EnvConfig::default(),
        )
        .unwrap();
        let mut config = TrainConfig::default();
        config.imitation_episodes = 2;
        config.episodes = 2;
        config.seed = seed;
        train(
            &mut env,
            Drl::untrained(seed, workload(&tasks)),
            &config,
            |_| {},
        )
    };
    let (a, history_a) = run(500).unwrap();
    let (b, history_b) = run(500).unwrap();
    assert_eq!(history_a, history_b);
    let rows = [
        [0.5f32; lepton::policies::FEATURES],
        [0.1; lepton::policies::FEATURES],
    ];
    assert_eq!(a.scores(&rows), b.scores(&rows));

    // Seeds 40..=43 would reach 42.
    let err = run(40).unwrap_err();
    let evaluation = lepton::sim::Error::EvaluationSeed {
        seed: 42,
        first: 42,
        last: 51,
    };
    assert_eq!(err, evaluation);
    assert!(err.to_string().contains("42-51"), "{err}");
}

#[test]
fn a_saved_model_loads_and_decides_the_same() {
    let (nodes, tasks) = small_gpu_cluster();
    let drl = Drl::untrained(77, workload(&tasks));
    let path = temp_file("saved.safetensors");
    drl.save(&path).unwrap();
    let loaded = Drl::load(&path, workload(&tasks)).unwrap();
    let rows: Vec<[f32; lepton::policies::FEATURES]> = (0..10)
        .map(|i| std::array::from_fn(|j| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0))
        .collect();
    assert_eq!(drl.scores(&rows), loaded.scores(&rows));
    assert_ne!(
        drl.scores(&rows),
        Drl::untrained(78, workload(&tasks)).scores(&rows)
    );
    // Whole runs place every task on the same node.
    let seeds = [1, 2];
    assert_eq!(
        mean_alloc(&drl, &nodes, &tasks, &seeds),
        mean_alloc(&loaded, &nodes, &tasks, &seeds)
    );
}

#[test]
fn bad_model_files_are_typed_errors_naming_the_file() {
    let workload = Arc::new(TargetWorkload::default());
    let good = temp_file("good.safetensors");
    Drl::untrained(1, Arc::clone(&workload))
        .save(&good)
        .unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let missing = temp_file("missing.safetensors");
    let truncated = temp_file("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = temp_file("garbage.safetensors");
    std::fs::write(&garbage, b"not a model").unwrap();
    // A model for 19 features: every tensor present, the first the wrong shape.
    let wrong_shape = temp_file("wrong_shape.safetensors");
    write_safetensors(&wrong_shape, &[("0.weight", vec![32, 19])]);
    let wrong_type = temp_file("wrong_type.safetensors");
    write_safetensors_f64(&wrong_type, "0.weight", &[32, lepton::policies::FEATURES]);

    let cases = [
        (&missing, "No such file"),
        (&truncated, "not a safetensors file"),
        (&garbage, "not a safetensors file"),
        (&wrong_shape, "has shape [32, 19], expected [32, 20]"),
        (&wrong_type, "is F64, expected F32"),
    ];
    for (path, reason) in cases {
        let err = Drl::load(path, Arc::clone(&workload)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(reason), "{text}");
        assert!(matches!(err, lepton::policies::Error::Model { .. }));
        // The registry says the same, through the context's model path.
        let context = PolicyContext {
            model: Some(path.clone()),
            ..PolicyContext::default()
        };
        assert_eq!(build("drl", &context).unwrap_err(), err);
    }
}

/// Writes a safetensors file of the model's tensor names with zeros, the
/// shapes in `overrides` replacing the model's.
fn write_safetensors(path: &std::path::Path, overrides: &[(&str, Vec<usize>)]) {
    let f = lepton::policies::FEATURES;
    let h = lepton::policies::drl::HIDDEN;
    let shapes = [
        ("0.weight", vec![h, f]),
        ("0.bias", vec![h]),
        ("2.weight", vec![h, h]),
        ("2.bias", vec![h]),
        ("4.weight", vec![1, h]),
        ("4.bias", vec![1]),
    ];
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .map(|(name, shape)| {
            let shape = overrides
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(shape, |(_, s)| s.clone());
            let len: usize = shape.iter().product();
            (name.to_owned(), shape, vec![0u8; len * 4])
        })
        .collect();
    write_raw(path, &tensors, "F32");
}

fn write_safetensors_f64(path: &std::path::Path, name: &str, shape: &[usize]) {
    let len: usize = shape.iter().product();
    write_raw(
        path,
        &[(name.to_owned(), shape.to_vec(), vec![0u8; len * 8])],
        "F64",
    );
}

/// The safetensors layout: an 8-byte little-endian header length, a JSON
/// header with each tensor's dtype, shape and byte range, then the data.
fn write_raw(path: &std::path::Path, tensors: &[(String, Vec<usize>, Vec<u8>)], dtype: &str) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, bytes) in tensors {
        let start = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::Value::Object(header).to_string();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&data);
    std::fs::write(path, file).unwrap();
}

#[test]
fn online_learning_updates_the_network_from_outcomes() {
    let (nodes, tasks) = small_gpu_cluster();
    let mut cluster = ClusterState::new();
    for node in &nodes {
        cluster.add_node(node.clone()).unwrap();
    }
    let probe: Vec<[f32; lepton::policies::FEATURES]> = (0..4)
        .map(|i| [i as f32 / 4.0; lepton::policies::FEATURES])
        .collect();
    let mut learning = Drl::untrained(3, workload(&tasks)).learn_online(0.05);
    let mut frozen = Drl::untrained(3, workload(&tasks));
    let before = learning.scores(&probe);
    assert_eq!(before, frozen.scores(&probe));

    let task = &tasks[0];
    for drl in [&mut learning, &mut frozen] {
        let placement = drl.decide(task, &cluster).unwrap();
        let feedback = Feedback {
            task,
            node: placement.node,
            outcome: Outcome::TimedOut,
            started: Timestamp(0),
            ended: Timestamp::from_secs(60),
        };
        drl.observe(&feedback);
        // A second report of the same task finds no open decision.
        let after_first = drl.scores(&probe);
        drl.observe(&feedback);
        assert_eq!(after_first, drl.scores(&probe));
    }
    assert_ne!(
        learning.scores(&probe),
        before,
        "a timeout should move the weights"
    );
    assert_eq!(
        frozen.scores(&probe),
        before,
        "without online learning nothing moves"
    );
    // An outcome for a task it never placed changes nothing.
    let moved = learning.scores(&probe);
    learning.observe(&Feedback {
        task: &tasks[1],
        node: nodes[0].id,
        outcome: Outcome::Completed,
        started: Timestamp(0),
        ended: Timestamp::from_secs(60),
    });
    assert_eq!(learning.scores(&probe), moved);
}

#[test]
fn the_shipped_model_schedules_the_trace_well() {
    let (nodes, tasks) = paper_cluster_and_pods("default");
    let (workload, context) = paper_context(&tasks);
    let drl = build("drl", &context).unwrap();
    assert_eq!(drl.name(), "drl");
    let config = FillConfig { seed: 7, tune: 1.3 };
    let result = run_fill(&nodes, &tasks, &workload, drl, &config).unwrap();
    let fgd = run_fill(
        &nodes,
        &tasks,
        &workload,
        build("fgd", &context).unwrap(),
        &config,
    )
    .unwrap();
    // Within a point of FGD on a seed it was not trained on (RESULTS.md has
    // the evaluation over seeds 42–51).
    assert!(
        result.alloc_pct_at_100 > fgd.alloc_pct_at_100 - 1.0,
        "drl {:.2}% vs fgd {:.2}%",
        result.alloc_pct_at_100,
        fgd.alloc_pct_at_100
    );
}

#[test]
fn training_in_a_fleet_pays_minus_the_cost_and_refuses_the_report_seeds() {
    // A small data center: 20 VMs, 300 tasks over six hours.
    let day = DatacenterConfig {
        vms: 20,
        tasks: 300,
        hours: 6,
        seed: 101,
        ..DatacenterConfig::default()
    };
    let mut env_config = EnvConfig::default();
    env_config.reward = Reward::Cost;
    env_config.slo_penalty_usd = 20.0;
    let mut env = FleetEnv::datacenter(day, env_config).unwrap();
    let workload = Arc::clone(env.workload());
    let mut config = TrainConfig::default();
    config.imitation_episodes = 1;
    config.episodes = 1;
    config.validation_episodes = 1;
    config.seed = 1_000;
    let untrained = Drl::untrained(config.seed, Arc::clone(&workload));
    let (trained, history) = train(&mut env, untrained.clone(), &config, |_| {}).unwrap();
    assert_eq!(history.len(), 2);
    // The return is minus the day's cost and the penalties: the report's.
    let reward = play_greedy(&mut env, &trained, 1_000).unwrap();
    let report = env.report().unwrap();
    let avoidable = report.deadline_misses - report.unavoidable_misses;
    let penalized = (report.slo_violations + avoidable) as f64 * 20.0;
    assert!(report.cost > 0.0);
    assert!(
        (reward + report.cost + penalized).abs() < 1e-6 * report.cost,
        "{reward} {report:?}"
    );
    assert_eq!(report.lost + report.ran_twice + report.overcommitted, 0);

    // Seeds 4..=5 (and validation on 6) would reach the report seeds 1–5.
    config.seed = 4;
    let err = train(&mut env, untrained, &config, |_| {}).unwrap_err();
    let evaluation = lepton::sim::Error::EvaluationSeed {
        seed: 4,
        first: 1,
        last: 5,
    };
    assert_eq!(err, evaluation);
    assert!(err.to_string().contains("1-5"), "{err}");
}
