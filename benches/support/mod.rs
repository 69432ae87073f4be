//! Fixtures shared by the benches: a synthetic heterogeneous cluster and the
//! plain-scan reference policy.

// Each bench uses only some of these.
#![allow(dead_code)]

use lepton::policies::FirstFit;
use lepton::{
    policy_fn, ClusterState, GpuRequest, Gpus, NodeId, NodeSpec, Placement, Policy, Resources,
    SimRng, TargetWorkload, TaskId, TaskSpec,
};

/// Node shapes (CPU milli, GPUs), like the Alibaba trace's GPU cluster.
const SHAPES: [(u64, u32); 4] = [(32_000, 0), (64_000, 2), (96_000, 8), (128_000, 4)];

/// `count` nodes of the shapes above, in a fixed pseudo-random order.
pub(crate) fn nodes(count: u64) -> Vec<NodeSpec> {
    let mut rng = SimRng::new(42);
    (0..count)
        .map(|id| {
            let (cpu_milli, gpus) = SHAPES[rng.index(SHAPES.len())];
            let gpus = if gpus > 0 {
                Gpus::new("V100M32", gpus)
            } else {
                Gpus::none()
            };
            NodeSpec::new(NodeId(id), Resources::new(cpu_milli, cpu_milli * 4)).with_gpus(gpus)
        })
        .collect()
}

/// A task of a typical mix: a quarter GPU shares, a quarter whole GPUs, the
/// rest CPU only.
pub(crate) fn task(id: u64, rng: &mut SimRng) -> TaskSpec {
    let cpu_milli = 1_000 * (1 + rng.below(16));
    let gpu = match rng.below(4) {
        0 => GpuRequest::shared(100 * (1 + rng.below(9) as u32)),
        1 => GpuRequest::whole(1),
        _ => GpuRequest::NONE,
    };
    TaskSpec::new(TaskId(id), Resources::new(cpu_milli, cpu_milli * 2)).with_gpu(gpu)
}

/// `count` tasks of the mix, ids from 0.
pub(crate) fn tasks(count: u64, seed: u64) -> Vec<TaskSpec> {
    let mut rng = SimRng::new(seed);
    (0..count).map(|id| task(id, &mut rng)).collect()
}

/// A cluster of `count` nodes filled by first fit to about 60% of its CPU.
pub(crate) fn cluster_60(count: u64) -> ClusterState {
    let mut cluster = ClusterState::new();
    for node in nodes(count) {
        cluster.add_node(node).expect("valid node");
    }
    let mut rng = SimRng::new(7);
    let mut id = 1_000_000_000;
    while cluster.utilization().cpu < 0.6 {
        id += 1;
        let task = task(id, &mut rng);
        match FirstFit.select(&task, &cluster) {
            Some(placement) => {
                cluster.reserve(&task, &placement).expect("first fit fits");
            }
            None => break,
        }
        // Checking utilization is a scan: fill in strides.
        for _ in 0..(count / 64) {
            id += 1;
            let task = self::task(id, &mut rng);
            if let Some(placement) = FirstFit.select(&task, &cluster) {
                cluster.reserve(&task, &placement).expect("first fit fits");
            }
        }
    }
    cluster
}

/// The probe task every decision bench places: 4 cores, half a GPU.
pub(crate) fn probe() -> TaskSpec {
    TaskSpec::new(TaskId(u64::MAX), Resources::new(4_000, 8_192)).with_gpu(GpuRequest::shared(500))
}

/// The target workload FGD measures against: the task mix itself.
pub(crate) fn workload() -> TargetWorkload {
    TargetWorkload::from_tasks(&tasks(10_000, 3), 0.95)
}

/// Best fit by a plain scan over every node: the reference the index is
/// measured against. Same choice as `BestFit` (least normalised free CPU +
/// GPU, earliest on ties).
pub(crate) fn bestfit_linear_scan() -> impl Policy {
    policy_fn(
        "bestfit_linear_scan",
        |task: &TaskSpec, cluster: &ClusterState| {
            let largest = cluster.largest_node();
            let (cpu_norm, gpu_norm) = (
                u128::from(largest.cpu_milli.max(1)),
                u128::from(largest.gpu_milli.max(1)),
            );
            cluster
                .feasible_nodes(task)
                .min_by_key(|node| {
                    u128::from(node.free().cpu_milli) * gpu_norm
                        + u128::from(node.gpu_free_milli_total()) * cpu_norm
                })
                .map(|node| Placement::on(node.id()))
        },
    )
}
