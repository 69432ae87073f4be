use std::collections::HashMap;
use std::sync::Arc;

use lepton_core::{
    ClusterNode, ClusterState, NodeId, Placement, Policy, TargetWorkload, TaskShape, TaskSpec,
    GPU_MILLI_PER_GPU,
};
use smallvec::SmallVec;

use super::{best_scoring_at, percent};

/// Fragmentation Gradient Descent (Weng et al., USENIX ATC '23): place the
/// task where the cluster's expected GPU fragmentation grows least.
///
/// For each feasible node (and, for a GPU share, each GPU with room) the
/// policy computes the node's fragmentation against the target workload
/// (see [`TargetWorkload`]) before and after the placement; score =
/// ⌊sigmoid((before − after) / 1000) × 100⌋, highest wins, ties to the earliest node.
///
/// Scores depend only on the node's state and the task's shape, so they are
/// cached per (shape, node position) and recomputed only for nodes that
/// changed since (see [`ClusterNode::generation`]).
///
/// [`Fgd::new`] takes the target workload (the paper derives it from the
/// trace); [`Fgd::default`] learns it from the tasks it is asked to place,
/// rebuilding it each time the number of tasks seen doubles.
#[derive(Debug, Clone, Default)]
pub struct Fgd {
    workload: Arc<TargetWorkload>,
    /// Bumped whenever `workload` changes, to invalidate the cache.
    workload_version: u64,
    learning: Option<Learning>,
    shape_ids: HashMap<TaskShape, u32>,
    /// Per shape id, per node position: the node's last score for that shape.
    cache: Vec<Vec<Option<Cached>>>,
}

/// Shape counts of the tasks seen, when the workload is learned.
#[derive(Debug, Clone, Default)]
struct Learning {
    counts: HashMap<TaskShape, usize>,
    seen: usize,
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    /// Positions shift when nodes leave: the slot is checked against the node.
    node: NodeId,
    generation: u64,
    workload_version: u64,
    score: i64,
    gpu: Option<u32>,
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

    fn learn(&mut self, shape: &TaskShape) {
        let Some(learning) = &mut self.learning else {
            return;
        };
        *learning.counts.entry(shape.clone()).or_insert(0) += 1;
        learning.seen += 1;
        if learning.seen.is_power_of_two() {
            let counts = learning.counts.iter().map(|(s, &c)| (s.clone(), c));
            self.workload = Arc::new(TargetWorkload::from_counts(counts, COVERAGE));
            self.workload_version += 1;
        }
    }

    fn shape_id(&mut self, shape: TaskShape) -> usize {
        let next = self.shape_ids.len() as u32;
        let id = *self.shape_ids.entry(shape).or_insert(next) as usize;
        if self.cache.len() <= id {
            self.cache.resize_with(id + 1, Vec::new);
        }
        id
    }
}

impl Policy for Fgd {
    fn name(&self) -> &str {
        "fgd"
    }

    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        let shape = TaskShape::of(task);
        self.learn(&shape);
        let shape_id = self.shape_id(shape);
        let Fgd {
            workload,
            workload_version,
            cache,
            ..
        } = self;
        let slots = &mut cache[shape_id];
        slots.resize(cluster.nodes().len(), None);
        let (node, gpu) = best_scoring_at(task, cluster, |position, node| {
            let slot = &mut slots[position];
            let fresh = slot.filter(|c| {
                c.node == node.id()
                    && c.generation == node.generation()
                    && c.workload_version == *workload_version
            });
            let cached = fresh.unwrap_or_else(|| {
                let (score, gpu) = evaluate(task, node, workload);
                let cached = Cached {
                    node: node.id(),
                    generation: node.generation(),
                    workload_version: *workload_version,
                    score,
                    gpu,
                };
                *slot = Some(cached);
                cached
            });
            Some((cached.score, cached.gpu))
        })?;
        Some(match gpu {
            Some(gpu) => Placement::on_gpus(node.id(), [gpu]),
            None => Placement::on(node.id()),
        })
    }
}

/// The node's score for `task`, and for a GPU share the GPU that earns it.
fn evaluate(task: &TaskSpec, node: &ClusterNode, workload: &TargetWorkload) -> (i64, Option<u32>) {
    let model = node.spec().gpus.model.as_ref();
    let before = workload.node_fragment_milli(node);
    let cpu_after = node.free().cpu_milli.saturating_sub(task.request.cpu_milli);
    let mut gpus: SmallVec<[u32; 8]> = SmallVec::from_slice(node.gpu_free_milli());
    let score = |after: f64| percent(sigmoid((before - after) / 1000.0));
    let milli = task.gpu.milli_per_gpu;
    if task.gpu.count == 1 && milli < GPU_MILLI_PER_GPU {
        // A share: try every GPU with room; the first best one wins.
        let mut best: Option<(i64, u32)> = None;
        for index in 0..gpus.len() {
            if gpus[index] < milli {
                continue;
            }
            gpus[index] -= milli;
            let s = score(workload.fragment_milli(cpu_after, &gpus, model));
            gpus[index] += milli;
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, index as u32));
            }
        }
        return best.map_or((i64::MIN, None), |(s, gpu)| (s, Some(gpu)));
    }
    // Whole GPUs (or none): the same GPUs the cluster state would take.
    for &index in &node.tightest_gpus(task.gpu).unwrap_or_default() {
        if let Some(free) = gpus.get_mut(index as usize) {
            *free = free.saturating_sub(milli);
        }
    }
    (
        score(workload.fragment_milli(cpu_after, &gpus, model)),
        None,
    )
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use lepton_core::{GpuRequest, Gpus, Resources, TaskId};

    use super::*;

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
        assert_eq!(evaluate(&share, node2, &workload()), (58, Some(1)));
        // Node 1 before: F = 0. Putting the share on GPU 0 leaves 500 there:
        // F = 2/3·500 → delta −333.3, score 41.
        let node1 = cluster.node(NodeId(1)).unwrap();
        assert_eq!(evaluate(&share, node1, &workload()), (41, Some(0)));

        let mut fgd = Fgd::new(workload());
        assert_eq!(
            fgd.select(&share, &cluster),
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
            fgd.select(&share, &cluster),
            Some(Placement::on_gpus(NodeId(1), [0]))
        );
        cluster
            .reserve(&task(2, GpuRequest::shared(600)), &Placement::on(NodeId(1)))
            .unwrap();
        // Only 400 left: a stale cache would still answer GPU 0.
        assert_eq!(fgd.select(&share, &cluster), None);
    }

    #[test]
    fn learning_fgd_places_without_a_given_workload() {
        let mut cluster = ClusterState::new();
        let node = lepton_core::NodeSpec::new(NodeId(1), Resources::new(8_000, 1_024))
            .with_gpus(Gpus::new("T4", 2));
        cluster.add_node(node).unwrap();
        let mut fgd = Fgd::learning();
        let placement = fgd.select(&task(1, GpuRequest::shared(300)), &cluster);
        assert_eq!(placement.map(|p| p.node), Some(NodeId(1)));
        assert_eq!(fgd.workload.shapes().len(), 1);
    }
}
