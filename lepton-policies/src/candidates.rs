//! What a learned policy sees of a decision: a few candidate nodes, each
//! described by one fixed-width row of numbers.
//!
//! The learned policy (module `drl`) and the simulator's gym environments
//! (`lepton-sim`, module `gym`) both build their observations here, so the
//! network is trained on exactly what it sees when it schedules. It is not
//! behind the `drl` feature: the gym environments need no network.
//!
//! What they see is documented on [`CandidateBuilder`].

use lepton_core::cluster::ClusterNode;
use lepton_core::fragmentation::{Growth, GrowthIndex, TargetWorkload};
use lepton_core::model::GPU_MILLI_PER_GPU;
use lepton_core::{FeasibleNodes, NodeId, Placement};

/// GPUs per node the per-GPU features describe (nodes with more are cut).
const GPU_SLOTS: usize = 8;

/// Width of a candidate's feature row.
pub const FEATURES: usize = 12 + GPU_SLOTS;

/// The features' names, in row order.
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "frag_growth_gpus",
    "fgd_score_below_best",
    "cpu_free_after",
    "memory_free_after",
    "gpu_free_after",
    "idle_gpus_after",
    "node_gpus",
    "in_use",
    "leftover_share",
    "rank",
    "task_gpus",
    "task_cpu_share",
    "gpu0_free_after",
    "gpu1_free_after",
    "gpu2_free_after",
    "gpu3_free_after",
    "gpu4_free_after",
    "gpu5_free_after",
    "gpu6_free_after",
    "gpu7_free_after",
];

/// Each feature's least and greatest value, in row order (see the table on
/// [`CandidateBuilder`]): fragmentation growth is clamped to ±8 GPUs, the
/// score gap spans FGD's 0..=100 over 10, node and task GPUs are at most
/// [`MAX_GPUS_PER_NODE`](lepton_core::model::MAX_GPUS_PER_NODE) over 8, and the
/// rest are shares from 0 to 1.
pub const FEATURE_BOUNDS: [(f32, f32); FEATURES] = {
    let gpus = lepton_core::model::MAX_GPUS_PER_NODE as f32 / GPU_SLOTS as f32;
    let mut bounds = [(0.0, 1.0); FEATURES];
    bounds[0] = (-8.0, 8.0);
    bounds[1] = (-10.0, 0.0);
    bounds[6] = (0.0, gpus);
    bounds[10] = (0.0, gpus);
    bounds
};

/// One node a task may go to, with its feature row.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Where the task would go: the node, and for a GPU share the GPU.
    pub placement: Placement,
    /// The node's fragmentation growth if the task goes there.
    pub growth: Growth,
    /// The feature row (see [`CandidateBuilder`]).
    pub features: [f32; FEATURES],
}

/// Builds candidate lists; keeps FGD's ranking between decisions.
///
/// # Candidates
/// Every node where the task fits is evaluated with FGD's fragmentation
/// gradient ([`TargetWorkload::growth`], the nodes kept ranked per shape by
/// [`GrowthIndex`]); the candidates are the `limit` nodes FGD ranks first
/// (highest [`fgd_score`](lepton_core::fragmentation::fgd_score), ties to
/// the earlier node), listed in cluster order. This pruning keeps a decision's cost independent of the
/// cluster's size, and FGD's own choice is always among the candidates (the
/// first with the best score); the choice among them is the network's.
/// (Ranking by the exact growth instead loses FGD's packing: with many
/// nodes tied on the integer score, the earliest of them — FGD's choice —
/// is often not among the least-growing 64.)
///
/// # Features
/// One row of [`FEATURES`] numbers per candidate, in this order
/// ([`FEATURE_NAMES`]); "after" means once the task is placed there:
///
/// | # | feature |
/// |---|---|
/// | 0 | fragmentation growth, GPUs (negative: it shrinks), clamped to ±8 |
/// | 1 | FGD's integer score ([`fgd_score`](lepton_core::fragmentation::fgd_score)) minus the best candidate's, / 10 |
/// | 2 | free CPU after / the node's CPU |
/// | 3 | free memory after / the node's memory |
/// | 4 | free GPU after / the node's GPU (0 without GPUs) |
/// | 5 | idle whole GPUs after / the node's GPUs |
/// | 6 | the node's GPUs / 8 |
/// | 7 | 1 when the node already holds a task |
/// | 8 | best-fit leftover share ([`FeasibleNodes::leftover_share`]) |
/// | 9 | the candidate's rank in cluster order / number of candidates |
/// | 10 | the task's GPUs / 8 |
/// | 11 | the task's CPU / the node's CPU |
/// | 12..20 | free milli-GPU of each GPU after, largest first, / 1000 (0 past the node's GPUs) |
#[derive(Debug, Clone, Default)]
pub struct CandidateBuilder {
    index: GrowthIndex,
    /// (position, growth) of the candidates, reused.
    scratch: Vec<(usize, Growth)>,
}

