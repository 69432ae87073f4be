//! The ranked policies (`dotprod`, `packing`, `clustering`) against a scan
//! with their own score functions: after every change to a random cluster
//! — nodes added (a larger one changes the normalisation), removed,
//! drained, failed, back; tasks placed and released — each chooses the
//! node a scan chooses (highest score, earliest on ties).

use lepton_core::cluster::ClusterNode;
use lepton_core::model::NodeState;
use lepton_core::{
    ClusterState, GpuRequest, Gpus, NodeId, NodeSpec, Placement, Policy, Resources, TaskId,
    TaskSpec,
};
use proptest::prelude::*;
use proptest::sample::Index;

use super::{best_scoring, dot_product, gpu_clustering, gpu_packing};
use super::{DotProduct, GpuClustering, GpuPacking};

/// Task requests drawn: (cores, GPU share in milli or, above 1000, whole GPUs × 1000).
const REQUESTS: [(u64, u32); 6] = [(1, 0), (4, 0), (2, 250), (4, 500), (8, 1_000), (16, 2_000)];

fn task(id: u64, request: usize) -> TaskSpec {
    let (cores, gpu) = REQUESTS[request % REQUESTS.len()];
    let gpu = match gpu {
        0 => GpuRequest::NONE,
        milli if milli < 1_000 => GpuRequest::shared(milli),
        milli => GpuRequest::whole(milli / 1_000),
    };
    TaskSpec::new(TaskId(id), Resources::new(cores * 1_000, 1_024)).with_gpu(gpu)
}

#[derive(Debug, Clone)]
enum Op {
    Add(u64, u32),
    Remove(Index),
    SetState(Index, usize),
    Reserve(Index, usize),
    Release(Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (prop::sample::select(vec![8u64, 32, 64, 128]), 0u32..=8).prop_map(|(c, g)| Op::Add(c, g)),
        1 => any::<Index>().prop_map(Op::Remove),
        1 => (any::<Index>(), 0usize..3).prop_map(|(n, s)| Op::SetState(n, s)),
        6 => (any::<Index>(), 0..REQUESTS.len()).prop_map(|(n, r)| Op::Reserve(n, r)),
        3 => any::<Index>().prop_map(Op::Release),
    ]
}

/// Each ranked policy with the scan that must agree with it.
type Scored = fn(&TaskSpec, &ClusterNode, &ClusterState) -> i64;

fn policies() -> Vec<(Box<dyn Policy>, Scored)> {
    vec![
        (Box::new(DotProduct::default()), |t, n, c| {
            dot_product::score(t, n, c.largest_node())
        }),
        (Box::new(GpuPacking::default()), |t, n, _| {
            gpu_packing::score(t, n)
        }),
        (Box::new(GpuClustering::default()), |t, n, c| {
            gpu_clustering::score(t, n, c.largest_node().gpu_milli)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn ranked_policies_choose_as_a_scan_does(ops in prop::collection::vec(op(), 1..80)) {
        let mut cluster = ClusterState::new();
        let mut policies = policies();
        let (mut next_node, mut next_task, mut placed) = (0u64, 1_000u64, Vec::new());
        for op in &ops {
            let count = cluster.nodes().len();
            let pick = |index: &Index| (count > 0).then(|| cluster.nodes()[index.index(count)].id());
            match op {
                Op::Add(cores, gpus) => {
                    next_node += 1;
                    let gpus = if *gpus > 0 { Gpus::new("T4", *gpus) } else { Gpus::none() };
                    let spec = NodeSpec::new(NodeId(next_node), Resources::new(cores * 1_000, 65_536)).with_gpus(gpus);
                    cluster.add_node(spec).unwrap();
                }
                Op::Remove(index) => if let Some(id) = pick(index) {
                    let _ = cluster.remove_node(id); // refused while it holds tasks
                },
                Op::SetState(index, state) => if let Some(id) = pick(index) {
                    let state = [NodeState::Ready, NodeState::Cordoned, NodeState::Down][*state];
                    cluster.set_state(id, state).unwrap();
                },
                Op::Reserve(index, request) => if let Some(id) = pick(index) {
                    next_task += 1;
                    let task = task(next_task, *request);
                    if cluster.reserve(&task, &Placement::on(id)).is_ok() {
                        placed.push(task.id);
                    }
                },
                Op::Release(index) => if !placed.is_empty() {
                    let task = placed.swap_remove(index.index(placed.len()));
                    cluster.release(task).unwrap();
                },
            }
            for request in 0..REQUESTS.len() {
                let probe = task(u64::MAX, request);
                let feasible = cluster.feasible(&probe, None);
                for (policy, score) in &mut policies {
                    let expected = best_scoring(&feasible, |node| Some((score(&probe, node, &cluster), ())))
                        .map(|(node, ())| node.id());
                    let chosen = policy.select(&feasible).map(|placement| placement.node);
                    prop_assert_eq!(chosen, expected, "{} after {:?}", policy.name(), op);
                }
            }
        }
    }
}
