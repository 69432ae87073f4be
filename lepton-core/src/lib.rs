//! The core of Lepton, an embeddable scheduling engine for clouds and data
//! centers.
//!
//! This crate holds what every part of Lepton shares and nothing heavy: the
//! resource model ([`Resources`], [`GpuRequest`]), nodes and tasks (and the
//! [`Resource`] and [`Task`] traits an orchestrator implements for its own
//! types), the lock-free [`TaskQueue`], the [`ClusterState`] accounting that
//! never over-commits a node or a GPU, the one feasibility stage every
//! placement path consults ([`FeasibleNodes`]: the node's checks and the
//! policy's [`NodeFilter`], with the index searches policies choose
//! through), the [`Policy`] trait placement strategies implement, and
//! [`CoreScheduler`], a synchronous state machine the caller drives with
//! events and a clock, and into whose queue any number of threads submit
//! through a cloneable [`Submitter`].
//!
//! It also defines GPU fragmentation as the FGD paper does
//! ([`TargetWorkload`]), which policies and the simulator (`lepton-sim`)
//! share, and a small seeded random number generator ([`SeededRng`]).
//! There is no file I/O, no async runtime and no simulator here.
//!
//! # Why the design is so
//! The scheduler never launches anything and never reads the system time: the
//! caller feeds it [`Event`]s and asks it for [`Assignment`]s. That is what
//! lets a production control loop and a simulator in virtual time run the
//! very same code. Policies only *choose*; the cluster state re-checks and
//! books every choice, so a faulty policy cannot break the accounting.
//!
//! # Quick start
//! ```
//! use lepton_core::*;
//!
//! // Any policy will do; real ones live in `lepton-policies`.
//! let first_fit = policy_fn("first-fit", |nodes: &FeasibleNodes<'_>| {
//!     nodes.first_fit().map(|node| Placement::on(node.id()))
//! });
//! let mut scheduler = CoreScheduler::new(Box::new(first_fit));
//! let gpu_node = NodeSpec::new(NodeId(1), Resources::new(32_000, 131_072))
//!     .with_gpus(Gpus::new("V100M32", 4));
//! scheduler.add_node(&gpu_node)?;
//!
//! // Two tasks share one GPU; a third wants two whole GPUs.
//! scheduler.submit(&TaskSpec::new(TaskId(1), Resources::new(4_000, 8_192)).with_gpu(GpuRequest::shared(500)))?;
//! scheduler.submit(&TaskSpec::new(TaskId(2), Resources::new(4_000, 8_192)).with_gpu(GpuRequest::shared(500)))?;
//! scheduler.submit(&TaskSpec::new(TaskId(3), Resources::new(8_000, 16_384)).with_gpu(GpuRequest::whole(2)))?;
//!
//! let assignments = scheduler.schedule();
//! assert_eq!(assignments.len(), 3);
//! assert_eq!(assignments[0].gpus, assignments[1].gpus); // shared the same GPU
//! scheduler.complete(assignments[2].run())?;
//! assert_eq!(scheduler.report().tasks.running, 2);
//! # Ok::<(), lepton_core::Error>(())
//! ```

mod article;
mod backend;
mod clock;
mod cluster;
mod error;
mod fragmentation;
mod node;
mod policy;
mod queue;
mod resources;
mod rng;
mod scheduler;
mod sync;
mod task;

pub use article::article_utility;
pub use backend::{Backend, BackendError, Handle, Launch, RunStatus, Usage};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use cluster::{
    Allocation, ClusterNode, ClusterState, FeasibleNodes, GpuSlots, LargestNode, NodeFilter,
    Placement, Utilization,
};
pub use error::{Error, Misfit};
pub use fragmentation::{fgd_score, Growth, GrowthCache, ShapeGrowths, TargetWorkload, TaskShape};
pub use node::{
    GpuModel, Gpus, Labels, NodeId, NodeKind, NodeSpec, NodeState, Resource, Taint,
    MAX_GPUS_PER_NODE,
};
pub use policy::{policy_fn, Feedback, FnPolicy, Outcome, Policy};
pub use queue::TaskQueue;
pub use resources::{Dimension, GpuRequest, ResourceName, Resources, GPU_MILLI_PER_GPU};
pub use rng::SeededRng;
pub use scheduler::{
    Assignment, CoreScheduler, CoreSchedulerBuilder, Drained, Event, RebalanceConfig, Report,
    RetryPolicy, SavedNode, SavedState, SavedTask, Scheduler, SchedulerConfig, SchedulerState,
    Submitter, TaskCounts, TaskState,
};
pub use task::{
    Constraints, Priority, QosClass, Run, Task, TaskId, TaskKind, TaskSpec, Toleration,
};
