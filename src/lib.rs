//! Lepton: an embeddable scheduling engine for clouds and data centers.
//!
//! An orchestrator links Lepton, tells it which nodes exist (servers, VMs,
//! container hosts), submits tasks, and Lepton decides where each task runs.
//! This facade re-exports the parts:
//!
//! | crate | what | here as |
//! |---|---|---|
//! | `lepton-core` | model, traits, lock-free queue, cluster accounting, scheduler core | the root (`lepton::CoreScheduler`, …) and its modules ([`scheduler`], [`cluster`], [`model`], …) |
//! | `lepton-policies` | placement policies and the registry by name | [`policies`] |
//! | `lepton-sim` | simulator: trace and workload readers, fill, timed replay, chaos runs, the learned policy's training, the article's scenarios with their contestants (`sim::scenario::compare_*`) | [`sim`] |
//! | `lepton-adapters` | backends (Docker, libvirt, EC2), each behind a feature | `adapters` (feature `controller`) |
//! | `lepton-controller` | the tokio control loop (`Controller`) over backends | `controller` and the root (`lepton::Controller`, …), feature `controller` |
//!
//! # Quick start
//! ```
//! use lepton::policies::BestFit;
//! use lepton::{CoreScheduler, NodeId, NodeSpec, Resources, Scheduler, TaskId, TaskSpec};
//!
//! let mut scheduler = CoreScheduler::new(Box::new(BestFit));
//! for id in 1..=3 {
//!     scheduler.add_node(&NodeSpec::new(NodeId(id), Resources::new(4_000, 8_192)))?;
//! }
//! scheduler.submit(&TaskSpec::new(TaskId(1), Resources::new(1_500, 2_048)))?;
//! for assignment in scheduler.schedule() {
//!     println!("{} runs on {}", assignment.task, assignment.node);
//!     scheduler.complete(assignment.run())?;
//! }
//! # Ok::<(), lepton::Error>(())
//! ```
//!
//! # Control loop
//! `Controller` (feature `controller`) drives the scheduler on one or more
//! [`Backend`](backend::Backend)s with tokio: see the `controller` module (the
//! `lepton-controller` crate).
//!
//! # Features
//! With no feature the library is the scheduler, the policies and the
//! simulator: no async runtime, no SDK, no command-line stack.
//! - `controller`: the tokio `Controller` and the `adapters` module.
//! - `docker`, `libvirt`, `aws`: one backend of `adapters` each (and its
//!   SDK), with the controller; `full`: all three.
//!
//! The `lepton` binary lives in its own package (`lepton-cli`), so an
//! orchestrator that depends on this crate never compiles clap, indicatif
//! or plotters.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "controller")]
#[cfg_attr(docsrs, doc(cfg(feature = "controller")))]
pub use lepton_adapters as adapters;
#[cfg(feature = "controller")]
#[cfg_attr(docsrs, doc(cfg(feature = "controller")))]
pub use lepton_controller as controller;
#[cfg(feature = "controller")]
#[cfg_attr(docsrs, doc(cfg(feature = "controller")))]
pub use lepton_controller::{
    Controller, ControllerConfig, ControllerError, LoopSummary, StepReport,
};
pub use lepton_core::*;
pub use lepton_policies as policies;
pub use lepton_sim as sim;

// The README's quick start is compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
