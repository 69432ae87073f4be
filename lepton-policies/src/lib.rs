//! Placement policies for Lepton.
//!
//! Every policy implements [`lepton_core::Policy`], so any of them can be
//! boxed as `Box<dyn Policy>` and swapped in a running scheduler. Policies
//! only *choose* a node; the scheduler's cluster state re-checks and books
//! the choice. Inside a node, these policies leave the choice of GPUs to the
//! cluster state, which takes the tightest-fitting ones.
//!
//! | name | policy | what it favours |
//! |---|---|---|
//! | `firstfit` | [`FirstFit`] | the first node, in cluster order, with room |
//! | `bestfit` | [`BestFit`] | the least CPU+GPU left over (packing) |
//! | `spread` | [`Spread`] | the most CPU+GPU left over (spreading) |
//!
//! # Quick start
//! ```
//! use lepton_core::*;
//! use lepton_policies::{by_name, BestFit};
//!
//! let mut scheduler = CoreScheduler::new(Box::new(BestFit));
//! scheduler.add_node(&NodeSpec::new(NodeId(1), Resources::new(8_000, 16_384)))?;
//! scheduler.add_node(&NodeSpec::new(NodeId(2), Resources::new(2_000, 4_096)))?;
//! scheduler.submit(&TaskSpec::new(TaskId(1), Resources::new(2_000, 1_024)))?;
//! assert_eq!(scheduler.schedule()[0].node, NodeId(2)); // the tighter node
//!
//! // Swap to spreading at run time.
//! scheduler.set_policy(by_name("spread").expect("a known name"));
//! scheduler.submit(&TaskSpec::new(TaskId(2), Resources::new(1_000, 1_024)))?;
//! assert_eq!(scheduler.schedule()[0].node, NodeId(1));
//! # Ok::<(), lepton_core::Error>(())
//! ```

mod greedy;
mod registry;

pub use greedy::{BestFit, FirstFit, Spread};
pub use registry::{by_name, POLICY_NAMES};

/// Errors of `lepton-policies`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No policy has this name.
    #[error("unknown policy {name:?}; valid names: {valid}")]
    UnknownPolicy {
        /// The name asked for.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
}
