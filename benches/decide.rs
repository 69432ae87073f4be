// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

//! `decide`: one scheduling decision — select, reserve, then release so the
//! state stays steady — on a synthetic heterogeneous cluster filled to about
//! 60%, per policy, with the node count as the parameter. The baseline
//! `bestfit_linear_scan` makes best fit's choice by scanning every node.
//! `fgd` reads its choice from its ranking of the nodes (see
//! `GrowthIndex`), `drl` is the learned policy with its shipped model (64
//! candidates, FGD's best, the network scoring each). `lifetime` scans every feasible node (kube's
//! most-allocated score, then the node's expected end), with a lifetime
//! learned for the probe's kind.
//!
//! Run: `cargo bench --bench decide`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lepton::policies::{
    task_kind, BestFit, DotProduct, Drl, Fgd, FirstFit, LifetimeAware, LifetimePredictor, Spread,
};
use lepton::{ClusterState, Policy, TaskSpec};

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

criterion_group!(benches, decide);
criterion_main!(benches);
