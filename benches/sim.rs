// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

//! `sim`: the whole fill experiment (shuffle, inflate to 1.3× the GPUs,
//! place every task through the scheduler) on a synthetic 1000-node
//! cluster, with best fit; throughput in arrival events per second.
//!
//! `sim/gym_fill_episode/1213`: one episode of the gym environment on the
//! Alibaba trace's 1,213-node cluster (default pods, seed 7), each decision's
//! observation built for up to 64 candidates and the first candidate taken
//! (no network): throughput in environment steps per second.
//! `sim/gym_timed_episode/1213`: the same in timed mode (the trace replayed
//! in time, no timeouts), where the replay runs on its own thread and each
//! decision crosses a channel both ways.
//!
//! `sim/load_workload/N`: parsing and validating a JSON workload of N
//! synthetic tasks (`lepton_sim::synthetic_workload`, pretty-printed as a
//! user's file would be) from memory; throughput in bytes per second.
//!
//! Run: `cargo bench --bench sim`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lepton::policies::BestFit;
use std::sync::Arc;

use lepton::fragmentation::TargetWorkload;
use lepton::model::GPU_MILLI_PER_GPU;
use lepton::rng::SeededRng;
use lepton::sim::gym::{EnvConfig, FillEnv, Observation, TimedEnv};
use lepton::sim::{
    fill_arrivals, parse_workload, read_openb_nodes, read_openb_pods, run_fill, synthetic_nodes,
    synthetic_tasks, synthetic_workload, trace_dir, FillConfig, TimedConfig, TimedTask,
};

mod support;

fn sim(c: &mut Criterion) {
    let nodes = synthetic_nodes(1_000, 42);
    let tasks = synthetic_tasks(5_000, 11);
    let workload = support::workload();
    let config = FillConfig {
        seed: 42,
        tune: 1.3,
    };
    let capacity: u64 = nodes
        .iter()
        .map(|n| u64::from(n.gpus.count) * u64::from(GPU_MILLI_PER_GPU))
        .sum();
    let events = fill_arrivals(&tasks, capacity, &config, &mut SeededRng::new(config.seed)).len();
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events as u64));
    group.bench_with_input(
        BenchmarkId::new("fill_bestfit", 1_000),
        &nodes,
        |b, nodes| {
            b.iter(|| {
                run_fill(nodes, &tasks, &workload, Box::new(BestFit), &config).expect("valid run")
            })
        },
    );
    group.finish();
}

/// Plays one episode taking the first candidate; returns the steps.
fn episode<E>(
    env: &mut E,
    reset: impl Fn(&mut E) -> Option<Observation>,
    step: impl Fn(&mut E) -> Option<Observation>,
) -> u64 {
    let mut steps = 0;
    let mut observation = reset(env);
    while observation.is_some() {
        observation = step(env);
        steps += 1;
    }
    steps
}

fn fill_episode(env: &mut FillEnv) -> u64 {
    episode(
        env,
        |env| env.reset(7).expect("valid episode"),
        |env| env.step(0).expect("candidate 0 exists").observation,
    )
}

fn timed_episode(env: &mut TimedEnv) -> u64 {
    episode(
        env,
        |env| env.reset(7).expect("valid episode"),
        |env| env.step(0).expect("candidate 0 exists").observation,
    )
}

fn gym(c: &mut Criterion) {
    let dir = trace_dir().expect("the trace directory");
    let nodes = read_openb_nodes(&dir.join("openb_node_list_gpu_node.csv")).expect("node list");
    let pods = read_openb_pods(&dir.join("openb_pod_list_default.csv")).expect("pod list");
    let tasks: Vec<_> = pods.iter().map(|pod| pod.spec.clone()).collect();
    let timed_tasks = TimedTask::from_trace_pods(&pods).expect("the trace has times");
    let workload = Arc::new(TargetWorkload::from_tasks(&tasks, 0.95));
    let count = nodes.len();
    let mut fill = FillEnv::new(
        nodes.clone(),
        tasks,
        Arc::clone(&workload),
        EnvConfig::default(),
    )
    .expect("valid env");
    let mut timed = TimedEnv::new(
        nodes,
        timed_tasks,
        workload,
        TimedConfig::default(),
        EnvConfig::default(),
    )
    .expect("valid env");
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    group.throughput(Throughput::Elements(fill_episode(&mut fill)));
    group.bench_function(BenchmarkId::new("gym_fill_episode", count), |b| {
        b.iter(|| fill_episode(&mut fill))
    });
    group.throughput(Throughput::Elements(timed_episode(&mut timed)));
    group.bench_function(BenchmarkId::new("gym_timed_episode", count), |b| {
        b.iter(|| timed_episode(&mut timed))
    });
    group.finish();
}

fn load_workload(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    for tasks in [5_000, 20_000] {
        let workload = synthetic_workload(1_000, tasks, 42);
        let json = serde_json::to_string_pretty(&workload).expect("serializable");
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_function(BenchmarkId::new("load_workload", tasks), |b| {
            b.iter(|| parse_workload(&json, "bench.json").expect("valid workload"))
        });
    }
    group.finish();
}

criterion_group!(benches, sim, gym, load_workload);
criterion_main!(benches);
