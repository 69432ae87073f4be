//! Indexes over the nodes, so that the common policies find their node
//! without scanning the cluster.
//!
//! - [`FreeIndex`] orders nodes by their *free key*: free CPU and free GPU
//!   milli, each normalised by the largest node, summed — in exact integer
//!   arithmetic (`cpu_free · G + gpu_free · C` for largest-node CPU `C` and
//!   GPU `G`), so two nodes with the same leftover always tie. Best fit walks
//!   it upwards from the task's own key, spread walks it downwards; each GPU
//!   model (and "no GPU") has its own order, so a GPU task skips CPU-only
//!   nodes and GPUs of models it does not accept without visiting them.
//! - [`FitTree`] is a segment tree over node positions holding, per subtree,
//!   the largest free CPU, memory, single-GPU milli and count of whole free
//!   GPUs. Those maxima are a necessary condition for a task to fit, so the
//!   leftmost feasible node (first fit) is found by descending only into
//!   subtrees that could hold it.
//!
//! The fit tree is updated on every reserve, release and state change
//! (O(log n)); the free index only marks the node stale then, and is brought
//! up to date when a search reads it ([`LazyFreeIndex`]), so policies that
//! never walk it (first fit, FGD, the learned ones) never pay for it. Both are
//! rebuilt when nodes are removed or the largest node changes.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};

use super::{ClusterNode, LargestNode};
use crate::node::{GpuModel, NodeState};
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

    /// A key back as `½ · cpu / C + ½ · gpu / G`.
    pub(crate) fn half_share(&self, key: FreeKey) -> f64 {
        key as f64 / (2 * self.cpu_norm * self.gpu_norm) as f64
    }
}

/// A [`FreeIndex`] and the positions whose nodes changed since it last read
/// them. Changes (through `&mut`) only mark a position; a read (through `&`,
/// as policies search) first re-indexes the marked ones. The read lock is
/// taken recursively (a policy's node filter may search the same cluster)
/// and the write lock for that catch-up only by `try_write`, so a reader
/// never waits on a writer that waits on it: a failed `try_write` means
/// another reader is catching up, after which the index has nothing stale.
#[derive(Debug, Default)]
pub(crate) struct LazyFreeIndex(RwLock<Kept>);

#[derive(Debug, Clone, Default)]
struct Kept {
    index: FreeIndex,
    /// Positions changed since the index read them, each once.
    stale: Vec<u32>,
    /// Whether each position is in `stale`.
    marked: Vec<bool>,
}

impl Clone for LazyFreeIndex {
    fn clone(&self) -> Self {
        LazyFreeIndex(RwLock::new(self.0.read_recursive().clone()))
    }
}

impl LazyFreeIndex {
    /// Notes that the node at `position` changed (O(1)).
    pub(crate) fn mark(&mut self, position: usize) {
        let kept = self.0.get_mut();
        if kept.marked.len() <= position {
            kept.marked.resize(position + 1, false);
        }
        if !kept.marked[position] {
            kept.marked[position] = true;
            kept.stale.push(position as u32);
        }
    }

    pub(crate) fn rebuild(&mut self, nodes: &[ClusterNode], scale: KeyScale) {
        let kept = self.0.get_mut();
        kept.index.rebuild(nodes, scale);
        kept.stale.clear();
        kept.marked.clear();
    }

    /// The index, up to date with `nodes`.
    pub(crate) fn read(
        &self,
        nodes: &[ClusterNode],
        scale: KeyScale,
    ) -> MappedRwLockReadGuard<'_, FreeIndex> {
        loop {
            let kept = self.0.read_recursive();
            if kept.stale.is_empty() {
                return RwLockReadGuard::map(kept, |kept| &kept.index);
            }
            drop(kept);
            match self.0.try_write() {
                Some(mut kept) => kept.catch_up(nodes, scale),
                None => std::thread::yield_now(),
            }
        }
    }
}

impl Kept {
    fn catch_up(&mut self, nodes: &[ClusterNode], scale: KeyScale) {
        let Kept {
            index,
            stale,
            marked,
        } = self;
        for position in stale.drain(..) {
            let position = position as usize;
            marked[position] = false;
            if let Some(node) = nodes.get(position) {
                index.update(position, node, scale);
            }
        }
    }
}

/// Nodes ordered by free key, ties by position, in partitions by
/// GPU model (or none) and by how much the node's emptiest GPU has free (in
/// quarters of a GPU), so that a GPU task walks past neither CPU-only nodes,
/// nor GPUs of a model it does not accept, nor nodes without a GPU that has
/// room for it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FreeIndex {
    partitions: Vec<Partition>,
    /// Each position's partition and key as indexed, to find its entries again.
    entries: Vec<Option<(usize, FreeKey)>>,
}

