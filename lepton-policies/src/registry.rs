//! Policies by name, for configuration files and command lines.
//!
//! The built-in policies are one table (`BUILT_IN`: name, description,
//! factory), matched by name without allocating; an embedder adds its own with [`register`], and from then on [`by_name`],
//! [`build`], [`policy_names`] (and so the `lepton` CLI and configuration
//! files that name a policy) know them like the built-ins. Registered
//! policies live in one process-wide table: registering is rare, building
//! takes a read lock.

use std::sync::{Arc, RwLock};

use lepton_core::fragmentation::TargetWorkload;
use lepton_core::Policy;

use crate::{
    Balanced, BestFit, DotProduct, Error, Fgd, FirstFit, GpuClustering, GpuPacking, LifetimeAware,
    LifetimePredictor, Random, RoundRobin, RulePolicy, Spread,
};

/// A built-in policy: its name (the one its `Policy::name` answers), a
/// one-line description, and how to build it.
struct BuiltIn {
    name: &'static str,
    description: &'static str,
    build: fn(&PolicyContext) -> Result<Box<dyn Policy>, Error>,
}

/// The built-in policies, in the order `lepton policies` lists them: the
/// one place each is named, described and built.
const BUILT_IN: &[BuiltIn] = &[
    BuiltIn {
        name: FirstFit::NAME,
        description: "the first node with room",
        build: |_| Ok(Box::new(FirstFit)),
    },
    BuiltIn {
        name: RoundRobin::NAME,
        description: "the next node with room after the last one chosen (static round robin)",
        build: |_| Ok(Box::new(RoundRobin::default())),
    },
    BuiltIn {
        name: BestFit::NAME,
        description: "the least CPU+GPU left over (packing)",
        build: |_| Ok(Box::new(BestFit)),
    },
    BuiltIn {
        name: LifetimeAware::NAME,
        description: "tasks expected to end together share nodes (lifetimes learned online, LAVA)",
        build: |context| {
            Ok(Box::new(LifetimeAware::with_history(
                context.lifetimes.as_deref().cloned().unwrap_or_default(),
            )))
        },
    },
    BuiltIn {
        name: Spread::NAME,
        description: "the most CPU+GPU left over (worst fit)",
        build: |_| Ok(Box::new(Spread)),
    },
    BuiltIn {
        name: Balanced::NAME,
        description: "evenly used CPU, memory, GPU (kube-scheduler's balanced allocation)",
        build: |_| Ok(Box::new(Balanced)),
    },
    BuiltIn {
        name: Random::NAME,
        description: "any feasible node (seeded)",
        build: |_| Ok(Box::new(Random::default())),
    },
    BuiltIn {
        name: DotProduct::NAME,
        description: "free capacity least aligned with the request (Tetris)",
        build: |_| Ok(Box::new(DotProduct::default())),
    },
    BuiltIn {
        name: GpuPacking::NAME,
        description: "partly used GPUs first (the FGD paper's GpuPacking)",
        build: |_| Ok(Box::new(GpuPacking::default())),
    },
    BuiltIn {
        name: GpuClustering::NAME,
        description: "nodes hosting GPU tasks of the same kind (GpuClustering)",
        build: |_| Ok(Box::new(GpuClustering::default())),
    },
    BuiltIn {
        name: Fgd::NAME,
        description: "the least growth of GPU fragmentation (Weng et al., ATC '23)",
        build: |context| {
            Ok(match &context.target_workload {
                Some(workload) => Box::new(Fgd::new(Arc::clone(workload))),
                None => Box::new(Fgd::learning()),
            })
        },
    },
    BuiltIn {
        name: RulePolicy::NAME,
        description: "filters and weighted scorers from a TOML/JSON rules file",
        build: |context| match &context.rules {
            Some(rules) => Ok(Box::new(RulePolicy::clone(rules))),
            None => Err(Error::MissingRules),
        },
    },
    BuiltIn {
        name: DRL,
        description: "a neural network trained by deep RL in the simulator (feature drl)",
        build: build_drl,
    },
];

/// The learned policy's name (`Drl::NAME`), also in
/// builds without it.
const DRL: &str = "drl";

/// Builds a policy from a [`PolicyContext`]; see [`register`].
pub type PolicyFactory =
    Arc<dyn Fn(&PolicyContext) -> Result<Box<dyn Policy>, Error> + Send + Sync>;

/// A policy an embedder registered.
struct Registered {
    name: String,
    description: String,
    factory: PolicyFactory,
}

static REGISTERED: RwLock<Vec<Registered>> = RwLock::new(Vec::new());

