//! [`ClusterState`]: who has what, and the invariant that nothing is over-committed.
//!
//! Every node keeps its free scalar resources and the free milli-GPUs of each
//! of its GPUs. A reservation checks every constraint and every dimension
//! before it changes anything, so a failed reservation leaves no trace, and
//! subtraction is checked, so free amounts can never wrap. Reserve and release
//! cost O(log n): they keep the indexes that let first fit, best fit and
//! spread find their node without scanning (see `index.rs`); policies query
//! them through [`FeasibleNodes`] (see `feasible.rs`, the one feasibility
//! stage), not through the accounting.

mod changes;
mod feasible;
mod gpu_slots;
mod index;
mod ranking;
mod utilization;

use std::sync::Arc;

use foldhash::HashMap;
use smallvec::SmallVec;

use self::changes::{ChangeLog, Instance};
pub(crate) use self::feasible::check as check_feasible;
pub use self::feasible::{FeasibleNodes, NodeFilter};
use self::index::{FitTree, KeyScale, LazyFreeIndex};
pub use self::ranking::{NodeRankings, MAX_SCORE};
pub use self::utilization::Utilization;

use crate::backend::Usage;
use crate::error::{Error, Misfit};
use crate::node::{NodeId, NodeSpec, NodeState};
use crate::resources::{GpuRequest, Resources, GPU_MILLI_PER_GPU};
use crate::task::{Priority, QosClass, TaskId, TaskSpec};

pub use self::gpu_slots::GpuSlots;

/// Where a policy wants a task to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The node.
    pub node: NodeId,
    /// The GPUs inside the node; `None` lets the cluster take the
    /// tightest-fitting ones.
    pub gpus: Option<GpuSlots>,
}

impl Placement {
    /// On `node`, GPUs chosen by tightest fit.
    pub fn on(node: NodeId) -> Self {
        Placement { node, gpus: None }
    }

    /// On `node`, on exactly these GPUs.
    pub fn on_gpus(node: NodeId, gpus: impl IntoIterator<Item = u32>) -> Self {
        Placement {
            node,
            gpus: Some(gpus.into_iter().collect()),
        }
    }
}

/// Resources a task holds on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The task.
    pub task: TaskId,
    /// The node.
    pub node: NodeId,
    /// Scalar resources held.
    pub resources: Resources,
    /// The GPUs held, by index inside the node.
    pub gpus: GpuSlots,
    /// Milli-GPUs held on each of those GPUs.
    pub milli_per_gpu: u32,
    /// The task's QoS class: preemption evicts best-effort work first.
    pub qos: QosClass,
    anti_affinity: Option<String>,
}

impl Allocation {
    /// The GPU request this allocation satisfies.
    pub fn gpu_request(&self) -> GpuRequest {
        GpuRequest {
            count: self.gpus.len() as u32,
            milli_per_gpu: self.milli_per_gpu,
        }
    }
}

/// A node as the cluster state sees it: its spec plus what is free on it.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// Shared, so that a preemption's copy of the node costs no deep clone.
    spec: Arc<NodeSpec>,
    state: NodeState,
    free: Resources,
    gpu_free_milli: SmallVec<[u32; 8]>,
    anti_affinity_groups: SmallVec<[String; 2]>,
    /// The GPU requests of the GPU tasks here, with how many tasks made each.
    gpu_requests: SmallVec<[(GpuRequest, u32); 4]>,
    /// The tasks holding resources here, with their priorities, in no
    /// particular order.
    tasks: Vec<(TaskId, Priority)>,
    /// What the tasks here really use, as the backend last measured it.
    usage: Option<Usage>,
    generation: u64,
}

