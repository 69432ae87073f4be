//! Greedy policies: each scores every feasible node once and keeps the best.
//!
//! Scores are small integers, as in kube-scheduler (and in the FGD paper's
//! simulator built on it), so nodes often tie; ties go to the earliest node
//! in cluster order, as in that simulator (whose seed permutes node order to
//! vary tie-breaking). With these ties FGD packs like first fit when the
//! fragmentation gradient is flat, which is what its published results
//! show; breaking ties at random instead costs FGD about 5 points of GPU
//! allocation on the Alibaba trace.

mod balanced;
mod best_fit;
mod dot_product;
mod fgd;
mod first_fit;
mod gpu_clustering;
mod gpu_packing;
mod kube;
mod lifetime_aware;
mod random;
#[cfg(test)]
mod ranked_props;
mod round_robin;
mod spread;

pub use balanced::Balanced;
pub(crate) use balanced::{balance, usage_after};
pub use best_fit::BestFit;
pub use dot_product::DotProduct;
pub use fgd::Fgd;
pub use first_fit::FirstFit;
pub use gpu_clustering::GpuClustering;
pub(crate) use gpu_packing::score as gpu_packing_score;
pub use gpu_packing::GpuPacking;
pub use kube::KubeResources;
pub use lifetime_aware::LifetimeAware;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use spread::Spread;

use std::hash::Hash;

use lepton_core::cluster::{ClusterNode, LargestNode, NodeRankings};
use lepton_core::FeasibleNodes;

/// `amount / norm`, 0 when there is nothing to normalise by.
fn share(amount: u64, norm: u64) -> f64 {
    if norm == 0 {
        0.0
    } else {
        amount as f64 / norm as f64
    }
}

/// The feasible node with the highest score (with what the score function
/// returned beside it), the earliest one on ties. Nodes scored `None` are
/// skipped.
pub(crate) fn best_scoring<'a, T>(
    nodes: &FeasibleNodes<'a>,
    mut score: impl FnMut(&'a ClusterNode) -> Option<(i64, T)>,
) -> Option<(&'a ClusterNode, T)> {
    let mut best: Option<(i64, &ClusterNode, T)> = None;
    for node in nodes.iter() {
        let Some((score, payload)) = score(node) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _, _)| score > *b) {
            best = Some((score, node, payload));
        }
    }
    best.map(|(_, node, payload)| (node, payload))
}

/// [`best_scoring`]'s answer without a scan, for scores (0..=100) that read
/// only the task's kind `K` (which must determine its CPU and GPU request),
/// the node's state and the largest node: the nodes kept ranked per kind
/// ([`NodeRankings`]), re-scored only when they change.
#[derive(Debug, Clone)]
pub(crate) struct RankedScores<K> {
    rankings: NodeRankings<K>,
    /// The largest node the rankings were scored against.
    largest: LargestNode,
}

impl<K> Default for RankedScores<K> {
    fn default() -> Self {
        RankedScores {
            rankings: NodeRankings::default(),
            largest: LargestNode::default(),
        }
    }
}

impl<K: Hash + Eq> RankedScores<K> {
    /// The feasible node with the highest `score`, the earliest on ties.
    pub(crate) fn best<'a>(
        &mut self,
        kind: K,
        nodes: &FeasibleNodes<'a>,
        mut score: impl FnMut(&ClusterNode) -> i64,
    ) -> Option<&'a ClusterNode> {
        let largest = nodes.cluster().largest_node();
        if largest != self.largest {
            self.largest = largest;
            self.rankings.clear();
        }
        let mut ranked = self.rankings.walk(kind, nodes, |_, node| Some(score(node)));
        ranked.next().map(|(_, node)| node)
    }
}

/// A score in 0..=100 from a fraction, truncated like the paper's `int64(x * 100)`.
pub(crate) fn percent(fraction: f64) -> i64 {
    (fraction * 100.0) as i64
}

#[cfg(test)]
mod tests {
    use lepton_core::model::GpuModel;
    use lepton_core::{
        ClusterState, GpuRequest, Gpus, NodeId, NodeSpec, Placement, Policy, Resources, TaskId,
        TaskSpec,
    };

    use super::*;

