// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

//! Decision latency: one scheduling decision (select, reserve, then release
//! so the state stays steady) on a synthetic heterogeneous cluster filled to
//! about 60%, per policy, with the node count as the parameter.
//!
//! Run: `cargo bench --bench decide`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lepton::policies::{BestFit, FirstFit, Spread};
use lepton::{
    ClusterState, GpuRequest, Gpus, NodeId, NodeSpec, Placement, Policy, Resources, TaskId,
    TaskSpec,
};

/// A small deterministic generator, so every run benches the same cluster.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// `nodes` nodes of a few shapes, filled to about 60% CPU by first fit.
fn cluster(nodes: u64) -> ClusterState {
    let mut rng = Lcg(42);
    let mut cluster = ClusterState::new();
    for id in 0..nodes {
        let (cpu_milli, gpus) =
            [(32_000, 0), (64_000, 2), (96_000, 8), (128_000, 4)][rng.below(4) as usize];
        let spec = NodeSpec::new(NodeId(id), Resources::new(cpu_milli, cpu_milli * 4)).with_gpus(
            if gpus > 0 {
                Gpus::new("V100M32", gpus)
            } else {
                Gpus::none()
            },
        );
        cluster.add_node(spec).expect("valid node");
    }
    let mut task_id = 0;
    while cluster.utilization().cpu < 0.6 {
        task_id += 1;
        let task = background_task(task_id, &mut rng);
        match FirstFit.select(&task, &cluster) {
            Some(placement) => {
                cluster.reserve(&task, &placement).expect("first fit fits");
            }
            None => break,
        }
    }
    cluster
}

fn background_task(id: u64, rng: &mut Lcg) -> TaskSpec {
    let cpu_milli = 1_000 * (1 + rng.below(16));
    let gpu = match rng.below(4) {
        0 => GpuRequest::shared(100 * (1 + rng.below(9) as u32)),
        1 => GpuRequest::whole(1),
        _ => GpuRequest::NONE,
    };
    TaskSpec::new(TaskId(id), Resources::new(cpu_milli, cpu_milli * 2)).with_gpu(gpu)
}

fn decide(c: &mut Criterion) {
    let task = TaskSpec::new(TaskId(u64::MAX), Resources::new(4_000, 8_192))
        .with_gpu(GpuRequest::shared(500));
    let mut group = c.benchmark_group("decide");
    for nodes in [100u64, 1_000, 10_000] {
        let mut cluster = cluster(nodes);
        let policies: [(&str, Box<dyn Policy>); 3] = [
            ("firstfit", Box::new(FirstFit)),
            ("bestfit", Box::new(BestFit)),
            ("spread", Box::new(Spread)),
        ];
        for (name, mut policy) in policies {
            group.bench_with_input(BenchmarkId::new(name, nodes), &nodes, |b, _| {
                b.iter(|| decide_once(&mut policy, &task, &mut cluster))
            });
        }
    }
    group.finish();
}

fn decide_once(policy: &mut Box<dyn Policy>, task: &TaskSpec, cluster: &mut ClusterState) {
    let placement: Option<Placement> = policy.select(black_box(task), cluster);
    if let Some(placement) = placement {
        cluster
            .reserve(task, &placement)
            .expect("the policy chose a feasible node");
        cluster.release(task.id).expect("just reserved");
    }
}

criterion_group!(benches, decide);
criterion_main!(benches);
