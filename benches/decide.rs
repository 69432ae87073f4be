// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

//! `decide`: one scheduling decision — select, reserve, then release so the
//! state stays steady — on a synthetic heterogeneous cluster filled to about
//! 60%, per policy, with the node count as the parameter. The baseline
//! `bestfit_linear_scan` makes best fit's choice by scanning every node.
//! `fgd` reads its choice from its ranking of the nodes (see
//! `GrowthIndex`), `drl` is the learned policy with its shipped model (64
//! candidates, FGD's best, the network scoring each). `lifetime` reads the
//! nodes ranked by kube's most-allocated score, then the best ones'
//! expected ends, with a lifetime learned for the probe's kind.
//!
//! `network/drl/64`: the shipped `drl` network alone scoring one
//! decision's 64 candidate rows, to read beside `decide/drl/N`.
//!
//! `admission/drf/Q`: one admission decision among `Q` tenant queues
//! (`lepton_core::admission`: quotas on a two-level path, DRF among the
//! queues) on a fully admitted cluster, per iteration one task ending,
//! one submitted and the fairest queue's first task admitted; to read
//! beside `decide/bestfit/10000`, the placement that follows it.
//!
//! Run: `cargo bench --bench decide`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lepton::admission::{Admission, Amounts, Limits, QueueSpec};
use lepton::policies::{
    task_kind, BestFit, DotProduct, Drl, Fgd, FirstFit, LifetimeAware, LifetimePredictor, Spread,
    FEATURES,
};
use lepton::rng::SeededRng;
use lepton::{ClusterState, Policy, Resources, TaskId, TaskSpec};

mod support;

fn decide(c: &mut Criterion) {
    let probe = support::probe();
    let workload = Arc::new(support::workload());
    let mut group = c.benchmark_group("decide");
    for nodes in [100u64, 1_000, 10_000, 100_000] {
        let mut cluster = support::cluster_60(nodes);
        let mut policies: Vec<(&str, Box<dyn Policy>)> = vec![
            ("firstfit", Box::new(FirstFit)),
            ("bestfit", Box::new(BestFit)),
            ("spread", Box::new(Spread)),
            ("dotprod", Box::new(DotProduct::default())),
            ("lifetime", Box::new(lifetime(&probe))),
            (
                "bestfit_linear_scan",
                Box::new(support::bestfit_linear_scan()),
            ),
        ];
        policies.push(("fgd", Box::new(Fgd::new(Arc::clone(&workload)))));
        let drl = Drl::trained(Arc::clone(&workload)).expect("the shipped model loads");
        policies.push(("drl", Box::new(drl)));
        for (name, mut policy) in policies {
            group.bench_with_input(BenchmarkId::new(name, nodes), &nodes, |b, _| {
                b.iter(|| decide_once(&mut policy, &probe, &mut cluster))
            });
        }
    }
    group.finish();
}

/// The `lifetime` policy, having seen ten tasks like `probe` live an hour.
fn lifetime(probe: &TaskSpec) -> LifetimeAware {
    let mut history = LifetimePredictor::new();
    for _ in 0..10 {
        history.observe(&task_kind(probe), 3_600.0);
    }
    LifetimeAware::with_history(history)
}

fn decide_once(policy: &mut Box<dyn Policy>, task: &TaskSpec, cluster: &mut ClusterState) {
    // One decision as the scheduler makes it: the view of feasible nodes
    // (these policies have no filter), then the policy's choice.
    let choice = policy.select(&cluster.feasible(black_box(task), None));
    if let Some(placement) = choice {
        cluster
            .reserve(task, &placement)
            .expect("the policy chose a feasible node");
        cluster.release(task.id).expect("just reserved");
    }
}

fn admission(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission");
    for queues in [10u64, 1_000] {
        let mut admission = Admission::new();
        let names: Vec<String> = (0..queues)
            .map(|q| format!("org-{}/team-{q}", q % 10))
            .collect();
        for org in 0..10.min(queues) {
            let max = Limits::cpu_milli(queues * 1_000);
            let org = QueueSpec::new(format!("org-{org}")).with_max(max);
            admission.add_queue(org).expect("a valid queue");
        }
        for (q, name) in names.iter().enumerate() {
            let weight = 1.0 + (q % 3) as f64;
            let spec = QueueSpec::new(name.clone()).with_weight(weight);
            admission.add_queue(spec).expect("a valid queue");
        }
        // Task `id` goes to queue `id % queues`. The caller holds the
        // tasks' specs: one here, its id changed.
        let mut task = TaskSpec::new(TaskId(0), Resources::new(1_000, 2_048));
        let queue_of = |id: u64| &names[(id % queues) as usize];
        let mut next = 0;
        while next < queues * 20 {
            task.id = TaskId(next);
            admission
                .submit(queue_of(next), &task)
                .expect("a valid task");
            next += 1;
        }
        // Room for five tasks a queue: the cluster is then fully admitted.
        let capacity = Amounts {
            cpu_milli: queues * 5_000,
            memory_mib: queues * 5 * 2_048,
            gpu_milli: 0,
        };
        let mut running: VecDeque<TaskId> = admission.admit(capacity).into();
        group.bench_with_input(BenchmarkId::new("drf", queues), &queues, |b, _| {
            b.iter(|| {
                if let Some(ended) = running.pop_front() {
                    admission.ended(ended);
                    task.id = TaskId(next);
                    admission
                        .submit(queue_of(next), &task)
                        .expect("a valid task");
                    next += 1;
                }
                running.extend(admission.admit(black_box(capacity)));
            })
        });
    }
    group.finish();
}

/// `network/drl/64`: the shipped network scoring one decision's 64
/// candidate rows, nothing else — the floor of a `drl` decision.
fn network(c: &mut Criterion) {
    let drl = Drl::trained(Arc::new(support::workload())).expect("the shipped model loads");
    let mut rng = SeededRng::new(9);
    let rows: Vec<[f32; FEATURES]> = (0..drl.max_candidates())
        .map(|_| std::array::from_fn(|_| rng.uniform() as f32))
        .collect();
    let mut group = c.benchmark_group("network");
    group.bench_function(BenchmarkId::new("drl", rows.len()), |b| {
        b.iter(|| drl.scores(black_box(&rows)))
    });
    group.finish();
}

criterion_group!(benches, decide, admission, network);
criterion_main!(benches);