impl ClusterNode {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.spec.id
    }

    /// The node as it was added.
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// Ready, cordoned or down.
    pub fn state(&self) -> NodeState {
        self.state
    }

    /// Free scalar resources.
    pub fn free(&self) -> &Resources {
        &self.free
    }

    /// Free milli-GPUs of each GPU, by index.
    pub fn gpu_free_milli(&self) -> &[u32] {
        &self.gpu_free_milli
    }

    /// Free milli-GPUs summed over all GPUs.
    pub fn gpu_free_milli_total(&self) -> u64 {
        self.gpu_free_milli.iter().map(|&m| u64::from(m)).sum()
    }

    /// How many tasks hold resources here.
    pub fn task_count(&self) -> u32 {
        self.tasks.len() as u32
    }

    /// What the tasks here really use, as the backend last measured it
    /// (`None` before any measurement); compare with what they reserved,
    /// `spec().capacity - free()`. For reading only: no check, booking,
    /// preemption or rebalancing counts it, so a policy may rank by it but
    /// never over-commit a node with it.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// The tasks holding resources here, with their priorities, in no
    /// particular order.
    pub fn tasks(&self) -> &[(TaskId, Priority)] {
        &self.tasks
    }

    /// The GPU requests of the tasks holding GPUs here, each with the number
    /// of tasks that made it (policies that group alike tasks read this).
    pub fn gpu_requests(&self) -> &[(GpuRequest, u32)] {
        &self.gpu_requests
    }

    /// Changes whenever this node changes (added, reserve, release, state,
    /// moved in cluster order by another node's removal), is the latest of
    /// the cluster's [`generation`](ClusterState::generation)s then, and
    /// is never reused, even by a node re-added with the same id: a
    /// policy's per-node cache is fresh while this is unchanged. Always at
    /// least 1 for a node of the cluster state; 0 for the node as it would
    /// be after a preemption, which a [`NodeFilter`] may be shown.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Checks whether `task` can be placed here now, saying why not.
    ///
    /// # Errors
    /// The first [`Misfit`] found.
    pub(crate) fn check(&self, task: &TaskSpec) -> Result<(), Misfit> {
        if self.state != NodeState::Ready {
            return Err(Misfit::NotReady(self.state));
        }
        if !self.free.fits(&task.request) {
            // Only a misfit pays for finding the dimension.
            if let Err(dimension) = self.free.checked_sub(&task.request) {
                return Err(Misfit::Insufficient(dimension));
            }
        }
        self.check_rules(task)?;
        if !enough_gpus(&self.gpu_free_milli, task.gpu) {
            return Err(Misfit::Gpus {
                count: task.gpu.count,
                milli_per_gpu: task.gpu.milli_per_gpu,
            });
        }
        Ok(())
    }

    /// Checks the placement rules that freeing capacity cannot change: GPU
    /// model, node selector, taints, anti-affinity, nodes to avoid and the
    /// largest task the node takes. The node's state and free capacity are
    /// not looked at.
    ///
    /// # Errors
    /// The first [`Misfit`] found.
    pub(crate) fn check_rules(&self, task: &TaskSpec) -> Result<(), Misfit> {
        if !task.gpu.is_none() {
            let constraints = &task.constraints.gpu_models;
            let model = self.spec.gpus.model.as_ref();
            if !constraints.is_empty() && !model.is_some_and(|m| constraints.contains(m)) {
                return Err(Misfit::GpuModel {
                    found: model.map(|m| m.to_string()),
                });
            }
        }
        for (key, value) in &task.constraints.node_selector {
            if self.spec.labels.get(key) != Some(value) {
                return Err(Misfit::NodeSelector {
                    key: key.clone(),
                    value: value.clone(),
                });
            }
        }
        for taint in &self.spec.taints {
            let tolerated = task
                .constraints
                .tolerations
                .iter()
                .any(|toleration| toleration.tolerates(taint));
            if !tolerated {
                return Err(Misfit::Taint {
                    key: taint.key.clone(),
                    value: taint.value.clone(),
                });
            }
        }
        if let Some(group) = &task.constraints.anti_affinity {
            let limit = task.constraints.max_per_node.unwrap_or(1) as usize;
            if self
                .anti_affinity_groups
                .iter()
                .filter(|g| *g == group)
                .count()
                >= limit
            {
                return Err(Misfit::AntiAffinity(group.clone()));
            }
        }
        if task.constraints.avoid_nodes.contains(&self.spec.id) {
            return Err(Misfit::Avoided);
        }
        if let Some(max_task) = &self.spec.max_task {
            max_task
                .checked_sub(&task.request)
                .map_err(Misfit::LargerThanOneTask)?;
        }
        Ok(())
    }

    /// The share of this node's capacity in use, per dimension.
    pub fn utilization(&self) -> Utilization {
        Utilization::from_used_and_offered(self.used_and_offered())
    }

    /// The share of this node's capacity that would be in use with `task`
    /// added (whether or not it fits).
    pub fn utilization_with(&self, task: &TaskSpec) -> Utilization {
        let more = [
            task.request.cpu_milli,
            task.request.memory_mib,
            task.gpu.total_milli(),
        ];
        let mut usage = self.used_and_offered();
        for ((used, _), more) in usage.iter_mut().zip(more) {
            *used += u128::from(more);
        }
        Utilization::from_used_and_offered(usage)
    }

    /// Used and offered CPU, memory and milli-GPUs.
    fn used_and_offered(&self) -> [(u128, u128); 3] {
        let capacity = &self.spec.capacity;
        let gpu_milli = u64::from(self.spec.gpus.count) * u64::from(GPU_MILLI_PER_GPU);
        let pair = |offered: u64, free: u64| {
            (
                u128::from(offered.saturating_sub(free)),
                u128::from(offered),
            )
        };
        [
            pair(capacity.cpu_milli, self.free.cpu_milli),
            pair(capacity.memory_mib, self.free.memory_mib),
            pair(gpu_milli, self.gpu_free_milli_total()),
        ]
    }

    /// True when `task` can be placed here now: [`check`](Self::check)
    /// without the reason.
    // The index searches reject many nodes through this, and policies
    // instantiate them (`FeasibleNodes`) in their own crates: capacity is tested first and
    // builds no `Misfit`, and the function is inlined. Tests (debug builds)
    // hold it to `check`.
    #[inline(always)]
    pub(crate) fn fits(&self, task: &TaskSpec) -> bool {
        let fits = self.state == NodeState::Ready
            && has_room(task, &self.free, &self.gpu_free_milli)
            && self.check_rules(task).is_ok();
        debug_assert_eq!(fits, self.check(task).is_ok(), "fits and check disagree");
        fits
    }

    /// A copy of this node to evict from in thought: what preemption judges
    /// feasibility on before it evicts anything. Its generation is 0, which
    /// no node of a cluster state has, so no policy cache mistakes it for
    /// the real node.
    pub(crate) fn hypothetical(&self) -> ClusterNode {
        ClusterNode {
            generation: 0,
            ..self.clone()
        }
    }

    /// Takes back what `allocation` holds here, in thought (a preemption's
    /// copy of the node): [`release`](ClusterState::release) does the same
    /// knowing where the task sits in the node's task list.
    pub(crate) fn give_back(&mut self, allocation: &Allocation) {
        self.give_back_resources(allocation);
        if let Some(i) = self.tasks.iter().position(|&(t, _)| t == allocation.task) {
            self.tasks.swap_remove(i);
        }
    }

    /// Takes back the resources `allocation` holds here, not its entry in the
    /// task list (the generation is the caller's).
    fn give_back_resources(&mut self, allocation: &Allocation) {
        // Adding back what was taken cannot exceed the capacity it came from.
        self.free = self
            .free
            .checked_add(&allocation.resources)
            .unwrap_or_else(|_| self.spec.capacity.clone());
        for &gpu in &allocation.gpus {
            if let Some(free) = self.gpu_free_milli.get_mut(gpu as usize) {
                *free = (*free + allocation.milli_per_gpu).min(GPU_MILLI_PER_GPU);
            }
        }
        if let Some(group) = &allocation.anti_affinity {
            if let Some(i) = self.anti_affinity_groups.iter().position(|g| g == group) {
                self.anti_affinity_groups.swap_remove(i);
            }
        }
        if let Some(i) = self
            .gpu_requests
            .iter()
            .position(|(r, _)| *r == allocation.gpu_request())
        {
            self.gpu_requests[i].1 -= 1;
            if self.gpu_requests[i].1 == 0 {
                self.gpu_requests.swap_remove(i);
            }
        }
    }

    /// The tightest-fitting GPUs for `request`: those with the least free
    /// milli-GPUs that still fit, ties to the lowest index. Empty for a
    /// request without GPUs; `None` when too few GPUs fit.
    pub fn tightest_gpus(&self, request: GpuRequest) -> Option<GpuSlots> {
        let mut chosen = GpuSlots::new();
        if request.is_none() {
            return Some(chosen);
        }
        let mut candidates: SmallVec<[(u32, u32); 8]> = self
            .gpu_free_milli
            .iter()
            .zip(0u32..)
            .filter(|(&free, _)| free >= request.milli_per_gpu)
            .map(|(&free, index)| (free, index))
            .collect();
        if candidates.len() < request.count as usize {
            return None;
        }
        candidates.sort_unstable();
        chosen.extend(
            candidates
                .into_iter()
                .take(request.count as usize)
                .map(|(_, i)| i),
        );
        Some(chosen)
    }

    fn validate_gpu_choice(&self, request: GpuRequest, gpus: &[u32]) -> Result<(), Misfit> {
        let invalid = |why| Misfit::GpuChoice {
            gpus: gpus.to_vec(),
            why,
        };
        if gpus.len() != request.count as usize {
            return Err(invalid("wrong number of GPUs"));
        }
        for (i, &gpu) in gpus.iter().enumerate() {
            let free = self
                .gpu_free_milli
                .get(gpu as usize)
                .ok_or_else(|| invalid("no GPU with that index"))?;
            if *free < request.milli_per_gpu {
                return Err(invalid("not enough free milli-GPUs"));
            }
            if gpus[..i].contains(&gpu) {
                return Err(invalid("the same GPU twice"));
            }
        }
        Ok(())
    }
}