impl CandidateBuilder {
    /// A builder with an empty ranking.
    pub fn new() -> Self {
        CandidateBuilder::default()
    }

    /// Forgets the ranking: call it when the target workload changes.
    pub fn clear(&mut self) {
        self.index.clear();
    }

    /// Fills `out` with the candidates among `feasible` for its task (at
    /// most `limit`, in cluster order; see [`CandidateBuilder`]). Empty
    /// when there is no feasible node or `limit` is 0.
    pub fn build(
        &mut self,
        workload: &TargetWorkload,
        feasible: &FeasibleNodes<'_>,
        limit: usize,
        out: &mut Vec<Candidate>,
    ) {
        self.index
            .ranked(workload, feasible, limit, &mut self.scratch);
        self.scratch.sort_unstable_by_key(|&(position, _)| position);
        describe_candidates(feasible, &self.scratch, out);
    }
}

/// Fills `out` with one candidate per `(position, growth)` of `picks` (a
/// node's position in the cluster and the task's growth there), in the
/// order given, each with its row (see [`CandidateBuilder`]; the rank and
/// the score gap are taken among `picks`). For environments that choose
/// their candidates another way than FGD's ranking.
pub fn describe_candidates(
    feasible: &FeasibleNodes<'_>,
    picks: &[(usize, Growth)],
    out: &mut Vec<Candidate>,
) {
    out.clear();
    out.reserve(picks.len());
    let nodes = feasible.cluster().nodes();
    let count = picks.len() as f32;
    let best_score = picks
        .iter()
        .map(|&(_, growth)| growth.score)
        .max()
        .unwrap_or(0);
    for (rank, &(position, growth)) in picks.iter().enumerate() {
        let Some(node) = nodes.get(position) else {
            continue;
        };
        let row = Row {
            growth,
            score_below_best: growth.score - best_score,
            rank: rank as f32 / count,
        };
        let placement = match growth.gpu {
            Some(gpu) => Placement::on_gpus(node.id(), [gpu]),
            None => Placement::on(node.id()),
        };
        out.push(Candidate {
            placement,
            growth,
            features: row.features(feasible, node),
        });
    }
}

/// What a candidate's row is computed from, beside its node.
struct Row {
    growth: Growth,
    /// FGD's score minus the best candidate's.
    score_below_best: i64,
    /// The candidate's rank in cluster order / the number of candidates.
    rank: f32,
}

impl Row {
    /// The feature row (see [`CandidateBuilder`]) of placing the task of
    /// `feasible` on `node`.
    fn features(&self, feasible: &FeasibleNodes<'_>, node: &ClusterNode) -> [f32; FEATURES] {
        let task = feasible.task();
        let Growth { milli, gpu, .. } = self.growth;
        let spec = node.spec();
        let mut gpus: smallvec::SmallVec<[u32; 8]> =
            smallvec::SmallVec::from_slice(node.gpu_free_milli());
        let (count, milli_per_gpu) = (task.gpu.count as usize, task.gpu.milli_per_gpu);
        match gpu {
            Some(gpu) => {
                if let Some(free) = gpus.get_mut(gpu as usize) {
                    *free = free.saturating_sub(milli_per_gpu);
                }
            }
            None => {
                // The cluster takes the tightest GPUs with room
                // (`ClusterNode::tightest_gpus`); the row reads only how
                // much each GPU has free after, so take them in ascending
                // order: the first `count` with room.
                gpus.sort_unstable();
                let first = gpus.partition_point(|&free| free < milli_per_gpu);
                if let Some(taken) = gpus.get_mut(first..first + count) {
                    for free in taken {
                        *free -= milli_per_gpu;
                    }
                }
            }
        }
        let gpu_count = gpus.len();
        let gpu_free: u64 = gpus.iter().map(|&m| u64::from(m)).sum();
        let idle = gpus.iter().filter(|&&m| m >= GPU_MILLI_PER_GPU).count();
        let share = |amount: u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                amount as f32 / total as f32
            }
        };
        let cpu = spec.capacity.cpu_milli;
        let mut features = [0.0f32; FEATURES];
        features[0] = (milli / 1000.0).clamp(-8.0, 8.0) as f32;
        features[1] = self.score_below_best as f32 / 10.0;
        features[2] = share(
            node.free().cpu_milli.saturating_sub(task.request.cpu_milli),
            cpu,
        );
        features[3] = share(
            node.free()
                .memory_mib
                .saturating_sub(task.request.memory_mib),
            spec.capacity.memory_mib,
        );
        features[4] = share(gpu_free, gpu_count as u64 * u64::from(GPU_MILLI_PER_GPU));
        features[5] = share(idle as u64, gpu_count as u64);
        features[6] = gpu_count as f32 / GPU_SLOTS as f32;
        features[7] = if node.task_count() > 0 { 1.0 } else { 0.0 };
        features[8] = feasible.leftover_share(node) as f32;
        features[9] = self.rank;
        features[10] =
            task.gpu.total_milli() as f32 / (GPU_SLOTS as f32 * GPU_MILLI_PER_GPU as f32);
        features[11] = share(task.request.cpu_milli, cpu);
        gpus.sort_unstable_by(|a, b| b.cmp(a));
        for (slot, &free) in features[12..].iter_mut().zip(gpus.iter()) {
            *slot = free as f32 / GPU_MILLI_PER_GPU as f32;
        }
        features
    }
}

