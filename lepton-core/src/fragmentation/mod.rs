//! GPU fragmentation as the FGD paper defines it (Weng et al., USENIX ATC '23).
//!
//! Fragmentation is measured against a *target workload*: the task shapes
//! expected to arrive, each with its popularity. For one shape `m`, the
//! fragment of a node is the idle GPU capacity that `m` could not use there:
//! all the idle milli-GPUs when `m` cannot run on the node at all (it needs
//! no GPU, the node's GPU model is not one `m` accepts, too little CPU, or too
//! few GPUs with enough free milli), otherwise the idle milli-GPUs of the
//! GPUs that have less free than `m` needs on one GPU. A node's fragmentation
//! is the popularity-weighted sum over shapes; the cluster's is the sum over
//! nodes. Memory is not part of the definition.
//!
//! The FGD policy and the simulator's fragmentation metric both use this one
//! module; [`GrowthIndex`] ranks the nodes for FGD without a scan.

mod index;
mod memo;

pub use self::index::GrowthIndex;

use std::collections::HashMap;

use smallvec::SmallVec;

use crate::cluster::ClusterNode;
use crate::node::GpuModel;
use crate::resources::{GpuRequest, GPU_MILLI_PER_GPU};
use crate::task::TaskSpec;

/// What a task asks for, as far as fragmentation is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskShape {
    /// CPU in milli-cores.
    pub cpu_milli: u64,
    /// GPUs.
    pub gpu: GpuRequest,
    /// Accepted GPU models, sorted; empty accepts any.
    pub gpu_models: Vec<GpuModel>,
}

impl TaskShape {
    /// The shape of `task`.
    pub fn of(task: &TaskSpec) -> Self {
        let mut gpu_models = task.constraints.gpu_models.clone();
        gpu_models.sort();
        TaskShape {
            cpu_milli: task.request.cpu_milli,
            gpu: task.gpu,
            gpu_models,
        }
    }

    /// The order the paper's simulator breaks frequency ties in:
    /// CPU, milli-GPUs per GPU, GPU count, models.
    fn sort_key(&self) -> (u64, u32, u32, &[GpuModel]) {
        (
            self.cpu_milli,
            self.gpu.milli_per_gpu,
            self.gpu.count,
            &self.gpu_models,
        )
    }

    /// The idle milli-GPUs this shape could not use on a node with
    /// `cpu_free_milli` CPU free, GPUs of `model` with `gpu_free_milli` free each.
    pub fn fragment_milli(
        &self,
        cpu_free_milli: u64,
        gpu_free_milli: &[u32],
        model: Option<&GpuModel>,
    ) -> u64 {
        let idle: u64 = gpu_free_milli.iter().map(|&m| u64::from(m)).sum();
        let model_ok =
            self.gpu_models.is_empty() || model.is_some_and(|m| self.gpu_models.contains(m));
        if self.gpu.is_none() || !model_ok || cpu_free_milli < self.cpu_milli {
            return idle;
        }
        let need = self.gpu.milli_per_gpu;
        let fitting = gpu_free_milli.iter().filter(|&&free| free >= need).count();
        if fitting < self.gpu.count as usize {
            return idle;
        }
        gpu_free_milli
            .iter()
            .filter(|&&free| free < need)
            .map(|&free| u64::from(free))
            .sum()
    }
}

/// The task shapes expected to arrive, with their popularity (summing to 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetWorkload {
    shapes: Vec<(TaskShape, f64)>,
}

