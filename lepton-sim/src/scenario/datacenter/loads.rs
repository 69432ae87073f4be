//! What the minute's scans over the fleet read of each VM's node, kept by
//! fleet index in one compact array.
//!
//! Every simulated minute several scans visit every VM — who is busy (the
//! demand learned, the spare kept, idle release), what powered VMs use
//! (the totals), which VMs changed (consolidation) — and reading a
//! cluster node is a cache miss each: on the DLRM trace's 6,825 VMs over
//! 15 days those reads were most of a run. The cluster logs which nodes
//! changed ([`ClusterState::changed_since`]), so the array is brought up to
//! date by reading only those, before each scan.

use std::collections::HashMap;

use lepton_core::cluster::ClusterNode;
use lepton_core::{ClusterState, NodeId};

use super::FleetWorld;

/// One VM's node as the scans read it; all zero while the VM has no node
/// in the cluster (a revoked spot VM).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct VmLoad {
    /// Whether the cluster holds a node for the VM.
    pub(super) present: bool,
    /// The node's tasks.
    pub(super) tasks: u32,
    /// The node's generation ([`ClusterNode::generation`]).
    pub(super) generation: u64,
    /// CPU in use, milli: the VM's capacity minus the node's free CPU.
    pub(super) cpu_used: u64,
    /// Memory in use, MiB, likewise.
    pub(super) memory_used: u64,
    /// GPUs with nothing free.
    pub(super) gpus_full: u32,
}

/// [`VmLoad`] per fleet index, as of the cluster generation synced.
#[derive(Debug)]
pub(super) struct VmLoads {
    loads: Vec<VmLoad>,
    /// The fleet index of each VM's node id.
    index_of: HashMap<NodeId, usize>,
    /// The cluster generation and node count last synced.
    synced: (u64, usize),
}

impl VmLoads {
    /// Empty: the first [`sync`](Self::sync) reads every node.
    pub(super) fn new(world: &FleetWorld) -> Self {
        VmLoads {
            loads: vec![VmLoad::default(); world.fleet.len()],
            index_of: world
                .fleet
                .iter()
                .enumerate()
                .map(|(index, (spec, _))| (spec.id, index))
                .collect(),
            synced: (0, 0),
        }
    }

    /// Brings every VM's load up to `cluster` as it is now, reading only
    /// the nodes changed since the last call — or every node when the
    /// node count changed (a node removed: removals are not logged).
    pub(super) fn sync(&mut self, world: &FleetWorld, cluster: &ClusterState) -> &Self {
        let (generation, count) = self.synced;
        if count != cluster.nodes().len() {
            self.loads.fill(VmLoad::default());
            for node in cluster.nodes() {
                self.set(world, node);
            }
        } else {
            for (_, node) in cluster.changed_since(generation) {
                self.set(world, node);
            }
        }
        self.synced = (cluster.generation(), cluster.nodes().len());
        self
    }

    /// The load of the VM at fleet `index` (all zero past the fleet).
    pub(super) fn get(&self, index: usize) -> VmLoad {
        self.loads.get(index).copied().unwrap_or_default()
    }

    fn set(&mut self, world: &FleetWorld, node: &ClusterNode) {
        let Some(&index) = self.index_of.get(&node.id()) else {
            return;
        };
        let capacity = &world.fleet[index].0.capacity;
        let free = node.free();
        self.loads[index] = VmLoad {
            present: true,
            tasks: node.task_count(),
            generation: node.generation(),
            cpu_used: capacity.cpu_milli.saturating_sub(free.cpu_milli),
            memory_used: capacity.memory_mib.saturating_sub(free.memory_mib),
            gpus_full: node.gpu_free_milli().iter().filter(|&&m| m == 0).count() as u32,
        };
    }
}

#[cfg(test)]
mod tests {
    use lepton_core::model::NodeState;
    use lepton_core::{Placement, TaskId};
    use proptest::prelude::*;

    use super::super::DatacenterConfig;
    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Task `task` of the world on VM `vm`.
        Place {
            task: usize,
            vm: usize,
        },
        /// The `k`-th placed task ends.
        End(usize),
        Cordon(usize, bool),
        Remove(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..200usize, 0..12usize).prop_map(|(task, vm)| Op::Place { task, vm }),
            3 => (0..64usize).prop_map(Op::End),
            2 => (0..12usize, any::<bool>()).prop_map(|(vm, c)| Op::Cordon(vm, c)),
            1 => (0..12usize).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Kept up to date from the change log, the loads always equal
        /// loads read afresh from every node.
        #[test]
        fn synced_loads_equal_loads_read_afresh(ops in prop::collection::vec(op(), 1..80)) {
            let config = DatacenterConfig { vms: 12, tasks: 200, ..DatacenterConfig::default() };
            let world = FleetWorld::generate(&config).unwrap();
            let mut cluster = ClusterState::new();
            for (spec, _) in &world.fleet {
                cluster.add_node(spec.clone()).unwrap();
            }
            let mut loads = VmLoads::new(&world);
            let mut placed: Vec<TaskId> = Vec::new();
            for (step, op) in ops.iter().enumerate() {
                let id = |vm: usize| world.fleet[vm].0.id;
                match op {
                    Op::Place { task, vm } => {
                        let mut spec = world.tasks[*task].spec.clone();
                        spec.id = TaskId(1_000 + step as u64);
                        if cluster.reserve(&spec, &Placement::on(id(*vm))).is_ok() {
                            placed.push(spec.id);
                        }
                    }
                    Op::End(k) => if !placed.is_empty() {
                        let task = placed.swap_remove(k % placed.len());
                        let _ = cluster.release(task);
                    },
                    Op::Cordon(vm, cordon) => {
                        let state = if *cordon { NodeState::Cordoned } else { NodeState::Ready };
                        let _ = cluster.set_state(id(*vm), state);
                    }
                    // Refused while the node holds tasks.
                    Op::Remove(vm) => { let _ = cluster.remove_node(id(*vm)); }
                }
                // Not every step: changes pile up between scans too.
                if step % 3 == 0 || step + 1 == ops.len() {
                    let kept: Vec<VmLoad> = (0..12).map(|i| loads.sync(&world, &cluster).get(i)).collect();
                    let mut fresh = VmLoads::new(&world);
                    let fresh: Vec<VmLoad> = (0..12).map(|i| fresh.sync(&world, &cluster).get(i)).collect();
                    prop_assert_eq!(kept, fresh);
                }
            }
        }
    }
}