    /// Node 1: 64 cores, 2 GPUs. Node 2: 128 cores, 8 GPUs (the largest).
    /// Node 3: 16 cores, no GPU. Task 100 already uses 40 cores and one
    /// whole GPU on node 1, so its free CPU is 24 cores and 1 GPU.
    fn cluster() -> ClusterState {
        let mut cluster = ClusterState::new();
        let nodes = [
            NodeSpec::new(NodeId(1), Resources::new(64_000, 262_144))
                .with_gpus(Gpus::new("V100M16", 2)),
            NodeSpec::new(NodeId(2), Resources::new(128_000, 786_432))
                .with_gpus(Gpus::new("V100M32", 8)),
            NodeSpec::new(NodeId(3), Resources::new(16_000, 65_536)),
        ];
        for node in nodes {
            cluster.add_node(node).unwrap();
        }
        let busy = TaskSpec::new(TaskId(100), Resources::new(40_000, 1_024))
            .with_gpu(GpuRequest::whole(1));
        cluster.reserve(&busy, &Placement::on(NodeId(1))).unwrap();
        cluster
    }

    fn task(cpu_milli: u64, gpu: GpuRequest) -> TaskSpec {
        TaskSpec::new(TaskId(1), Resources::new(cpu_milli, 1_024)).with_gpu(gpu)
    }

    fn select(mut policy: impl Policy, task: &TaskSpec, cluster: &ClusterState) -> Option<NodeId> {
        policy.decide(task, cluster).map(|placement| placement.node)
    }

    #[test]
    fn leftover_matches_a_hand_computation() {
        let cluster = cluster();
        let share = task(8_000, GpuRequest::shared(500));
        // Node 1: CPU (24000 - 8000) / 128000 = 0.125; GPU (1000 - 500) / 8000 = 0.0625.
        let node1 = cluster.node(NodeId(1)).unwrap();
        let expected = 0.5 * 0.125 + 0.5 * 0.0625;
        let leftover = |node| cluster.feasible(&share, None).leftover_share(node);
        assert!((leftover(node1) - expected).abs() < 1e-12);
        // Node 2: CPU 120000 / 128000 = 0.9375; GPU 7500 / 8000 = 0.9375.
        let node2 = cluster.node(NodeId(2)).unwrap();
        assert!((leftover(node2) - 0.9375).abs() < 1e-12);
    }

    #[test]
    fn best_fit_packs_spread_spreads_first_fit_takes_the_first() {
        let cluster = cluster();
        let share = task(8_000, GpuRequest::shared(500));
        assert_eq!(select(BestFit, &share, &cluster), Some(NodeId(1)));
        assert_eq!(select(Spread, &share, &cluster), Some(NodeId(2)));
        assert_eq!(select(FirstFit, &share, &cluster), Some(NodeId(1)));

        // CPU-only, 10 cores: node 3 leaves ½·6000/128000 and no GPU, the
        // least; node 2 leaves the most.
        let cpu_only = task(10_000, GpuRequest::NONE);
        assert_eq!(select(BestFit, &cpu_only, &cluster), Some(NodeId(3)));
        assert_eq!(select(Spread, &cpu_only, &cluster), Some(NodeId(2)));
        assert_eq!(select(FirstFit, &cpu_only, &cluster), Some(NodeId(1)));
    }

    #[test]
    fn dot_product_prefers_free_capacity_unlike_the_request() {
        let cluster = cluster();
        // A GPU-heavy task: node 1 has little GPU left, node 2 a lot, node 3 none.
        // Node 1: dot = (24000/128000)(4000/128000) + (1000/8000)(1000/8000)
        //         = 0.005859 + 0.015625 = 0.02148 → ⌊(1 − 0.01074)·100⌋ = 98.
        // Node 2: dot = (1)(0.03125) + (1)(0.125) = 0.15625 → ⌊92.19⌋ = 92.
        let gpu_task = task(4_000, GpuRequest::whole(1));
        assert_eq!(
            select(DotProduct::default(), &gpu_task, &cluster),
            Some(NodeId(1))
        );
    }

