//! What the scheduler reasons about: nodes, tasks and the resources between
//! them.
//!
//! A node ([`NodeSpec`]) offers [`Resources`] and perhaps [`Gpus`]; a task
//! ([`TaskSpec`]) asks for resources and perhaps a [`GpuRequest`]. An
//! orchestrator that already has its own node and task types implements
//! [`Resource`] and [`Task`] for them instead, and the scheduler copies what
//! it needs once, when the node is added or the task submitted. Amounts use
//! checked arithmetic that names the [`Dimension`] that would have gone
//! wrong, so accounting can never wrap; GPUs are counted per device, in
//! milli-GPUs ([`GPU_MILLI_PER_GPU`]), so that several tasks can share one.

pub use crate::node::{
    GpuModel, Gpus, Labels, NodeId, NodeKind, NodeSpec, NodeState, Resource, Taint,
    MAX_GPUS_PER_NODE, MAX_PRICE_PER_HOUR,
};
pub use crate::resources::{Dimension, GpuRequest, ResourceName, Resources, GPU_MILLI_PER_GPU};
pub use crate::task::{
    Constraints, Gang, Priority, QosClass, Run, Task, TaskId, TaskKind, TaskSpec, Toleration,
};
