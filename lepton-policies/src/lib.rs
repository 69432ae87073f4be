//! Placement policies for Lepton.
//!
//! Every policy implements [`lepton_core::Policy`], so any of them can be
//! boxed as `Box<dyn Policy>` and swapped in a running scheduler. Policies
//! only *choose* a node; the scheduler's cluster state re-checks and books
//! the choice. Inside a node, most policies leave the choice of GPUs to the
//! cluster state, which takes the tightest-fitting ones (FGD and random
//! choose a GPU for a GPU share themselves).
//!
//! Scored policies use small integer scores, as kube-scheduler does, and
//! give ties to the earliest node in cluster order, as the FGD paper's
//! simulator does. Only [`Random`] draws random numbers, from a generator
//! reseeded by every run ([`Policy::reseed`](lepton_core::Policy::reseed)),
//! so runs are reproducible.
//!
//! | name | policy | what it favours |
//! |---|---|---|
//! | `firstfit` | [`FirstFit`] | the first node, in cluster order, with room |
//! | `roundrobin` | [`RoundRobin`] | the next node with room after the last one chosen (static round robin) |
//! | `bestfit` | [`BestFit`] | the least CPU+GPU left over (packing) |
//! | `spread` | [`Spread`] | the most CPU+GPU left over (spreading) |
//! | `balanced` | [`Balanced`] | evenly used CPU, memory and GPU (kube-scheduler's `NodeResourcesBalancedAllocation`) |
//! | `random` | [`Random`] | any feasible node, uniformly |
//! | `dotprod` | [`DotProduct`] | free capacity least aligned with the request (Tetris) |
//! | `packing` | [`GpuPacking`] | partly used GPUs, then partly used nodes, then idle ones |
//! | `clustering` | [`GpuClustering`] | nodes already hosting GPU tasks of the same kind |
//! | `fgd` | [`Fgd`] | the least growth of GPU fragmentation (Weng et al., ATC '23) |
//! | `drl` | `Drl` (feature `drl`) | what a network trained by deep RL in the simulator learned (see the `drl` module) |
//! | `rule` | [`RulePolicy`] | whatever an operator's rules file says: filters and weighted scorers in TOML or JSON |
//!
//! The first four are general-purpose; the next five are the FGD paper's
//! evaluation suite, with the scores its simulator computes. `rule` needs
//! its rules ([`PolicyContext::rules`]), so [`build`] makes it and
//! [`by_name`] cannot.
//!
//! # Quick start
//! ```
//! use lepton_core::{CoreScheduler, NodeId, NodeSpec, Resources, Scheduler, TaskId, TaskSpec};
//! use lepton_policies::{by_name, BestFit};
//!
//! let mut scheduler = CoreScheduler::new(Box::new(BestFit));
//! scheduler.add_node(&NodeSpec::new(NodeId(1), Resources::new(8_000, 16_384)))?;
//! scheduler.add_node(&NodeSpec::new(NodeId(2), Resources::new(4_000, 8_192)))?;
//! scheduler.submit(&TaskSpec::new(TaskId(1), Resources::new(2_000, 1_024)))?;
//! assert_eq!(scheduler.schedule()[0].node, NodeId(2)); // the tighter node
//!
//! // Swap to spreading at run time.
//! scheduler.set_policy(by_name("spread").expect("a known name"));
//! scheduler.submit(&TaskSpec::new(TaskId(2), Resources::new(1_000, 1_024)))?;
//! assert_eq!(scheduler.schedule()[0].node, NodeId(1)); // the emptier node
//! # Ok::<(), lepton_core::Error>(())
//! ```

mod candidates;
mod demand;
#[cfg(feature = "drl")]
pub mod drl;
pub mod files;
mod greedy;
mod lifetime;
mod registry;
mod rule;

pub use candidates::{
    candidate_nodes, describe_candidates, Candidate, CandidateBuilder, FEATURES, FEATURE_BOUNDS,
    FEATURE_NAMES,
};
pub use demand::DemandForecast;
pub use greedy::{
    Balanced, BestFit, DotProduct, Fgd, FirstFit, GpuClustering, GpuPacking, KubeResources,
    LifetimeAware, Random, RoundRobin, Spread,
};
pub use lifetime::{task_kind, Lifetime, LifetimePredictor, BINS_PER_DOUBLING, MIN_SEEN};
pub use registry::{
    build, by_name, policy_descriptions, policy_names, register, PolicyContext, PolicyFactory,
    PAPER_POLICIES,
};
pub use rule::RulePolicy;

#[cfg(feature = "drl")]
pub use drl::Drl;

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
    /// A rules file (or rules text) is malformed; the message names the
    /// offending value.
    #[error("{origin}:{line}: {message}")]
    RuleConfig {
        /// The file's path, or `<toml>` / `<json>` for rules given as text.
        origin: String,
        /// The 1-based line at fault.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// A rules file's extension says neither TOML nor JSON.
    #[error("rules file {path:?} must end in .toml or .json")]
    RulesFileExtension {
        /// The file's path.
        path: String,
    },
    /// A rules file could not be read.
    #[error("cannot read rules file {path:?}: {reason}")]
    RulesFileUnreadable {
        /// The file's path.
        path: String,
        /// Why, as the operating system says it (text, so that this error
        /// stays `Clone` and `Eq`).
        reason: String,
    },
    /// The `rule` policy was asked for without rules.
    #[error(
        "the rule policy needs a rules file (--rules FILE, or PolicyContext::rules when embedding)"
    )]
    MissingRules,
    /// A policy needs a feature this build was compiled without.
    #[error("policy {name:?} needs the crate feature {feature:?}, which this build lacks")]
    FeatureDisabled {
        /// The policy.
        name: String,
        /// The feature.
        feature: &'static str,
    },
    /// A model file of the `drl` policy cannot be used.
    #[error("model file {path:?}: {reason}")]
    Model {
        /// The file (or `<built-in model>`).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A gradient step of the learned policy failed.
    #[error("training failed: {reason}")]
    Training {
        /// What went wrong.
        reason: String,
    },
    /// A policy name to register is empty or has other characters than
    /// lowercase ASCII letters, digits, `-` and `_`.
    #[error("policy name {name:?} is invalid: use lowercase letters, digits, '-' and '_'")]
    InvalidPolicyName {
        /// The name given.
        name: String,
    },
    /// A policy of this name is built in or already registered.
    #[error("a policy named {name:?} already exists")]
    PolicyNameTaken {
        /// The name given.
        name: String,
    },
}
