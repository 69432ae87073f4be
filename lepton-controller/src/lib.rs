//! The control loop: Lepton's scheduler put to work on real backends.
//!
//! A [`Controller`] owns a [`CoreScheduler`] and one or more [`Backend`]s
//! and runs the loop of the design, one [`step`](Controller::step) at a
//! time: monitor (inventory as heartbeat, new nodes added), watch (poll the
//! status of every run, a bounded number at once, and turn endings into
//! events), place ([`schedule`](Scheduler::schedule)), execute
//! (live-migrate the runs that move where the backend can, stop what the
//! assignments evict, then launch, a bounded number at once), and recover
//! (failed runs are retried by the scheduler; a launch the backend could
//! not even receive is retried for the same run, so that nothing starts
//! twice). A service calls [`run`](Controller::run), which steps every
//! tick until its shutdown signal; a batch calls
//! [`run_until_idle`](Controller::run_until_idle), which steps until every
//! task has ended; [`shutdown`](Controller::shutdown) stops what still runs.
//!
//! Backends answer in whatever order they finish, but the scheduler hears
//! of it in a fixed order, so that the same runs and answers lead to the
//! same decisions: endings in the order of their tasks' ids (the runs are
//! kept by task in a `BTreeMap`), the outcomes of launches and migrations
//! in the order they were asked for, measured usage in the order of the
//! nodes' ids.
//!
//! A move (an assignment whose [`moves_from`](Assignment::moves_from) is
//! the task's running run: a drain, the rebalancer) is a live migration
//! when the run's backend [can migrate](Backend::can_migrate_to) to the new
//! node; when it cannot, or the migration fails, the run is stopped and
//! launched afresh there.
//!
//! Every decision gets a `tracing` span (`place`, `migrate`, `launch`,
//! `evict`, `end`).
//!
//! The loop's stages live one module each, as `impl Controller` blocks:
//! `watch` (monitor, watch, usage, orphans), `migrate` (live moves and
//! evictions), `launch` (launches and their retries), over one helper for
//! bounded, ordered concurrency (`parallel`). The `lepton` facade
//! re-exports this crate behind its feature `controller`; the backends
//! themselves are in `lepton-adapters`.
//!
//! # Quick start
//! A batch: submit, step until every task has ended, stop what is left.
//! ```no_run
//! # async fn batch(backend: std::sync::Arc<dyn lepton_core::backend::Backend>) -> Result<(), lepton_controller::ControllerError> {
//! use std::time::Duration;
//!
//! use lepton_controller::{Controller, ControllerConfig};
//! use lepton_core::{CoreScheduler, Resources, TaskId, TaskSpec};
//! use lepton_policies::BestFit;
//!
//! let scheduler = CoreScheduler::new(Box::new(BestFit));
//! let mut controller =
//!     Controller::new(scheduler, vec![backend], ControllerConfig::default()).await?;
//! controller.submit(&TaskSpec::new(TaskId(1), Resources::new(1_500, 2_048)))?;
//! for (handle, status) in controller.run_until_idle(Duration::from_secs(600)).await? {
//!     println!("{handle}: {status:?}");
//! }
//! controller.shutdown().await;
//! # Ok(()) }
//! ```

#[cfg(doc)]
use lepton_core::{backend::Backend, Assignment, CoreScheduler, Scheduler};

mod config;
mod controller;
mod launch;
mod migrate;
mod parallel;
#[cfg(test)]
mod test_support;
mod watch;

pub use config::{ControllerConfig, ControllerError, LoopSummary, StepReport};
pub use controller::Controller;
