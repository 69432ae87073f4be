// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

//! `sim`: the whole fill experiment (shuffle, inflate to 1.3× the GPUs,
//! place every task through the scheduler) on a synthetic 1000-node
//! cluster, with best fit; throughput in arrival events per second.
//!
//! Run: `cargo bench --bench sim`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lepton::policies::BestFit;
use lepton::sim::{fill_arrivals, run_fill, synthetic_nodes, synthetic_tasks, FillConfig};
use lepton::{SeededRng, GPU_MILLI_PER_GPU};

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

criterion_group!(benches, sim);
criterion_main!(benches);
