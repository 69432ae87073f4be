//! The core of Lepton, an embeddable scheduling engine for clouds and data
//! centers.
//!
//! This crate holds what every part of Lepton shares and nothing heavy: the
//! model of nodes, tasks and resources, the traits an orchestrator or a
//! placement strategy implements, the lock-free task queue, the cluster
//! accounting that never over-commits a node or a GPU, and [`CoreScheduler`],
//! a synchronous state machine the caller drives with events and a clock.
//! There is no file I/O, no async runtime and no simulator here.
//!
//! # Why the design is so
//! The scheduler never launches anything and never reads the system time: the
//! caller feeds it [`Event`]s and asks it for [`Assignment`]s. That is what
//! lets a production control loop and a simulator in virtual time run the
//! very same code. Policies only *choose*, among the nodes the one
//! feasibility stage ([`FeasibleNodes`]) lets through; the cluster state
//! re-checks and books every choice, so a faulty policy cannot break the
//! accounting.
//!
//! # Where things are
//! The root holds what nearly every embedder needs: the [`Scheduler`] trait
//! (the one interface an embedder drives) and its [`CoreScheduler`], the
//! [`Policy`] trait with [`policy_fn`], [`FeasibleNodes`] and [`Placement`],
//! the node and task specs with their ids and resources, the [`Event`]s fed
//! in and the [`Assignment`]s handed out, and the [`Error`]. The rest lives
//! in one module per concept:
//!
//! - [`model`]: nodes, tasks and resources, and the [`Resource`](model::Resource)
//!   and [`Task`](model::Task) traits for an orchestrator's own types.
//! - [`cluster`]: the accounting ([`ClusterState`]), the feasibility stage and
//!   what a policy sees of a node.
//! - [`policy`]: the [`Policy`] trait, closure policies and the feedback a
//!   policy may learn from.
//! - [`scheduler`]: the scheduler, its builder and configuration, its events,
//!   reports, submission handle and saved state.
//! - [`fragmentation`]: GPU fragmentation as the FGD paper defines it, shared
//!   by policies and the simulator (`lepton-sim`).
//! - [`backend`]: the interface a backend implements to run tasks.
//! - [`clock`]: the injectable clock and its timestamps.
//! - [`queue`]: the lock-free priority queue behind submission.
//! - [`rng`]: the one small seeded random number generator.
//! - [`article`]: the utility formula of the article Lepton grew from.
//!
//! # Quick start
//! ```
//! use lepton_core::{
//!     policy_fn, CoreScheduler, FeasibleNodes, GpuRequest, Gpus, NodeId, NodeSpec, Placement,
//!     Resources, Scheduler, TaskId, TaskSpec,
//! };
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

pub mod admission;
pub mod article;
pub mod backend;
pub mod clock;
pub mod cluster;
mod error;
pub mod fragmentation;
pub mod model;
mod node;
pub mod policy;
pub mod queue;
mod resources;
pub mod rng;
pub mod scheduler;
mod sync;
mod task;

pub use cluster::{ClusterState, FeasibleNodes, Placement};
pub use error::{readable_number, Error, Misfit};
pub use model::{GpuRequest, Gpus, NodeId, NodeSpec, Resources, Run, TaskId, TaskSpec};
pub use policy::{policy_fn, Policy};
pub use scheduler::{Assignment, CoreScheduler, Event, Scheduler};