/// True when `task`'s request and GPUs fit in `free` and `gpu_free_milli`:
/// the capacity half of [`ClusterNode::check`], for accounting in thought.
#[inline]
pub(crate) fn has_room(task: &TaskSpec, free: &Resources, gpu_free_milli: &[u32]) -> bool {
    free.fits(&task.request) && enough_gpus(gpu_free_milli, task.gpu)
}

/// True when enough GPUs have `request`'s share free.
#[inline]
pub(super) fn enough_gpus(gpu_free_milli: &[u32], request: GpuRequest) -> bool {
    request.is_none()
        || gpu_free_milli
            .iter()
            .filter(|&&free| free >= request.milli_per_gpu)
            .count()
            >= request.count as usize
}

/// The whole cluster's accounting: nodes, what is free, who holds what.
///
/// Node order is insertion order (a removal moves the last node into the
/// gap), so iteration is deterministic.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    nodes: Vec<ClusterNode>,
    index: HashMap<NodeId, usize>,
    allocations: HashMap<TaskId, Held>,
    largest: LargestNode,
    /// Source of node generations: the latest given.
    changes: u64,
    log: ChangeLog,
    instance: Instance,
    scale: KeyScale,
    free_index: LazyFreeIndex,
    fit_tree: FitTree,
}