/// Makes a policy of the embedder's own known by `name` to [`by_name`],
/// [`build`] and [`policy_names`], for the rest of the process.
///
/// ```
/// use lepton_policies::{by_name, register, FirstFit};
///
/// register("mine", "first fit, under another name", |_context| {
///     Ok(Box::new(FirstFit))
/// })?;
/// assert_eq!(by_name("mine")?.name(), "firstfit");
/// assert!(lepton_policies::policy_names().contains(&"mine".to_owned()));
/// # Ok::<(), lepton_policies::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidPolicyName`] for a name that is empty or has characters
/// other than lowercase ASCII letters, digits, `-` and `_`;
/// [`Error::PolicyNameTaken`] for a built-in or already registered name.
pub fn register<F>(name: &str, description: &str, factory: F) -> Result<(), Error>
where
    F: Fn(&PolicyContext) -> Result<Box<dyn Policy>, Error> + Send + Sync + 'static,
{
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if name.is_empty() || !name.chars().all(valid) {
        return Err(Error::InvalidPolicyName {
            name: name.to_owned(),
        });
    }
    // A panic elsewhere while holding the lock leaves a table that is still
    // consistent (entries are pushed whole), so a poisoned lock is used as is.
    let mut registered = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    if BUILT_IN.iter().any(|b| b.name == name) || registered.iter().any(|r| r.name == name) {
        return Err(Error::PolicyNameTaken {
            name: name.to_owned(),
        });
    }
    registered.push(Registered {
        name: name.to_owned(),
        description: description.to_owned(),
        factory: Arc::new(factory),
    });
    Ok(())
}

