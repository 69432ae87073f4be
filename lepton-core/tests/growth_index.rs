//! [`GrowthIndex`] against a plain scan: after every change to a random
//! cluster — nodes added and removed (which moves another node), drained,
//! failed and back, tasks placed and released (as preemption and
//! completion do), the state cloned — FGD's choice read from the index is
//! the scan's (the same node and the same growth, to the bit), and so are
//! the best `k` the learned policy's candidates come from, with and without
//! a policy's filter.

#![allow(clippy::unwrap_used)]

use lepton_core::cluster::ClusterNode;
use lepton_core::fragmentation::{Growth, GrowthIndex, TargetWorkload};
use lepton_core::model::{GpuModel, NodeState};
use lepton_core::{
    ClusterState, FeasibleNodes, GpuRequest, Gpus, Misfit, NodeId, NodeSpec, Placement, Resources,
    TaskId, TaskSpec,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// The task shapes drawn (CPU cores, GPU share in milli or whole GPUs,
/// pinned to model A), memory apart: few, so that shapes repeat and
/// rankings are reused.
const SHAPES: [(u64, Gpu, bool); 8] = [
    (1, Gpu::None, false),
    (4, Gpu::None, false),
    (2, Gpu::Share(250), false),
    (4, Gpu::Share(500), false),
    (8, Gpu::Share(700), true),
    (4, Gpu::Whole(1), false),
    (16, Gpu::Whole(2), false),
    (2, Gpu::Share(500), true),
];

#[derive(Debug, Clone, Copy)]
enum Gpu {
    None,
    Share(u32),
    Whole(u32),
}

fn task(id: u64, shape: usize, big_memory: bool) -> TaskSpec {
    let (cores, gpu, pinned) = SHAPES[shape % SHAPES.len()];
    let gpu = match gpu {
        Gpu::None => GpuRequest::NONE,
        Gpu::Share(milli) => GpuRequest::shared(milli),
        Gpu::Whole(count) => GpuRequest::whole(count),
    };
    let memory = if big_memory { 48_000 } else { 1_024 };
    let task = TaskSpec::new(TaskId(id), Resources::new(cores * 1_000, memory)).with_gpu(gpu);
    if pinned {
        task.with_gpu_models([GpuModel::new("A")])
    } else {
        task
    }
}

fn workload() -> TargetWorkload {
    let tasks: Vec<TaskSpec> = (0..SHAPES.len() * 3)
        .map(|i| task(i as u64, i % SHAPES.len() + i / 20, false))
        .collect();
    TargetWorkload::from_tasks(&tasks, 0.9)
}

#[derive(Debug, Clone)]
enum Op {
    Add {
        cores: u64,
        gpus: u32,
        model_a: bool,
    },
    Remove(Index),
    SetState(Index, u8),
    Reserve {
        node: Index,
        shape: usize,
        big_memory: bool,
    },
    Release(Index),
    Clone,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (prop::sample::select(vec![8u64, 16, 32, 64]), 0u32..=8, any::<bool>())
            .prop_map(|(cores, gpus, model_a)| Op::Add { cores, gpus, model_a }),
        1 => any::<Index>().prop_map(Op::Remove),
        1 => (any::<Index>(), 0u8..3).prop_map(|(node, state)| Op::SetState(node, state)),
        6 => (any::<Index>(), 0..SHAPES.len(), prop::bool::weighted(0.2))
            .prop_map(|(node, shape, big_memory)| Op::Reserve { node, shape, big_memory }),
        3 => any::<Index>().prop_map(Op::Release),
        1 => Just(Op::Clone),
    ]
}

/// A policy's filter: only nodes with an even id.
fn even_nodes(_: &TaskSpec, node: &ClusterNode) -> Result<(), Misfit> {
    if node.id().0.is_multiple_of(2) {
        Ok(())
    } else {
        Err(Misfit::Policy("odd node".into()))
    }
}

/// Every feasible node with its growth, in FGD's order: highest score
/// first, cluster order on ties.
fn scan(workload: &TargetWorkload, feasible: &FeasibleNodes<'_>) -> Vec<(usize, Growth)> {
    let task = feasible.task();
    let mut all: Vec<(usize, Growth)> = feasible
        .with_positions()
        .filter_map(|(position, node)| Some((position, workload.growth(task, node)?)))
        .collect();
    all.sort_by_key(|&(position, growth)| (std::cmp::Reverse(growth.score), position));
    all
}