/// An allocation, with where its task sits in its node's task list (so a
/// release finds it without a scan).
#[derive(Debug, Clone)]
struct Held {
    allocation: Allocation,
    slot: u32,
}

/// The largest capacity any node offers, per dimension policies normalise by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LargestNode {
    /// The most CPU on one node, in milli-cores.
    pub cpu_milli: u64,
    /// The most GPU on one node, in milli-GPUs.
    pub gpu_milli: u64,
}

impl LargestNode {
    fn of<'a>(nodes: impl Iterator<Item = &'a ClusterNode>) -> Self {
        nodes.fold(LargestNode::default(), |largest, node| largest.max(node))
    }

    fn max(self, node: &ClusterNode) -> Self {
        LargestNode {
            cpu_milli: self.cpu_milli.max(node.spec.capacity.cpu_milli),
            gpu_milli: self
                .gpu_milli
                .max(u64::from(node.spec.gpus.count) * u64::from(GPU_MILLI_PER_GPU)),
        }
    }
}

impl ClusterState {
    /// An empty cluster.
    pub fn new() -> Self {
        ClusterState::default()
    }

    /// Adds a ready node with all its capacity free.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`], [`Error::ZeroCapacity`], [`Error::TooManyGpus`]
    /// or [`Error::InvalidPrice`].
    pub fn add_node(&mut self, spec: NodeSpec) -> Result<(), Error> {
        let node = spec.id;
        if self.index.contains_key(&node) {
            return Err(Error::DuplicateNode { node });
        }
        spec.validate()?;
        let entry = ClusterNode {
            free: spec.capacity.clone(),
            gpu_free_milli: (0..spec.gpus.count).map(|_| GPU_MILLI_PER_GPU).collect(),
            state: NodeState::Ready,
            anti_affinity_groups: SmallVec::new(),
            gpu_requests: SmallVec::new(),
            tasks: Vec::new(),
            usage: None,
            generation: 0,
            spec: Arc::new(spec),
        };
        self.largest = self.largest.max(&entry);
        self.index.insert(node, self.nodes.len());
        self.nodes.push(entry);
        self.touch(self.nodes.len() - 1);
        let scale = KeyScale::new(self.largest);
        if scale == self.scale {
            self.reindex(self.nodes.len() - 1);
        } else {
            self.rebuild_indexes();
        }
        Ok(())
    }

