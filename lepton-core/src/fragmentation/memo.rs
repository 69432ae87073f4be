//! The memos behind [`GrowthIndex`](super::GrowthIndex).
//!
//! What FGD reads of a node is its GPU model, its free milli-GPUs as a
//! multiset, and where its free CPU falls among the target workload's CPU
//! requests (a shape runs or not); what it reads of a task is its shape.
//! States alike in those have the same fragment and the same growth to
//! the last bit (per-shape fragments are integers, summed in one order),
//! so each is computed once: the fragment per node state here, the score
//! per task shape and node state in the shape's ranking, keyed by
//! [`Memo::score_key`].

use foldhash::HashMap;
use smallvec::SmallVec;

use super::{growth_with, Growth, TargetWorkload};
use crate::cluster::ClusterNode;
use crate::node::GpuModel;
use crate::resources::GPU_MILLI_PER_GPU;
use crate::task::TaskSpec;

/// Fragments per node state, and each node's state in key form.
#[derive(Debug, Clone, Default)]
pub(super) struct Memo {
    prepared: bool,
    /// The cluster instance `nodes` describes.
    cluster: u64,
    /// The workload's distinct CPU requests, ascending.
    cpu_steps: Vec<u64>,
    /// GPU models met, numbered by their place here.
    models: Vec<Option<GpuModel>>,
    fragments: HashMap<u128, f64>,
    /// Per node position, its state as last seen.
    nodes: Vec<NodeKey>,
}

/// A node's state in key form, as of its generation.
#[derive(Debug, Clone, Copy, Default)]
struct NodeKey {
    generation: u64,
    cpu_free_milli: u64,
    /// Model number, CPU step and GPUs packed (see [`Memo::state_key`]);
    /// `None` when the node cannot be keyed.
    state: Option<u128>,
}

/// The most GPUs of a node the keys hold (eleven bits each).
const KEYED_GPUS: usize = 8;

/// The most models the keys number (eight bits; CPU steps past eight bits
/// leave a state unkeyed).
const KEYED_MODELS: usize = 255;

/// The most fragments remembered before the memo starts afresh.
const FRAGMENTS: usize = 1 << 20;

impl Memo {
    /// Reads the workload's CPU steps, once after each reset, and forgets
    /// the nodes' states when the cluster is another one.
    pub(super) fn prepare(&mut self, workload: &TargetWorkload, cluster: u64) {
        if cluster != self.cluster {
            self.cluster = cluster;
            self.nodes.clear();
        }
        if self.prepared {
            return;
        }
        let mut steps: Vec<u64> = workload.shapes().iter().map(|(s, _)| s.cpu_milli).collect();
        steps.sort_unstable();
        steps.dedup();
        self.cpu_steps = steps;
        self.prepared = true;
    }

    /// What a task of CPU request `cpu_milli` on `node` (at `position`)
    /// scores by — the node's state plus where its free CPU falls once the
    /// task is there — or `None` when the node's state cannot be keyed
    /// (more GPUs, models or CPU steps than the keys hold).
    pub(super) fn score_key(
        &mut self,
        position: usize,
        node: &ClusterNode,
        cpu_milli: u64,
    ) -> Option<u128> {
        if self.nodes.len() <= position {
            self.nodes.resize(position + 1, NodeKey::default());
        }
        if self.nodes[position].generation != node.generation() {
            let state = self.state_key(
                node.free().cpu_milli,
                node.gpu_free_milli(),
                node.spec().gpus.model.as_ref(),
            );
            self.nodes[position] = NodeKey {
                generation: node.generation(),
                cpu_free_milli: node.free().cpu_milli,
                state,
            };
        }
        let NodeKey {
            cpu_free_milli,
            state,
            ..
        } = self.nodes[position];
        let after = self.cpu_step(cpu_free_milli.saturating_sub(cpu_milli))?;
        Some((state? << 8) | u128::from(after))
    }

    /// [`TargetWorkload::growth`], through the fragment memo.
    pub(super) fn growth(
        &mut self,
        workload: &TargetWorkload,
        task: &TaskSpec,
        node: &ClusterNode,
    ) -> Option<Growth> {
        growth_with(task, node, |cpu, gpus, model| {
            self.fragment(workload, cpu, gpus, model)
        })
    }

    /// [`TargetWorkload::fragment_milli`], remembered per state key.
    fn fragment(
        &mut self,
        workload: &TargetWorkload,
        cpu_free_milli: u64,
        gpu_free_milli: &[u32],
        model: Option<&GpuModel>,
    ) -> f64 {
        if gpu_free_milli.iter().all(|&free| free == 0) {
            return 0.0; // nothing idle, nothing fragmented
        }
        let Some(key) = self.state_key(cpu_free_milli, gpu_free_milli, model) else {
            return workload.fragment_milli(cpu_free_milli, gpu_free_milli, model);
        };
        if let Some(&fragment) = self.fragments.get(&key) {
            return fragment;
        }
        if self.fragments.len() >= FRAGMENTS {
            self.fragments.clear();
        }
        let fragment = workload.fragment_milli(cpu_free_milli, gpu_free_milli, model);
        self.fragments.insert(key, fragment);
        fragment
    }

    /// A state's key: the GPUs' free milli-GPUs sorted, each plus one in
    /// eleven bits (so that the count shows), then the model's number and
    /// the CPU step, eight bits each.
    fn state_key(
        &mut self,
        cpu_free_milli: u64,
        gpu_free_milli: &[u32],
        model: Option<&GpuModel>,
    ) -> Option<u128> {
        if gpu_free_milli.len() > KEYED_GPUS
            || gpu_free_milli.iter().any(|&free| free > GPU_MILLI_PER_GPU)
        {
            return None;
        }
        let mut sorted: SmallVec<[u32; KEYED_GPUS]> = SmallVec::from_slice(gpu_free_milli);
        sorted.sort_unstable();
        let gpus = sorted
            .iter()
            .fold(0u128, |key, &free| (key << 11) | u128::from(free + 1));
        let model = self.model_number(model)?;
        let cpu = self.cpu_step(cpu_free_milli)?;
        Some((((gpus << 8) | u128::from(model)) << 8) | u128::from(cpu))
    }

    /// How many of the workload's CPU requests `cpu_free_milli` meets.
    fn cpu_step(&self, cpu_free_milli: u64) -> Option<u8> {
        u8::try_from(self.cpu_steps.partition_point(|&s| s <= cpu_free_milli)).ok()
    }

    fn model_number(&mut self, model: Option<&GpuModel>) -> Option<u8> {
        // Nodes of one model usually share its name: compare pointers first.
        let same = |m: &Option<GpuModel>| match (m, model) {
            (Some(a), Some(b)) => std::ptr::eq(a.as_str(), b.as_str()) || a == b,
            (a, b) => a.as_ref() == b,
        };
        let number = match self.models.iter().position(same) {
            Some(number) => number,
            None if self.models.len() < KEYED_MODELS => {
                self.models.push(model.cloned());
                self.models.len() - 1
            }
            None => return None,
        };
        u8::try_from(number).ok()
    }
}
