//! Policies by name, for configuration files and command lines.

use std::sync::Arc;

use lepton_core::{Policy, TargetWorkload};

use crate::{BestFit, DotProduct, Error, Fgd, FirstFit, GpuClustering, GpuPacking, Random, Spread};

/// The names [`by_name`] and [`build`] accept.
pub const POLICY_NAMES: &[&str] = &[
    "firstfit",
    "bestfit",
    "spread",
    "random",
    "dotprod",
    "packing",
    "clustering",
    "fgd",
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
/// [`Error::UnknownPolicy`], listing the valid names.
pub fn by_name(name: &str) -> Result<Box<dyn Policy>, Error> {
    build(name, &PolicyContext::default())
}

/// A new policy of the given name, using `context` where it needs it.
///
/// # Errors
/// [`Error::UnknownPolicy`], listing the valid names.
pub fn build(name: &str, context: &PolicyContext) -> Result<Box<dyn Policy>, Error> {
    Ok(match name {
        "firstfit" => Box::new(FirstFit),
        "bestfit" => Box::new(BestFit),
        "spread" => Box::new(Spread),
        "random" => Box::new(Random::default()),
        "dotprod" => Box::new(DotProduct),
        "packing" => Box::new(GpuPacking),
        "clustering" => Box::new(GpuClustering),
        "fgd" => match &context.target_workload {
            Some(workload) => Box::new(Fgd::new(Arc::clone(workload))),
            None => Box::new(Fgd::learning()),
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
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_builds_a_policy_of_that_name() {
        for name in POLICY_NAMES {
            assert_eq!(by_name(name).unwrap().name(), *name);
        }
        for name in PAPER_POLICIES {
            assert!(POLICY_NAMES.contains(name));
        }
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