/// The node of each candidate, in order.
pub fn candidate_nodes(candidates: &[Candidate]) -> impl Iterator<Item = NodeId> + '_ {
    candidates.iter().map(|c| c.placement.node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lepton_core::{ClusterState, GpuRequest, Gpus, NodeSpec, Resources, TaskId, TaskSpec};

    fn cluster(nodes: u64) -> ClusterState {
        let mut cluster = ClusterState::new();
        for id in 1..=nodes {
            let spec = NodeSpec::new(NodeId(id), Resources::new(32_000, 65_536))
                .with_gpus(Gpus::new("T4", 2));
            cluster.add_node(spec).unwrap();
        }
        cluster
    }

    fn share(id: u64, milli: u32) -> TaskSpec {
        TaskSpec::new(TaskId(id), Resources::new(4_000, 1_024)).with_gpu(GpuRequest::shared(milli))
    }

    #[test]
    fn candidates_are_fgds_best_feasible_nodes_in_cluster_order() {
        let mut cluster = cluster(5);
        // Node 4 has a half-used GPU: a 500 share there shrinks fragmentation.
        cluster
            .reserve(&share(100, 500), &Placement::on_gpus(NodeId(4), [1]))
            .unwrap();
        // Node 2 is full on GPUs: a share does not fit.
        let whole =
            TaskSpec::new(TaskId(101), Resources::new(1_000, 1)).with_gpu(GpuRequest::whole(2));
        cluster.reserve(&whole, &Placement::on(NodeId(2))).unwrap();
        let tasks = [share(1, 500), share(2, 500), share(3, 1000)];
        let workload = TargetWorkload::from_tasks(&tasks, 1.0);
        let mut builder = CandidateBuilder::new();
        let mut out = Vec::new();
        let task = share(7, 500);
        builder.build(&workload, &cluster.feasible(&task, None), 2, &mut out);
        let nodes: Vec<NodeId> = candidate_nodes(&out).collect();
        // Node 4 grows least; the rest tie, so the earliest (node 1) joins.
        assert_eq!(nodes, vec![NodeId(1), NodeId(4)]);
        assert_eq!(out[1].placement, Placement::on_gpus(NodeId(4), [1]));
        assert!(out[1].growth.milli < out[0].growth.milli);
        // Row of node 4: the best FGD score; GPU 1 full after, GPU 0 idle;
        // second of two candidates.
        let row = &out[1].features;
        assert_eq!(row[0], (out[1].growth.milli / 1000.0) as f32);
        assert_eq!(row[4], 0.5);
        assert_eq!(row[5], 0.5);
        assert_eq!(row[7], 1.0);
        assert_eq!(row[1], 0.0);
        assert!(out[0].features[1] < 0.0);
        assert_eq!(row[9], 1.0 / 2.0);
        assert_eq!(&row[12..15], &[1.0, 0.0, 0.0]);
        // Without a limit every feasible node is a candidate (not node 2).
        builder.build(
            &workload,
            &cluster.feasible(&task, None),
            usize::MAX,
            &mut out,
        );
        let nodes: Vec<NodeId> = candidate_nodes(&out).collect();
        assert_eq!(nodes, vec![NodeId(1), NodeId(3), NodeId(4), NodeId(5)]);
    }

    #[test]
    fn features_stay_within_their_bounds_at_the_extremes() {
        use lepton_core::model::MAX_GPUS_PER_NODE;
        let mut cluster = ClusterState::new();
        let big = NodeSpec::new(NodeId(1), Resources::new(1_000, 1))
            .with_gpus(Gpus::new("T4", MAX_GPUS_PER_NODE));
        cluster.add_node(big).unwrap();
        let small =
            NodeSpec::new(NodeId(2), Resources::new(1_000, 1)).with_gpus(Gpus::new("T4", 1));
        cluster.add_node(small).unwrap();
        let all = TaskSpec::new(TaskId(1), Resources::new(1_000, 1))
            .with_gpu(GpuRequest::whole(MAX_GPUS_PER_NODE));
        let tiny = TaskSpec::new(TaskId(2), Resources::new(1, 1)).with_gpu(GpuRequest::shared(1));
        // Fragmentation measured against tasks that fit nowhere once a
        // sliver is taken: growth is large, the score gap wide.
        let workload = TargetWorkload::from_tasks([&all], 1.0);
        let mut builder = CandidateBuilder::new();
        let mut out = Vec::new();
        let mut seen = 0;
        for task in [&all, &tiny] {
            builder.build(
                &workload,
                &cluster.feasible(task, None),
                usize::MAX,
                &mut out,
            );
            for candidate in &out {
                for (value, (low, high)) in candidate.features.iter().zip(FEATURE_BOUNDS) {
                    assert!(
                        (low..=high).contains(value),
                        "{value} outside {low}..={high}"
                    );
                }
                seen += 1;
            }
        }
        assert_eq!(seen, 3);
        // The largest node and task reach the GPU bounds exactly.
        builder.build(&workload, &cluster.feasible(&all, None), 1, &mut out);
        assert_eq!(out[0].features[6], FEATURE_BOUNDS[6].1);
        assert_eq!(out[0].features[10], FEATURE_BOUNDS[10].1);
    }

    #[test]
    fn no_candidates_when_nothing_fits_or_no_limit() {
        let cluster = cluster(2);
        let workload = TargetWorkload::from_tasks([&share(1, 500)], 1.0);
        let mut builder = CandidateBuilder::new();
        let mut out = vec![];
        let huge = TaskSpec::new(TaskId(9), Resources::new(64_000, 1));
        builder.build(&workload, &cluster.feasible(&huge, None), 8, &mut out);
        assert!(out.is_empty());
        let task = share(2, 500);
        builder.build(&workload, &cluster.feasible(&task, None), 0, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn gpu_columns_describe_the_node_as_the_cluster_leaves_it() {
        // Eight-GPU nodes with GPUs partly used in different ways; whole,
        // multi-GPU and shared tasks; every candidate's GPU columns equal
        // the node's GPUs once the cluster has placed the task there.
        let mut cluster = ClusterState::new();
        for id in 1..=6 {
            let spec = NodeSpec::new(NodeId(id), Resources::new(96_000, 393_216))
                .with_gpus(Gpus::new("V100", 8));
            cluster.add_node(spec).unwrap();
        }
        let mut next = 100;
        for (node, gpus) in [
            (2, &[0, 3][..]),
            (3, &[1, 2, 5]),
            (4, &[7]),
            (5, &[0, 1, 2, 3]),
        ] {
            for (i, &gpu) in gpus.iter().enumerate() {
                next += 1;
                let milli = [300, 500, 1000, 250][i % 4];
                let task = share(next, milli);
                let placement = Placement::on_gpus(NodeId(node), [gpu]);
                cluster.reserve(&task, &placement).unwrap();
            }
        }
        let tasks = [
            TaskSpec::new(TaskId(1), Resources::new(1_000, 1)).with_gpu(GpuRequest::whole(1)),
            TaskSpec::new(TaskId(2), Resources::new(1_000, 1)).with_gpu(GpuRequest::whole(3)),
            TaskSpec::new(TaskId(3), Resources::new(1_000, 1)).with_gpu(GpuRequest::whole(8)),
            share(4, 400),
            share(5, 800),
            TaskSpec::new(TaskId(6), Resources::new(1_000, 1)),
        ];
        let workload = TargetWorkload::from_tasks(&tasks, 1.0);
        let mut builder = CandidateBuilder::new();
        let mut out = Vec::new();
        let mut seen = 0;
        for task in &tasks {
            builder.build(&workload, &cluster.feasible(task, None), 64, &mut out);
            for candidate in &out {
                let mut after = cluster.clone();
                after.reserve(task, &candidate.placement).unwrap();
                let node = after.node(candidate.placement.node).unwrap();
                let mut free: Vec<u32> = node.gpu_free_milli().to_vec();
                free.sort_unstable_by(|a, b| b.cmp(a));
                let expected: Vec<f32> = free.iter().map(|&m| m as f32 / 1000.0).collect();
                let row = &candidate.features;
                assert_eq!(&row[12..20], &expected[..], "{task:?} on {candidate:?}");
                let total: u32 = free.iter().sum();
                assert_eq!(row[4], total as f32 / 8000.0);
                let idle = free.iter().filter(|&&m| m == 1000).count();
                assert_eq!(row[5], idle as f32 / 8.0);
                seen += 1;
            }
        }
        assert!(seen > 20, "{seen}");
    }
}