    #[test]
    fn gpu_count_and_model_constraints_filter_nodes() {
        let cluster = cluster();
        // Two whole GPUs: node 1 has only one left.
        let two_gpus = task(1_000, GpuRequest::whole(2));
        assert_eq!(select(BestFit, &two_gpus, &cluster), Some(NodeId(2)));
        assert_eq!(select(FirstFit, &two_gpus, &cluster), Some(NodeId(2)));
        // Only V100M16 is accepted: node 1 even though spread prefers node 2.
        let pinned =
            task(1_000, GpuRequest::shared(100)).with_gpu_models([GpuModel::new("V100M16")]);
        assert_eq!(select(Spread, &pinned, &cluster), Some(NodeId(1)));
        // Nothing has 9 GPUs.
        let too_big = task(1_000, GpuRequest::whole(9));
        let context = crate::registry::tests::full_context();
        for name in crate::registry::tests::buildable_names() {
            let policy = crate::build(name, &context).unwrap();
            assert_eq!(select(policy, &too_big, &cluster), None, "{name}");
        }
    }

    #[test]
    fn ties_go_to_the_earliest_node() {
        let mut cluster = ClusterState::new();
        for id in [7, 3, 5] {
            cluster
                .add_node(NodeSpec::new(NodeId(id), Resources::new(4_000, 4_096)))
                .unwrap();
        }
        let task = task(1_000, GpuRequest::NONE);
        for name in [
            "bestfit",
            "spread",
            "balanced",
            "dotprod",
            "packing",
            "clustering",
            "fgd",
        ] {
            let policy = crate::by_name(name).unwrap();
            assert_eq!(select(policy, &task, &cluster), Some(NodeId(7)), "{name}");
        }
    }

    #[test]
    fn random_is_reproducible_per_seed() {
        let mut cluster = ClusterState::new();
        for id in 1..=3 {
            cluster
                .add_node(NodeSpec::new(NodeId(id), Resources::new(4_000, 4_096)))
                .unwrap();
        }
        let task = task(1_000, GpuRequest::NONE);
        let picks = |seed| {
            let mut random = Random::default();
            random.reseed(seed);
            (0..60)
                .map(|_| select(&mut random, &task, &cluster).unwrap())
                .collect::<Vec<_>>()
        };
        let first = picks(1);
        assert_eq!(first, picks(1));
        assert_ne!(first, picks(2));
        for id in 1..=3 {
            let count = first.iter().filter(|&&n| n == NodeId(id)).count();
            assert!(
                (10..=30).contains(&count),
                "node {id} picked {count} times of 60"
            );
        }
    }

    #[test]
    fn random_is_uniform_when_few_nodes_are_feasible() {
        // 3 of 60 nodes have room: draws from the whole cluster mostly
        // miss, and the choice among the feasible ones must stay uniform.
        let mut cluster = ClusterState::new();
        for id in 1..=60 {
            let cores = if id % 20 == 0 { 8_000 } else { 1_000 };
            cluster
                .add_node(NodeSpec::new(NodeId(id), Resources::new(cores, 4_096)))
                .unwrap();
        }
        let task = task(4_000, GpuRequest::NONE);
        let mut random = Random::default();
        random.reseed(3);
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..600 {
            *counts
                .entry(select(&mut random, &task, &cluster).unwrap())
                .or_insert(0) += 1;
        }
        assert_eq!(
            counts.keys().copied().collect::<Vec<_>>(),
            [NodeId(20), NodeId(40), NodeId(60)]
        );
        for (node, count) in counts {
            assert!(
                (150..=250).contains(&count),
                "{node:?} picked {count} times of 600"
            );
        }
    }

    #[test]
    fn random_spreads_over_feasible_nodes_and_their_gpus() {
        let cluster = cluster();
        let mut random = Random::default();
        random.reseed(9);
        let share = task(1_000, GpuRequest::shared(300));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let placement = random.decide(&share, &cluster).unwrap();
            let gpus = placement.gpus.clone().unwrap();
            let node = cluster.node(placement.node).unwrap();
            assert!(node.gpu_free_milli()[gpus[0] as usize] >= 300);
            seen.insert((placement.node, gpus[0]));
        }
        // Node 1 has one GPU with room, node 2 eight, node 3 none.
        assert_eq!(seen.len(), 9);
    }
}