    /// Removes a node that holds no task.
    ///
    /// # Errors
    /// [`Error::UnknownNode`] or [`Error::NodeHasTasks`].
    pub fn remove_node(&mut self, node: NodeId) -> Result<NodeSpec, Error> {
        let position = self.position(node)?;
        let tasks = self.nodes[position].task_count();
        if tasks > 0 {
            return Err(Error::NodeHasTasks { node, tasks });
        }
        let removed = self.nodes.swap_remove(position);
        self.index.remove(&node);
        if let Some(moved) = self.nodes.get(position) {
            self.index.insert(moved.id(), position);
            // Its position changed: a change for caches kept per position.
            self.touch(position);
        }
        self.largest = LargestNode::of(self.nodes.iter());
        self.rebuild_indexes();
        Ok(Arc::unwrap_or_clone(removed.spec))
    }

    /// Marks a node ready, cordoned or down. Tasks already there are not touched.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn set_state(&mut self, node: NodeId, state: NodeState) -> Result<(), Error> {
        let position = self.position(node)?;
        self.nodes[position].state = state;
        self.touch(position);
        self.reindex(position);
        Ok(())
    }

    /// Records what the tasks on a node really use, as its backend measured
    /// it, for policies to read beside the reserved amounts. Placement
    /// accounting does not change (the node's generation neither).
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn set_usage(&mut self, node: NodeId, usage: Usage) -> Result<(), Error> {
        let position = self.position(node)?;
        self.nodes[position].usage = Some(usage);
        Ok(())
    }

    /// The node with this id.
    pub fn node(&self, node: NodeId) -> Option<&ClusterNode> {
        self.index.get(&node).map(|&i| &self.nodes[i])
    }

    /// All nodes, in deterministic order.
    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// The largest capacity any node offers (for normalising scores).
    pub fn largest_node(&self) -> LargestNode {
        self.largest
    }

    /// What `task` holds, if it holds anything.
    pub fn allocation(&self, task: TaskId) -> Option<&Allocation> {
        self.allocations.get(&task).map(|held| &held.allocation)
    }

    /// Every allocation, in no particular order.
    pub fn allocations(&self) -> impl Iterator<Item = &Allocation> {
        self.allocations.values().map(|held| &held.allocation)
    }

    /// The tasks holding resources on `node`, in id order.
    pub fn tasks_on(&self, node: NodeId) -> Vec<TaskId> {
        let mut tasks: Vec<TaskId> = self
            .node(node)
            .map_or_else(Vec::new, |n| n.tasks.iter().map(|&(t, _)| t).collect());
        tasks.sort_unstable();
        tasks
    }

    /// How many tasks hold resources.
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// Books `task`'s resources where `placement` says, all or nothing.
    ///
    /// # Errors
    /// [`Error::UnknownNode`], [`Error::AlreadyAllocated`], or
    /// [`Error::DoesNotFit`] with the reason; nothing changes on error.
    pub fn reserve(
        &mut self,
        task: &TaskSpec,
        placement: &Placement,
    ) -> Result<&Allocation, Error> {
        self.reserve_if(task, placement, |node| node.check(task))
    }

    /// [`reserve`](Self::reserve), with `feasible` judging the node in
    /// place of its own checks: the scheduler passes the one feasibility
    /// stage (`feasible.rs`), which runs them and then the policy's
    /// filter. Capacity is booked with checked
    /// arithmetic whatever `feasible` says.
    pub(crate) fn reserve_if(
        &mut self,
        task: &TaskSpec,
        placement: &Placement,
        feasible: impl FnOnce(&ClusterNode) -> Result<(), Misfit>,
    ) -> Result<&Allocation, Error> {
        if let Some(existing) = self.allocations.get(&task.id) {
            return Err(Error::AlreadyAllocated {
                task: task.id,
                node: existing.allocation.node,
            });
        }
        let position = self.position(placement.node)?;
        let node = &mut self.nodes[position];
        let does_not_fit = |misfit| Error::DoesNotFit {
            task: task.id,
            node: placement.node,
            misfit,
        };
        feasible(node).map_err(does_not_fit)?;
        let gpus = match &placement.gpus {
            Some(gpus) => {
                node.validate_gpu_choice(task.gpu, gpus)
                    .map_err(does_not_fit)?;
                gpus.clone()
            }
            None => node.tightest_gpus(task.gpu).ok_or_else(|| {
                does_not_fit(Misfit::Gpus {
                    count: task.gpu.count,
                    milli_per_gpu: task.gpu.milli_per_gpu,
                })
            })?,
        };
        let free = node
            .free
            .checked_sub(&task.request)
            .map_err(|d| does_not_fit(Misfit::Insufficient(d)))?;

        // Every check passed: commit.
        node.free = free;
        for &gpu in &gpus {
            node.gpu_free_milli[gpu as usize] -= task.gpu.milli_per_gpu;
        }
        if let Some(group) = &task.constraints.anti_affinity {
            node.anti_affinity_groups.push(group.clone());
        }
        if !task.gpu.is_none() {
            match node.gpu_requests.iter_mut().find(|(r, _)| *r == task.gpu) {
                Some((_, count)) => *count += 1,
                None => node.gpu_requests.push((task.gpu, 1)),
            }
        }
        let slot = node.tasks.len() as u32;
        node.tasks.push((task.id, task.priority));
        self.touch(position);
        let allocation = Allocation {
            task: task.id,
            node: placement.node,
            resources: task.request.clone(),
            gpus,
            milli_per_gpu: task.gpu.milli_per_gpu,
            qos: task.qos,
            anti_affinity: task.constraints.anti_affinity.clone(),
        };
        self.reindex(position);
        let held = Held { allocation, slot };
        Ok(&self.allocations.entry(task.id).or_insert(held).allocation)
    }

    /// Gives back everything `task` holds.
    ///
    /// # Errors
    /// [`Error::NotAllocated`] when the task holds nothing (so a release can
    /// never be counted twice).
    pub fn release(&mut self, task: TaskId) -> Result<Allocation, Error> {
        let Held { allocation, slot } = self
            .allocations
            .remove(&task)
            .ok_or(Error::NotAllocated { task })?;
        let position = self.position(allocation.node)?;
        let node = &mut self.nodes[position];
        node.give_back_resources(&allocation);
        let slot = slot as usize;
        debug_assert_eq!(node.tasks.get(slot).map(|&(t, _)| t), Some(task));
        node.tasks.swap_remove(slot);
        // The last task moved into the gap.
        if let Some(&(moved, _)) = node.tasks.get(slot) {
            if let Some(held) = self.allocations.get_mut(&moved) {
                held.slot = slot as u32;
            }
        }
        self.touch(position);
        self.reindex(position);
        Ok(allocation)
    }

    /// Used over offered, per resource, over nodes that are not down.
    pub fn utilization(&self) -> Utilization {
        let mut totals = [(0u128, 0u128); 3];
        for node in self.nodes.iter().filter(|n| n.state != NodeState::Down) {
            for (total, (used, offered)) in totals.iter_mut().zip(node.used_and_offered()) {
                total.0 += used;
                total.1 += offered;
            }
        }
        Utilization::from_used_and_offered(totals)
    }

    fn reindex(&mut self, position: usize) {
        if let Some(node) = self.nodes.get(position) {
            self.free_index.mark(position);
            self.fit_tree.update(position, node, &self.nodes);
        }
    }

    fn rebuild_indexes(&mut self) {
        self.scale = KeyScale::new(self.largest);
        self.free_index.rebuild(&self.nodes, self.scale);
        self.fit_tree.rebuild(&self.nodes);
    }

    /// Gives the node at `position` a new generation: it changed.
    fn touch(&mut self, position: usize) {
        self.changes += 1;
        self.nodes[position].generation = self.changes;
        self.log.record(position, &self.nodes);
    }

    fn position(&self, node: NodeId) -> Result<usize, Error> {
        self.index
            .get(&node)
            .copied()
            .ok_or(Error::UnknownNode { node })
    }
}