struct World {
    cluster: ClusterState,
    next_node: u64,
    next_task: u64,
    placed: Vec<TaskId>,
}

impl World {
    fn apply(&mut self, op: &Op) {
        let nodes = self.cluster.nodes().len();
        let node_at = |index: &Index, cluster: &ClusterState| {
            (nodes > 0).then(|| cluster.nodes()[index.index(nodes)].id())
        };
        match op {
            Op::Add {
                cores,
                gpus,
                model_a,
            } => {
                self.next_node += 1;
                let model = if *model_a { "A" } else { "B" };
                let spec = NodeSpec::new(
                    NodeId(self.next_node),
                    Resources::new(cores * 1_000, 65_536),
                )
                .with_gpus(if *gpus > 0 {
                    Gpus::new(model, *gpus)
                } else {
                    Gpus::none()
                });
                self.cluster.add_node(spec).unwrap();
            }
            Op::Remove(index) => {
                if let Some(id) = node_at(index, &self.cluster) {
                    // Refused while it holds tasks: fine, nothing changes.
                    let _ = self.cluster.remove_node(id);
                }
            }
            Op::SetState(index, state) => {
                if let Some(id) = node_at(index, &self.cluster) {
                    let state = [NodeState::Ready, NodeState::Cordoned, NodeState::Down]
                        [usize::from(*state)];
                    self.cluster.set_state(id, state).unwrap();
                }
            }
            Op::Reserve {
                node,
                shape,
                big_memory,
            } => {
                if let Some(id) = node_at(node, &self.cluster) {
                    self.next_task += 1;
                    let task = task(self.next_task, *shape, *big_memory);
                    if self.cluster.reserve(&task, &Placement::on(id)).is_ok() {
                        self.placed.push(task.id);
                    }
                }
            }
            Op::Release(index) => {
                if !self.placed.is_empty() {
                    let task = self.placed.swap_remove(index.index(self.placed.len()));
                    self.cluster.release(task).unwrap();
                }
            }
            Op::Clone => self.cluster = self.cluster.clone(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_index_answers_as_a_scan_does(ops in prop::collection::vec(op(), 1..120)) {
        let workload = workload();
        let mut index = GrowthIndex::new();
        let mut world = World { cluster: ClusterState::new(), next_node: 0, next_task: 1_000, placed: vec![] };
        for op in &ops {
            world.apply(op);
            for shape in 0..SHAPES.len() {
                for big_memory in [false, true] {
                    let probe = task(u64::MAX, shape, big_memory);
                    for filter in [None, Some(&even_nodes as &dyn lepton_core::cluster::NodeFilter)] {
                        let feasible = world.cluster.feasible(&probe, filter);
                        let expected = scan(&workload, &feasible);
                        prop_assert_eq!(index.best(&workload, &feasible), expected.first().copied(), "best after {:?}", op);
                        let mut ranked = Vec::new();
                        index.ranked(&workload, &feasible, 3, &mut ranked);
                        prop_assert_eq!(&ranked[..], &expected[..expected.len().min(3)]);
                    }
                }
            }
        }
    }
}

#[test]
fn an_index_handed_another_cluster_starts_afresh() {
    let workload = workload();
    let mut index = GrowthIndex::new();
    let build = |gpus| {
        let mut cluster = ClusterState::new();
        let spec = NodeSpec::new(NodeId(1), Resources::new(8_000, 65_536)).with_gpus(gpus);
        cluster.add_node(spec).unwrap();
        cluster
    };
    // Same ids, same generations, GPUs or none, two or eight: only the
    // instance tells (a growth remembered on one is not the other's).
    let (none, two, eight) = (
        build(Gpus::none()),
        build(Gpus::new("B", 2)),
        build(Gpus::new("B", 8)),
    );
    let probe = task(1, 5, false);
    for (cluster, fits) in [
        (&none, false),
        (&two, true),
        (&eight, true),
        (&two, true),
        (&none, false),
    ] {
        let feasible = cluster.feasible(&probe, None);
        let best = index.best(&workload, &feasible);
        assert_eq!(best.is_some(), fits);
        assert_eq!(best, scan(&workload, &feasible).first().copied());
    }
}