impl TargetWorkload {
    /// The most frequent shapes of `tasks` that together cover at least
    /// `coverage` (0.0..=1.0) of them, with popularity = frequency,
    /// renormalised over the shapes kept (the paper's "typical pods", 95%).
    pub fn from_tasks<'a>(tasks: impl IntoIterator<Item = &'a TaskSpec>, coverage: f64) -> Self {
        let mut counts: HashMap<TaskShape, usize> = HashMap::new();
        for task in tasks {
            *counts.entry(TaskShape::of(task)).or_insert(0) += 1;
        }
        Self::from_counts(counts, coverage)
    }

    /// The most frequent of `counts` (shape, number of tasks) that together
    /// cover at least `coverage` of the tasks, as [`from_tasks`](Self::from_tasks).
    pub fn from_counts(
        counts: impl IntoIterator<Item = (TaskShape, usize)>,
        coverage: f64,
    ) -> Self {
        let mut order: Vec<(TaskShape, usize)> = counts.into_iter().collect();
        // Most frequent first; equal counts by shape, largest first, so the
        // result never depends on the order counts came in.
        order.sort_by(|(a, a_count), (b, b_count)| {
            b_count
                .cmp(a_count)
                .then_with(|| b.sort_key().cmp(&a.sort_key()))
        });
        let total: usize = order.iter().map(|(_, count)| count).sum();
        let mut kept = Vec::new();
        let mut covered = 0usize;
        for (shape, count) in order {
            if covered as f64 >= coverage * total as f64 {
                break;
            }
            covered += count;
            kept.push((shape, count));
        }
        let shapes = kept
            .into_iter()
            .map(|(shape, count)| (shape, count as f64 / covered.max(1) as f64))
            .collect();
        TargetWorkload { shapes }
    }

    /// The shapes and their popularity.
    pub fn shapes(&self) -> &[(TaskShape, f64)] {
        &self.shapes
    }

    /// The expected fragment, in milli-GPUs, of a node in the given state.
    pub fn fragment_milli(
        &self,
        cpu_free_milli: u64,
        gpu_free_milli: &[u32],
        model: Option<&GpuModel>,
    ) -> f64 {
        self.shapes
            .iter()
            .map(|(shape, popularity)| {
                popularity * shape.fragment_milli(cpu_free_milli, gpu_free_milli, model) as f64
            })
            .sum()
    }

    /// The expected fragment of `node` as it is now.
    pub fn node_fragment_milli(&self, node: &ClusterNode) -> f64 {
        self.fragment_milli(
            node.free().cpu_milli,
            node.gpu_free_milli(),
            node.spec().gpus.model.as_ref(),
        )
    }
}

/// How placing a task on a node changes the node's fragmentation: FGD's
/// fragmentation gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growth {
    /// Fragment after minus fragment before, in milli-GPUs (negative when
    /// the placement reduces fragmentation).
    pub milli: f64,
    /// FGD's integer score of it, [`fgd_score`]`(milli)` (kept, as it costs
    /// an exponential).
    pub score: i64,
    /// For a GPU share, the first GPU with the best [`fgd_score`] (as the
    /// FGD paper's simulator chooses); `None` for whole GPUs, which the cluster state picks (the
    /// tightest ones), and for tasks without GPUs.
    pub gpu: Option<u32>,
}

impl Growth {
    /// A growth of `milli` milli-GPUs, with its score.
    pub fn new(milli: f64, gpu: Option<u32>) -> Growth {
        Growth {
            milli,
            score: fgd_score(milli),
            gpu,
        }
    }
}

impl TargetWorkload {
    /// How placing `task` on `node` would change the node's fragment, as
    /// FGD evaluates it: a GPU share is tried on every GPU with room and the
    /// first with the best [`fgd_score`] kept; whole GPUs are the ones the cluster state would
    /// take. `None` when a share fits on no GPU. The caller checks that the
    /// task fits the node otherwise.
    pub fn growth(&self, task: &TaskSpec, node: &ClusterNode) -> Option<Growth> {
        growth_with(task, node, |cpu, gpus, model| {
            self.fragment_milli(cpu, gpus, model)
        })
    }
}

/// [`TargetWorkload::growth`], with the node's fragment in a given state
/// (free CPU, free milli-GPUs per GPU, GPU model) computed by `fragment`:
/// the workload's own computation, or a memo of it (see [`GrowthIndex`]).
pub(crate) fn growth_with(
    task: &TaskSpec,
    node: &ClusterNode,
    mut fragment: impl FnMut(u64, &[u32], Option<&GpuModel>) -> f64,
) -> Option<Growth> {
    let model = node.spec().gpus.model.as_ref();
    let before = fragment(node.free().cpu_milli, node.gpu_free_milli(), model);
    let cpu_after = node.free().cpu_milli.saturating_sub(task.request.cpu_milli);
    let mut gpus: SmallVec<[u32; 8]> = SmallVec::from_slice(node.gpu_free_milli());
    let milli = task.gpu.milli_per_gpu;
    if task.gpu.count == 1 && milli < GPU_MILLI_PER_GPU {
        let mut best: Option<Growth> = None;
        for index in 0..gpus.len() {
            let free = gpus[index];
            // A GPU as free as an earlier one grows the same: no better.
            if free < milli || gpus[..index].contains(&free) {
                continue;
            }
            gpus[index] -= milli;
            let after = fragment(cpu_after, &gpus, model);
            gpus[index] += milli;
            let growth = Growth::new(after - before, Some(index as u32));
            if best.is_none_or(|b| growth.score > b.score) {
                best = Some(growth);
            }
        }
        return best;
    }
    for &index in &node.tightest_gpus(task.gpu).unwrap_or_default() {
        if let Some(free) = gpus.get_mut(index as usize) {
            *free = free.saturating_sub(milli);
        }
    }
    Some(Growth::new(
        fragment(cpu_after, &gpus, model) - before,
        None,
    ))
}

