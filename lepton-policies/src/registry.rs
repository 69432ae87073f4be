//! Policies by name, for configuration files and command lines.

use std::sync::Arc;

use lepton_core::{Policy, TargetWorkload};

use crate::{
    Balanced, BestFit, DotProduct, Error, Fgd, FirstFit, GpuClustering, GpuPacking, Random,
    RulePolicy, Spread,
};

/// The names [`build`] accepts.
///
/// Every one but `rule` also works with [`by_name`]: `rule` needs its rules
/// in [`PolicyContext::rules`], and without them is an
/// [`Error::MissingRules`]. It is listed all the same, so that `lepton
/// policies` and the unknown-name error show it.
pub const POLICY_NAMES: &[&str] = &[
    "firstfit",
    "bestfit",
    "spread",
    "balanced",
    "random",
    "dotprod",
    "packing",
    "clustering",
    "fgd",
    "rule",
];

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
/// [`Error::MissingRules`] for `rule` without [`PolicyContext::rules`].
pub fn build(name: &str, context: &PolicyContext) -> Result<Box<dyn Policy>, Error> {
    Ok(match name {
        "firstfit" => Box::new(FirstFit),
        "bestfit" => Box::new(BestFit),
        "spread" => Box::new(Spread),
        "balanced" => Box::new(Balanced),
        "random" => Box::new(Random::default()),
        "dotprod" => Box::new(DotProduct),
        "packing" => Box::new(GpuPacking),
        "clustering" => Box::new(GpuClustering),
        "fgd" => match &context.target_workload {
            Some(workload) => Box::new(Fgd::new(Arc::clone(workload))),
            None => Box::new(Fgd::learning()),
        },
        "rule" => match &context.rules {
            Some(rules) => Box::new(RulePolicy::clone(rules)),
            None => return Err(Error::MissingRules),
        },
        _ => {
            return Err(Error::UnknownPolicy {
                name: name.to_owned(),
                valid: POLICY_NAMES.join(", "),
            })
        }
    })
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

    #[test]
    fn every_listed_name_builds_a_policy_of_that_name() {
        for name in POLICY_NAMES {
            assert_eq!(build(name, &full_context()).unwrap().name(), *name);
            if *name != "rule" {
                assert_eq!(by_name(name).unwrap().name(), *name);
            }
        }
        for name in PAPER_POLICIES {
            assert!(POLICY_NAMES.contains(name));
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
            policy.select(&task, &cluster).map(|p| p.node),
            Some(NodeId(2))
        );
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let err = by_name("fastest").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "unknown policy \"fastest\"; valid names: {}",
                POLICY_NAMES.join(", ")
            )
        );
    }
}