/// Every name [`build`] accepts: the built-ins, then the registered ones
/// in the order they were registered.
///
/// Every built-in but `rule` also works with [`by_name`]: `rule` needs its
/// rules in [`PolicyContext::rules`], and without them is an
/// [`Error::MissingRules`]. It is listed all the same, so that `lepton
/// policies` and the unknown-name error show it.
pub fn policy_names() -> Vec<String> {
    policy_descriptions()
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Every policy's name with its one-line description, as [`policy_names`].
pub fn policy_descriptions() -> Vec<(String, String)> {
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    BUILT_IN
        .iter()
        .map(|b| (b.name.to_owned(), b.description.to_owned()))
        .chain(
            registered
                .iter()
                .map(|r| (r.name.clone(), r.description.clone())),
        )
        .collect()
}

/// The six policies of the FGD paper's evaluation, in its table's order.
pub const PAPER_POLICIES: &[&str] = &[
    "random",
    "dotprod",
    "clustering",
    "packing",
    "bestfit",
    "fgd",
];

/// What some policies need beyond their name.
#[derive(Debug, Clone, Default)]
pub struct PolicyContext {
    /// The workload FGD measures fragmentation against; without it, FGD
    /// learns one from the tasks it places.
    pub target_workload: Option<Arc<TargetWorkload>>,
    /// The rules of the `rule` policy (see [`RulePolicy`]); each policy
    /// built gets its own copy.
    pub rules: Option<Arc<RulePolicy>>,
    /// The `drl` policy's model file (safetensors); without it, the model
    /// built into the crate.
    pub model: Option<std::path::PathBuf>,
    /// The lifetimes of tasks that ended before the run, which the
    /// `lifetime` policy starts from (each policy built gets its own
    /// copy); without them it learns from the runs it sees end.
    pub lifetimes: Option<Arc<LifetimePredictor>>,
}

/// A new policy of the given name, with nothing but defaults.
///
/// ```
/// let policy = lepton_policies::by_name("bestfit").unwrap();
/// assert_eq!(policy.name(), "bestfit");
/// assert!(lepton_policies::by_name("nope").is_err());
/// ```
///
/// # Errors
/// [`Error::UnknownPolicy`], listing the valid names;
/// [`Error::MissingRules`] for `rule`.
pub fn by_name(name: &str) -> Result<Box<dyn Policy>, Error> {
    build(name, &PolicyContext::default())
}

/// A new policy of the given name, using `context` where it needs it.
///
/// # Errors
/// [`Error::UnknownPolicy`], listing the valid names;
/// [`Error::MissingRules`] for `rule` without [`PolicyContext::rules`];
/// what a registered factory returns.
pub fn build(name: &str, context: &PolicyContext) -> Result<Box<dyn Policy>, Error> {
    match BUILT_IN.iter().find(|b| b.name == name) {
        Some(built_in) => (built_in.build)(context),
        None => build_registered(name, context),
    }
}

#[cfg(feature = "drl")]
fn build_drl(context: &PolicyContext) -> Result<Box<dyn Policy>, Error> {
    let workload = context.target_workload.clone().unwrap_or_default();
    Ok(Box::new(match &context.model {
        Some(path) => crate::Drl::load(path, workload)?,
        None => crate::Drl::trained(workload)?,
    }))
}

#[cfg(not(feature = "drl"))]
fn build_drl(_context: &PolicyContext) -> Result<Box<dyn Policy>, Error> {
    Err(Error::FeatureDisabled {
        name: DRL.to_owned(),
        feature: "drl",
    })
}

fn build_registered(name: &str, context: &PolicyContext) -> Result<Box<dyn Policy>, Error> {
    let factory = REGISTERED
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|r| r.name == name)
        .map(|r| Arc::clone(&r.factory));
    match factory {
        // Called without the lock held: a factory may look up other policies.
        Some(factory) => factory(context),
        None => Err(Error::UnknownPolicy {
            name: name.to_owned(),
            valid: policy_names().join(", "),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use lepton_core::{ClusterState, NodeId, NodeSpec, Resources, TaskId, TaskSpec};

    use super::*;

    /// A context with every optional input set, as a test would build
    /// every listed policy with.
    pub(crate) fn full_context() -> PolicyContext {
        PolicyContext {
            rules: Some(Arc::new(RulePolicy::default())),
            ..PolicyContext::default()
        }
    }

    /// The listed names this build can make: all of them, but `drl`
    /// without the `drl` feature, which must then say so.
    pub(crate) fn buildable_names() -> Vec<&'static str> {
        let drl = build("drl", &PolicyContext::default());
        if cfg!(feature = "drl") {
            assert_eq!(drl.unwrap().name(), "drl");
        } else {
            let err = drl.map(|p| p.name().to_owned()).unwrap_err();
            assert_eq!(
                err,
                Error::FeatureDisabled {
                    name: "drl".into(),
                    feature: "drl"
                }
            );
        }
        BUILT_IN
            .iter()
            .map(|b| b.name)
            .filter(|&name| name != "drl" || cfg!(feature = "drl"))
            .collect()
    }

    #[test]
    fn every_listed_name_builds_a_policy_of_that_name() {
        for name in buildable_names() {
            assert_eq!(build(name, &full_context()).unwrap().name(), name);
            if name != "rule" {
                assert_eq!(by_name(name).unwrap().name(), name);
            }
        }
        for name in PAPER_POLICIES {
            assert!(BUILT_IN.iter().any(|b| b.name == *name), "{name}");
        }
    }

    #[test]
    fn rule_without_rules_says_what_it_needs() {
        let err = by_name("rule").unwrap_err();
        assert_eq!(err, Error::MissingRules);
        assert_eq!(
            err.to_string(),
            "the rule policy needs a rules file (--rules FILE, or PolicyContext::rules when embedding)"
        );
    }

    #[test]
    fn rule_builds_a_copy_of_the_given_rules() {
        let rules = RulePolicy::from_toml_str("[[score]]\nrule = \"spread\"\n").unwrap();
        let context = PolicyContext {
            rules: Some(Arc::new(rules)),
            ..PolicyContext::default()
        };
        let mut policy = build("rule", &context).unwrap();
        let mut cluster = ClusterState::new();
        for (id, cpu_milli) in [(1, 4_000), (2, 8_000)] {
            let node = NodeSpec::new(NodeId(id), Resources::new(cpu_milli, 4_096));
            cluster.add_node(node).unwrap();
        }
        let task = TaskSpec::new(TaskId(1), Resources::new(1_000, 1_024));
        // Spreading: the bigger node, though it comes second.
        assert_eq!(
            policy.decide(&task, &cluster).map(|p| p.node),
            Some(NodeId(2))
        );
    }

    #[test]
    fn registered_policies_are_built_listed_and_guarded() {
        register("test-spread", "spread, registered", |_| {
            Ok(Box::new(Spread))
        })
        .unwrap();
        assert_eq!(by_name("test-spread").unwrap().name(), "spread");
        let described = policy_descriptions();
        let last = described
            .iter()
            .position(|(n, _)| n == "test-spread")
            .unwrap();
        assert!(last >= BUILT_IN.len(), "after the built-ins");
        assert_eq!(described[last].1, "spread, registered");
        assert!(by_name("nope")
            .unwrap_err()
            .to_string()
            .contains("test-spread"));
        for taken in ["bestfit", "test-spread"] {
            assert_eq!(
                register(taken, "", |_| Ok(Box::new(Spread))).unwrap_err(),
                Error::PolicyNameTaken {
                    name: taken.to_owned()
                }
            );
        }
        for bad in ["", "Mine", "a b", "x/y"] {
            assert!(matches!(
                register(bad, "", |_| Ok(Box::new(Spread))),
                Err(Error::InvalidPolicyName { .. })
            ));
        }
        // A factory's error comes back as it is.
        register("test-failing", "", |_| Err(Error::MissingRules)).unwrap();
        assert_eq!(by_name("test-failing").unwrap_err(), Error::MissingRules);
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let err = by_name("fastest").unwrap_err();
        assert!(err.to_string().starts_with(&format!(
            "unknown policy \"fastest\"; valid names: {}",
            BUILT_IN
                .iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
}