/// FGD's integer score (0..=100) for a fragment growth of `milli`
/// milli-GPUs: ⌊sigmoid(−milli / 1000) × 100⌋, truncated as the paper's
/// simulator does, so that small differences tie.
pub fn fgd_score(milli: f64) -> i64 {
    let sigmoid = 1.0 / (1.0 + (milli / 1000.0).exp());
    (sigmoid * 100.0) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Resources, TaskId};

    fn shape(cpu_milli: u64, gpu: GpuRequest) -> TaskShape {
        TaskShape {
            cpu_milli,
            gpu,
            gpu_models: Vec::new(),
        }
    }

    #[test]
    fn fragment_follows_the_papers_cases() {
        let v100 = GpuModel::new("V100M32");
        let gpus = [1000, 300, 600, 0];
        // Fits: the GPUs with less than 500 free are fragments (300 + 0).
        assert_eq!(
            shape(1000, GpuRequest::shared(500)).fragment_milli(8000, &gpus, Some(&v100)),
            300
        );
        // Needs no GPU: every idle milli-GPU is a fragment.
        assert_eq!(
            shape(1000, GpuRequest::NONE).fragment_milli(8000, &gpus, Some(&v100)),
            1900
        );
        // Too little CPU: all idle.
        assert_eq!(
            shape(9000, GpuRequest::shared(500)).fragment_milli(8000, &gpus, Some(&v100)),
            1900
        );
        // Two whole GPUs but only one is free: all idle.
        assert_eq!(
            shape(1000, GpuRequest::whole(2)).fragment_milli(8000, &gpus, Some(&v100)),
            1900
        );
        // One whole GPU fits: the partly used ones are fragments.
        assert_eq!(
            shape(1000, GpuRequest::whole(1)).fragment_milli(8000, &gpus, Some(&v100)),
            900
        );
        // Wrong model: all idle.
        let pinned = TaskShape {
            gpu_models: vec![GpuModel::new("T4")],
            ..shape(1000, GpuRequest::shared(100))
        };
        assert_eq!(pinned.fragment_milli(8000, &gpus, Some(&v100)), 1900);
    }

    #[test]
    fn target_workload_keeps_the_popular_shapes() {
        let task = |id, gpu| TaskSpec::new(TaskId(id), Resources::new(1000, 1)).with_gpu(gpu);
        let mut tasks: Vec<TaskSpec> = (0..6).map(|i| task(i, GpuRequest::whole(1))).collect();
        tasks.extend((6..9).map(|i| task(i, GpuRequest::shared(500))));
        tasks.push(task(9, GpuRequest::whole(8)));
        // 90% coverage: whole(1) (60%) and shared(500) (30%) suffice.
        let workload = TargetWorkload::from_tasks(&tasks, 0.9);
        let kept: Vec<(GpuRequest, f64)> =
            workload.shapes().iter().map(|(s, p)| (s.gpu, *p)).collect();
        assert_eq!(
            kept,
            vec![
                (GpuRequest::whole(1), 6.0 / 9.0),
                (GpuRequest::shared(500), 3.0 / 9.0)
            ]
        );
        // Expected fragment on one GPU with 400 free: whole(1) cannot run
        // (400 idle), shared(500) cannot run either (400 idle).
        assert!((workload.fragment_milli(8000, &[400], None) - 400.0).abs() < 1e-9);
        // With 600 free: whole(1) cannot run (600), shared(500) fits (0).
        assert!((workload.fragment_milli(8000, &[600], None) - 400.0).abs() < 1e-9);
    }
}
