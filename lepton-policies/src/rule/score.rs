//! Scorers: how a rules file ranks the nodes its filters let through.

use lepton_core::cluster::ClusterNode;
use lepton_core::{ClusterState, FeasibleNodes};

use crate::greedy::{balance, gpu_packing_score, percent};

/// One weighted scorer of a rules file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Scorer {
    /// What it rates.
    pub(super) kind: ScorerKind,
    /// Its weight: finite and above 0.
    pub(super) weight: f64,
}

/// What a scorer rates; each rating is in whole percent, 0..=100, higher
/// is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScorerKind {
    /// Little CPU and GPU left over: ⌊(1 − leftover) × 100⌋, as `bestfit`.
    BestFit,
    /// Much CPU and GPU left over: ⌊leftover × 100⌋, as `spread`.
    Spread,
    /// Evenly used resources, as `balanced`.
    Balanced,
    /// A low price: ⌊(1 − price / the cluster's highest price) × 100⌋.
    Cheapest,
    /// Few tasks: ⌊(1 − tasks / the most tasks on any node) × 100⌋.
    LeastTasks,
    /// Partly used GPUs first, as `packing`.
    GpuPacking,
}

/// The scorers' names in rules files, in the order the docs list them.
pub(super) const SCORERS: &[(&str, ScorerKind)] = &[
    ("bestfit", ScorerKind::BestFit),
    ("spread", ScorerKind::Spread),
    ("balanced", ScorerKind::Balanced),
    ("cheapest", ScorerKind::Cheapest),
    ("least_tasks", ScorerKind::LeastTasks),
    ("gpu_packing", ScorerKind::GpuPacking),
];

/// The cluster-wide maxima `cheapest` and `least_tasks` rate against, over
/// every node of the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Extremes {
    /// The highest price per hour.
    highest_price: f64,
    /// The most tasks on one node.
    most_tasks: u32,
}

impl Extremes {
    /// The maxima of `cluster` now.
    pub(super) fn of(cluster: &ClusterState) -> Self {
        cluster
            .nodes()
            .iter()
            .fold(Extremes::default(), |extremes, node| Extremes {
                highest_price: extremes.highest_price.max(node.spec().price_per_hour),
                most_tasks: extremes.most_tasks.max(node.task_count()),
            })
    }
}

impl ScorerKind {
    /// How much this scorer likes placing the task of `nodes` on `node`,
    /// 0..=100.
    pub(super) fn rate(
        self,
        node: &ClusterNode,
        nodes: &FeasibleNodes<'_>,
        extremes: &Extremes,
    ) -> i64 {
        let task = nodes.task();
        match self {
            ScorerKind::BestFit => percent(1.0 - nodes.leftover_share(node)),
            ScorerKind::Spread => percent(nodes.leftover_share(node)),
            ScorerKind::Balanced => percent(balance(task, node)),
            ScorerKind::Cheapest => {
                percent(1.0 - ratio(node.spec().price_per_hour, extremes.highest_price))
            }
            // In integers, so that 9 tasks of 10 rate exactly 10.
            ScorerKind::LeastTasks => match extremes.most_tasks {
                0 => 100,
                most => i64::from(most.saturating_sub(node.task_count())) * 100 / i64::from(most),
            },
            ScorerKind::GpuPacking => gpu_packing_score(task, node),
        }
    }
}

