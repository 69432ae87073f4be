//! Fixtures shared by the benches: a synthetic heterogeneous cluster and the
//! plain-scan reference policy.

// Each bench uses only some of these.
#![allow(dead_code)]

use lepton::fragmentation::TargetWorkload;
use lepton::policies::FirstFit;
use lepton::rng::SeededRng;
use lepton::sim::{synthetic_nodes, synthetic_task, synthetic_tasks};
use lepton::{
    policy_fn, ClusterState, FeasibleNodes, GpuRequest, Placement, Policy, Resources, TaskId,
    TaskSpec,
};

/// A cluster of `count` nodes filled by first fit to about 60% of its CPU.
pub(crate) fn cluster_60(count: u64) -> ClusterState {
    let mut cluster = ClusterState::new();
    for node in synthetic_nodes(count, 42) {
        cluster.add_node(node).expect("valid node");
    }
    let mut rng = SeededRng::new(7);
    let mut id = 1_000_000_000;
    while cluster.utilization().cpu < 0.6 {
        id += 1;
        let task = synthetic_task(id, &mut rng);
        match FirstFit.decide(&task, &cluster) {
            Some(placement) => {
                cluster.reserve(&task, &placement).expect("first fit fits");
            }
            None => break,
        }
        // Checking utilization is a scan: fill in strides.
        for _ in 0..(count / 64) {
            id += 1;
            let task = synthetic_task(id, &mut rng);
            if let Some(placement) = FirstFit.decide(&task, &cluster) {
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
    TargetWorkload::from_tasks(&synthetic_tasks(10_000, 3), 0.95)
}

/// Best fit by a plain scan over every node: the reference the index is
/// measured against. Same choice as `BestFit` (least normalised free CPU +
/// GPU, earliest on ties).
pub(crate) fn bestfit_linear_scan() -> impl Policy {
    policy_fn("bestfit_linear_scan", |nodes: &FeasibleNodes<'_>| {
        let largest = nodes.cluster().largest_node();
        let (cpu_norm, gpu_norm) = (
            u128::from(largest.cpu_milli.max(1)),
            u128::from(largest.gpu_milli.max(1)),
        );
        nodes
            .iter()
            .min_by_key(|node| {
                u128::from(node.free().cpu_milli) * gpu_norm
                    + u128::from(node.gpu_free_milli_total()) * cpu_norm
            })
            .map(|node| Placement::on(node.id()))
    })
}
