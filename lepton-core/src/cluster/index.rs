//! Indexes over the nodes, so that the common policies find their node
//! without scanning the cluster.
//!
//! - [`FreeIndex`] orders nodes by their *free key*: free CPU and free GPU
//!   milli, each normalised by the largest node, summed — in exact integer
//!   arithmetic (`cpu_free · G + gpu_free · C` for largest-node CPU `C` and
//!   GPU `G`), so two nodes with the same leftover always tie. Best fit walks
//!   it upwards from the task's own key, spread walks it downwards.
//! - [`FitTree`] is a segment tree over node positions holding, per subtree,
//!   the largest free CPU, memory, single-GPU milli and count of whole free
//!   GPUs. Those maxima are a necessary condition for a task to fit, so the
//!   leftmost feasible node (first fit) is found by descending only into
//!   subtrees that could hold it.
//!
//! Both are updated on every reserve, release and state change (O(log n)) and
//! rebuilt when nodes are removed or the largest node changes.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use super::{ClusterNode, LargestNode};
use crate::node::NodeState;
use crate::resources::GPU_MILLI_PER_GPU;
use crate::task::TaskSpec;

/// The free key of a node, or the request key of a task (same units).
pub(crate) type FreeKey = u128;

/// Computes keys against the largest node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KeyScale {
    cpu_norm: u128,
    gpu_norm: u128,
}

impl KeyScale {
    pub(crate) fn new(largest: LargestNode) -> Self {
        KeyScale {
            cpu_norm: u128::from(largest.cpu_milli.max(1)),
            gpu_norm: u128::from(largest.gpu_milli.max(1)),
        }
    }

    /// `cpu / C + gpu / G`, scaled by `C · G` to stay an exact integer.
    pub(crate) fn key(&self, cpu_milli: u64, gpu_milli: u64) -> FreeKey {
        u128::from(cpu_milli) * self.gpu_norm + u128::from(gpu_milli) * self.cpu_norm
    }

    pub(crate) fn node_key(&self, node: &ClusterNode) -> FreeKey {
        self.key(node.free.cpu_milli, node.gpu_free_milli_total())
    }
}

/// Nodes ordered by free key, both ways, ties by position.
#[derive(Debug, Clone, Default)]
pub(crate) struct FreeIndex {
    ascending: BTreeSet<(FreeKey, u32)>,
    descending: BTreeSet<(Reverse<FreeKey>, u32)>,
    /// Each position's key as indexed, to find its entries again.
    keys: Vec<Option<FreeKey>>,
}

impl FreeIndex {
    pub(crate) fn rebuild(&mut self, nodes: &[ClusterNode], scale: KeyScale) {
        *self = FreeIndex::default();
        for (position, node) in nodes.iter().enumerate() {
            self.update(position, node, scale);
        }
    }

    /// Re-indexes the node at `position`; nodes that are not ready leave the index.
    pub(crate) fn update(&mut self, position: usize, node: &ClusterNode, scale: KeyScale) {
        if self.keys.len() <= position {
            self.keys.resize(position + 1, None);
        }
        let slot = position as u32;
        if let Some(old) = self.keys[position].take() {
            self.ascending.remove(&(old, slot));
            self.descending.remove(&(Reverse(old), slot));
        }
        if node.state == NodeState::Ready {
            let key = scale.node_key(node);
            self.ascending.insert((key, slot));
            self.descending.insert((Reverse(key), slot));
            self.keys[position] = Some(key);
        }
    }

    /// Positions with a key of at least `from`, smallest key first, then by position.
    pub(crate) fn ascending_from(&self, from: FreeKey) -> impl Iterator<Item = usize> + '_ {
        self.ascending.range((from, 0)..).map(|&(_, p)| p as usize)
    }

    /// Positions with a key of at least `down_to`, largest key first, then by position.
    pub(crate) fn descending_to(&self, down_to: FreeKey) -> impl Iterator<Item = usize> + '_ {
        self.descending
            .range(..=(Reverse(down_to), u32::MAX))
            .map(|&(_, p)| p as usize)
    }
}

/// The largest free amounts in a subtree: a necessary condition to fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Summary {
    cpu_milli: u64,
    memory_mib: u64,
    gpu_milli_one: u32,
    gpus_whole: u32,
}

impl Summary {
    fn of(node: &ClusterNode) -> Self {
        if node.state != NodeState::Ready {
            return Summary::default();
        }
        Summary {
            cpu_milli: node.free.cpu_milli,
            memory_mib: node.free.memory_mib,
            gpu_milli_one: node.gpu_free_milli.iter().copied().max().unwrap_or(0),
            gpus_whole: node
                .gpu_free_milli
                .iter()
                .filter(|&&m| m == GPU_MILLI_PER_GPU)
                .count() as u32,
        }
    }

    fn max(self, other: Summary) -> Summary {
        Summary {
            cpu_milli: self.cpu_milli.max(other.cpu_milli),
            memory_mib: self.memory_mib.max(other.memory_mib),
            gpu_milli_one: self.gpu_milli_one.max(other.gpu_milli_one),
            gpus_whole: self.gpus_whole.max(other.gpus_whole),
        }
    }

    fn may_fit(&self, task: &TaskSpec) -> bool {
        let gpu = task.gpu;
        self.cpu_milli >= task.request.cpu_milli
            && self.memory_mib >= task.request.memory_mib
            && (gpu.is_none()
                || (self.gpu_milli_one >= gpu.milli_per_gpu
                    && (gpu.milli_per_gpu < GPU_MILLI_PER_GPU || self.gpus_whole >= gpu.count)))
    }
}

/// A segment tree of [`Summary`] over node positions.
#[derive(Debug, Clone, Default)]
pub(crate) struct FitTree {
    /// Leaves start at `leaves`; node `i`'s children are `2i` and `2i + 1`.
    tree: Vec<Summary>,
    leaves: usize,
}

impl FitTree {
    pub(crate) fn rebuild(&mut self, nodes: &[ClusterNode]) {
        let leaves = nodes.len().next_power_of_two().max(1);
        self.leaves = leaves;
        self.tree = vec![Summary::default(); 2 * leaves];
        for (position, node) in nodes.iter().enumerate() {
            self.tree[leaves + position] = Summary::of(node);
        }
        for i in (1..leaves).rev() {
            self.tree[i] = self.tree[2 * i].max(self.tree[2 * i + 1]);
        }
    }

    pub(crate) fn update(&mut self, position: usize, node: &ClusterNode, nodes: &[ClusterNode]) {
        if position >= self.leaves {
            // The tree is full: grow it (amortised, like a Vec).
            self.rebuild(nodes);
            return;
        }
        let mut i = self.leaves + position;
        self.tree[i] = Summary::of(node);
        while i > 1 {
            i /= 2;
            self.tree[i] = self.tree[2 * i].max(self.tree[2 * i + 1]);
        }
    }

    /// The leftmost position whose node `fits`, visiting only subtrees whose
    /// summary says `task` may fit.
    pub(crate) fn leftmost(&self, task: &TaskSpec, fits: impl Fn(usize) -> bool) -> Option<usize> {
        if self.tree.is_empty() {
            return None;
        }
        self.descend(1, task, &fits)
    }

    fn descend(&self, i: usize, task: &TaskSpec, fits: &impl Fn(usize) -> bool) -> Option<usize> {
        if !self.tree[i].may_fit(task) {
            return None;
        }
        if i >= self.leaves {
            let position = i - self.leaves;
            return fits(position).then_some(position);
        }
        self.descend(2 * i, task, fits)
            .or_else(|| self.descend(2 * i + 1, task, fits))
    }
}
