use std::collections::HashMap;
use std::sync::Arc;

use lepton_core::fragmentation::{GrowthIndex, TargetWorkload, TaskShape};
use lepton_core::{FeasibleNodes, Placement, Policy, TaskSpec};

/// Fragmentation Gradient Descent (Weng et al., USENIX ATC '23): place the
/// task where the cluster's expected GPU fragmentation grows least.
///
/// For each feasible node (and, for a GPU share, each GPU with room) the
/// policy computes how the node's fragmentation against the target workload
/// (see [`TargetWorkload`]) would change ([`TargetWorkload::growth`]);
/// score = [`fgd_score`](lepton_core::fragmentation::fgd_score) =
/// ⌊sigmoid(−growth / 1000) × 100⌋, highest wins, ties to the earliest node.
///
/// Growths depend only on the node's state and the task's shape, so the
/// nodes are kept ranked per shape ([`GrowthIndex`]), re-scored only when
/// they change: a decision reads the top of a ranking, not every node.
///
/// [`Fgd::new`] takes the target workload (the paper derives it from the
/// trace); [`Fgd::default`] learns it from the tasks it is asked to place,
/// rebuilding it each time the number of tasks seen doubles.
#[derive(Debug, Clone, Default)]
pub struct Fgd {
    workload: Arc<TargetWorkload>,
    learning: Option<Learning>,
    index: GrowthIndex,
}

/// Shape counts of the tasks seen, when the workload is learned.
#[derive(Debug, Clone, Default)]
struct Learning {
    counts: HashMap<TaskShape, usize>,
    seen: usize,
}

/// The share of target shapes the paper's typical workload covers.
const COVERAGE: f64 = 0.95;

impl Fgd {
    /// FGD against a fixed target workload.
    pub fn new(workload: Arc<TargetWorkload>) -> Self {
        Fgd {
            workload,
            ..Fgd::default()
        }
    }

    /// FGD that learns its target workload from the tasks it places.
    pub fn learning() -> Self {
        Fgd {
            learning: Some(Learning::default()),
            ..Fgd::default()
        }
    }

    fn learn(&mut self, task: &TaskSpec) {
        let Some(learning) = &mut self.learning else {
            return;
        };
        *learning.counts.entry(TaskShape::of(task)).or_insert(0) += 1;
        learning.seen += 1;
        if learning.seen.is_power_of_two() {
            let counts = learning.counts.iter().map(|(s, &c)| (s.clone(), c));
            self.workload = Arc::new(TargetWorkload::from_counts(counts, COVERAGE));
            self.index.clear();
        }
    }
}

impl Fgd {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "fgd";
}

impl Policy for Fgd {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        self.learn(nodes.task());
        let (position, growth) = self.index.best(&self.workload, nodes)?;
        let node = &nodes.cluster().nodes()[position];
        Some(match growth.gpu {
            Some(gpu) => Placement::on_gpus(node.id(), [gpu]),
            None => Placement::on(node.id()),
        })
    }
}

#[cfg(test)]
mod tests {
    use lepton_core::{GpuRequest, Gpus, NodeId, Resources, TaskId};

    use super::*;
    use lepton_core::{ClusterState, TaskSpec};

    fn task(id: u64, gpu: GpuRequest) -> TaskSpec {
        TaskSpec::new(TaskId(id), Resources::new(1_000, 1)).with_gpu(gpu)
    }

    /// Workload: whole(1) twice as popular as shared(500).
    fn workload() -> Arc<TargetWorkload> {
        let tasks = [
            task(1, GpuRequest::whole(1)),
            task(2, GpuRequest::whole(1)),
            task(3, GpuRequest::shared(500)),
        ];
        Arc::new(TargetWorkload::from_tasks(&tasks, 1.0))
    }

    #[test]
    fn a_share_goes_where_it_fragments_least() {
        let mut cluster = ClusterState::new();
        for id in 1..=2 {
            let node = lepton_core::NodeSpec::new(NodeId(id), Resources::new(8_000, 1_024))
                .with_gpus(Gpus::new("T4", 2));
            cluster.add_node(node).unwrap();
        }
        // Node 2, GPU 1 has 500 free already.
        cluster
            .reserve(
                &task(10, GpuRequest::shared(500)),
                &Placement::on_gpus(NodeId(2), [1]),
            )
            .unwrap();
        let share = task(11, GpuRequest::shared(500));
        // Node 2 before: whole(1) fits, fragment 500 (GPU 1); shared(500) fits,
        // fragment 0. F = 2/3·500 = 333.3. Filling GPU 1 leaves F = 0:
        // delta +333.3, score ⌊sigmoid(0.333)·100⌋ = 58.
        let node2 = cluster.node(NodeId(2)).unwrap();
        let growth = workload().growth(&share, node2).unwrap();
        assert_eq!((growth.score, growth.gpu), (58, Some(1)));
        // Node 1 before: F = 0. Putting the share on GPU 0 leaves 500 there:
        // F = 2/3·500 → delta −333.3, score 41.
        let node1 = cluster.node(NodeId(1)).unwrap();
        let growth = workload().growth(&share, node1).unwrap();
        assert_eq!((growth.score, growth.gpu), (41, Some(0)));

        let mut fgd = Fgd::new(workload());
        assert_eq!(
            fgd.decide(&share, &cluster),
            Some(Placement::on_gpus(NodeId(2), [1]))
        );
    }

    #[test]
    fn the_cache_follows_node_changes() {
        let mut cluster = ClusterState::new();
        let node = lepton_core::NodeSpec::new(NodeId(1), Resources::new(8_000, 1_024))
            .with_gpus(Gpus::new("T4", 1));
        cluster.add_node(node).unwrap();
        let mut fgd = Fgd::new(workload());
        let share = task(1, GpuRequest::shared(500));
        assert_eq!(
            fgd.decide(&share, &cluster),
            Some(Placement::on_gpus(NodeId(1), [0]))
        );
        cluster
            .reserve(&task(2, GpuRequest::shared(600)), &Placement::on(NodeId(1)))
            .unwrap();
        // Only 400 left: a stale cache would still answer GPU 0.
        assert_eq!(fgd.decide(&share, &cluster), None);
    }

    #[test]
    fn learning_fgd_places_without_a_given_workload() {
        let mut cluster = ClusterState::new();
        let node = lepton_core::NodeSpec::new(NodeId(1), Resources::new(8_000, 1_024))
            .with_gpus(Gpus::new("T4", 2));
        cluster.add_node(node).unwrap();
        let mut fgd = Fgd::learning();
        let placement = fgd.decide(&task(1, GpuRequest::shared(300)), &cluster);
        assert_eq!(placement.map(|p| p.node), Some(NodeId(1)));
        assert_eq!(fgd.workload.shapes().len(), 1);
    }
}