#[derive(Debug, Clone)]
struct Partition {
    model: Option<GpuModel>,
    /// The most free milli-GPUs on one GPU of its nodes, in quarters
    /// (0..=4; 4 = a whole GPU free).
    gpu_class: u32,
    /// (free key, position), walked up by best fit and down by spread.
    ascending: BTreeSet<(FreeKey, u32)>,
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
        if self.entries.len() <= position {
            self.entries.resize(position + 1, None);
        }
        let slot = position as u32;
        if let Some((partition, old)) = self.entries[position].take() {
            let partition = &mut self.partitions[partition];
            partition.ascending.remove(&(old, slot));
        }
        if node.state == NodeState::Ready {
            let key = scale.node_key(node);
            let index = self.partition_of(node);
            let partition = &mut self.partitions[index];
            partition.ascending.insert((key, slot));
            self.entries[position] = Some((index, key));
        }
    }

    fn partition_of(&mut self, node: &ClusterNode) -> usize {
        let model = (node.spec.gpus.count > 0)
            .then(|| node.spec.gpus.model.clone())
            .flatten();
        let most_free = node.gpu_free_milli.iter().copied().max().unwrap_or(0);
        let gpu_class = gpu_class(most_free);
        match self
            .partitions
            .iter()
            .position(|p| p.model == model && p.gpu_class == gpu_class)
        {
            Some(index) => index,
            None => {
                self.partitions.push(Partition {
                    model,
                    gpu_class,
                    ascending: BTreeSet::new(),
                });
                self.partitions.len() - 1
            }
        }
    }

    /// The partitions that may hold a node for `task`.
    fn candidates<'a>(&'a self, task: &'a TaskSpec) -> impl Iterator<Item = &'a Partition> + 'a {
        let accepted = &task.constraints.gpu_models;
        let needed_class = gpu_class(task.gpu.milli_per_gpu);
        self.partitions.iter().filter(move |p| {
            task.gpu.is_none()
                || (p.gpu_class >= needed_class
                    && p.model
                        .as_ref()
                        .is_some_and(|m| accepted.is_empty() || accepted.contains(m)))
        })
    }

    /// The position with the smallest key of at least `from` that `fits`,
    /// the smallest position on equal keys.
    // Plain loops, not iterator adapters with closures: the closures were
    // at times left out of line, a call per node walked past.
    #[inline]
    pub(crate) fn smallest_from(
        &self,
        task: &TaskSpec,
        from: FreeKey,
        fits: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let mut best: Option<(FreeKey, u32)> = None;
        for partition in self.candidates(task) {
            for &entry in partition.ascending.range((from, 0)..) {
                if fits(entry.1 as usize) {
                    best = Some(best.map_or(entry, |best| best.min(entry)));
                    break;
                }
            }
        }
        best.map(|(_, position)| position as usize)
    }

    /// The position with the largest key, of at least `down_to`, that
    /// `fits`, the smallest position on equal keys.
    #[inline]
    pub(crate) fn largest_down_to(
        &self,
        task: &TaskSpec,
        down_to: FreeKey,
        fits: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let mut best: Option<(Reverse<FreeKey>, u32)> = None;
        for partition in self.candidates(task) {
            // The largest key with a node that fits, walking down; then
            // that key's first node in cluster order that fits.
            let mut largest = None;
            for &(key, position) in partition.ascending.range((down_to, 0)..).rev() {
                if fits(position as usize) {
                    largest = Some(key);
                    break;
                }
            }
            let Some(key) = largest else { continue };
            for &(_, position) in partition.ascending.range((key, 0)..=(key, u32::MAX)) {
                if fits(position as usize) {
                    let entry = (Reverse(key), position);
                    best = Some(best.map_or(entry, |best| best.min(entry)));
                    break;
                }
            }
        }
        best.map(|(_, position)| position as usize)
    }
}

/// Quarters of a GPU: a GPU with `milli` free is in class `milli / 250`, so
/// a task needing `m` on one GPU can only use a node of class `m / 250` or more.
fn gpu_class(milli: u32) -> u32 {
    milli.min(GPU_MILLI_PER_GPU) / (GPU_MILLI_PER_GPU / 4)
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
            let summary = self.tree[2 * i].max(self.tree[2 * i + 1]);
            if self.tree[i] == summary {
                // Nothing above changes either.
                return;
            }
            self.tree[i] = summary;
        }
    }

    /// False when no node can hold `task`, judged from the root's maxima
    /// alone: an O(1) answer for tasks that fit nowhere.
    pub(crate) fn may_fit_somewhere(&self, task: &TaskSpec) -> bool {
        self.tree.get(1).is_some_and(|root| root.may_fit(task))
    }

    /// The leftmost position whose node `fits`, visiting only subtrees whose
    /// summary says `task` may fit: down the left child while it may, on to
    /// the next subtree to the right when not.
    pub(crate) fn leftmost(&self, task: &TaskSpec, fits: impl Fn(usize) -> bool) -> Option<usize> {
        if self.tree.is_empty() {
            return None;
        }
        let mut i = 1;
        loop {
            if self.tree[i].may_fit(task) {
                if i < self.leaves {
                    i *= 2;
                    continue;
                }
                let position = i - self.leaves;
                if fits(position) {
                    return Some(position);
                }
            }
            // Up past right children (the root included: then nothing is
            // left), then over to the right sibling.
            while i % 2 == 1 {
                i /= 2;
            }
            if i == 0 {
                return None;
            }
            i += 1;
        }
    }
}