/// `part / whole` within 0..=1; 0 when `whole` is not positive.
fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        (part / whole).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use lepton_core::{GpuRequest, Gpus, NodeId, NodeSpec, Placement, Resources, TaskId};

    use super::*;
    use lepton_core::{ClusterState, TaskSpec};

    /// Node 1: 64 cores, 4 GPUs, $4/h, one task using 16 cores and a GPU.
    /// Node 2: 128 cores, 8 GPUs (the largest), $8/h, three tasks of 1 core.
    /// Node 3: 32 cores, no GPU, free of charge, idle.
    fn cluster() -> ClusterState {
        let mut cluster = ClusterState::new();
        let nodes = [
            NodeSpec::new(NodeId(1), Resources::new(64_000, 65_536))
                .with_gpus(Gpus::new("T4", 4))
                .with_price_per_hour(4.0),
            NodeSpec::new(NodeId(2), Resources::new(128_000, 131_072))
                .with_gpus(Gpus::new("T4", 8))
                .with_price_per_hour(8.0),
            NodeSpec::new(NodeId(3), Resources::new(32_000, 32_768)),
        ];
        for node in nodes {
            cluster.add_node(node).unwrap();
        }
        let busy = TaskSpec::new(TaskId(100), Resources::new(16_000, 1_024))
            .with_gpu(GpuRequest::whole(1));
        cluster.reserve(&busy, &Placement::on(NodeId(1))).unwrap();
        for id in 101..=103 {
            let small = TaskSpec::new(TaskId(id), Resources::new(1_000, 1_024));
            cluster.reserve(&small, &Placement::on(NodeId(2))).unwrap();
        }
        cluster
    }

    fn rates(kind: ScorerKind, task: &TaskSpec) -> Vec<i64> {
        let cluster = cluster();
        let extremes = Extremes::of(&cluster);
        cluster
            .nodes()
            .iter()
            .map(|node| kind.rate(node, &cluster.feasible(task, None), &extremes))
            .collect()
    }

    fn task(cpu_milli: u64, gpu: GpuRequest) -> TaskSpec {
        TaskSpec::new(TaskId(1), Resources::new(cpu_milli, 1_024)).with_gpu(gpu)
    }

    #[test]
    fn extremes_cover_every_node() {
        assert_eq!(
            Extremes::of(&cluster()),
            Extremes {
                highest_price: 8.0,
                most_tasks: 3
            }
        );
        assert_eq!(Extremes::of(&ClusterState::new()), Extremes::default());
    }

    #[test]
    fn bestfit_and_spread_mirror_each_other() {
        // 16 cores and one GPU, normalised by 128 cores and 8 GPUs:
        // node 1 leaves (48 − 16)/128 = 0.25 and (3 − 1)/8 = 0.25 → 0.25;
        // node 2 leaves (125 − 16)/128 = 0.8515625 and 7/8 → 0.86328125;
        // node 3 has no GPU, so it is not feasible, but rates anyway:
        // (32 − 16)/128 = 0.125 and 0 → 0.0625.
        let t = task(16_000, GpuRequest::whole(1));
        assert_eq!(rates(ScorerKind::BestFit, &t), [75, 13, 93]);
        assert_eq!(rates(ScorerKind::Spread, &t), [25, 86, 6]);
    }

    #[test]
    fn balanced_matches_the_balanced_policy() {
        // Node 3: CPU (0 + 8)/32 = 0.25, memory 1024/32768 = 0.03125 →
        // 1 − 0.109375 = 0.890625 → 89.
        let t = task(8_000, GpuRequest::NONE);
        assert_eq!(rates(ScorerKind::Balanced, &t)[2], 89);
    }

    #[test]
    fn cheapest_rates_against_the_highest_price() {
        // 1 − 4/8, 1 − 8/8, 1 − 0/8.
        let t = task(1_000, GpuRequest::NONE);
        assert_eq!(rates(ScorerKind::Cheapest, &t), [50, 0, 100]);
        // All free: all 100.
        let mut free = ClusterState::new();
        free.add_node(NodeSpec::new(NodeId(1), Resources::new(1_000, 1)))
            .unwrap();
        let node = free.node(NodeId(1)).unwrap();
        let rate = ScorerKind::Cheapest.rate(node, &free.feasible(&t, None), &Extremes::of(&free));
        assert_eq!(rate, 100);
    }

    #[test]
    fn least_tasks_rates_against_the_busiest_node() {
        // Node 1: 1 − 1/3 = 0.667; node 2: 1 − 3/3; node 3: 1 − 0/3.
        let t = task(1_000, GpuRequest::NONE);
        assert_eq!(rates(ScorerKind::LeastTasks, &t), [66, 0, 100]);
    }

    #[test]
    fn gpu_packing_matches_the_packing_policy() {
        // A share: node 1 must open a free GPU (50 − 1 = 49; its used GPU is
        // full); node 2 is idle with 8 GPUs (max(33 − 8, 8) = 25); node 3 has
        // no GPU: max(33 − 0, 0) = 33, but is not feasible.
        let t = task(1_000, GpuRequest::shared(500));
        assert_eq!(rates(ScorerKind::GpuPacking, &t), [49, 25, 33]);
    }
}
