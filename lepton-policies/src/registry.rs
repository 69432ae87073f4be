//! Policies by name, for configuration files and command lines.

use lepton_core::Policy;

use crate::{BestFit, Error, FirstFit, Spread};

/// The names [`by_name`] accepts.
pub const POLICY_NAMES: &[&str] = &["firstfit", "bestfit", "spread"];

/// A new policy of the given name.
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
    match name {
        "firstfit" => Ok(Box::new(FirstFit)),
        "bestfit" => Ok(Box::new(BestFit)),
        "spread" => Ok(Box::new(Spread)),
        _ => Err(Error::UnknownPolicy {
            name: name.to_owned(),
            valid: POLICY_NAMES.join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_builds_a_policy_of_that_name() {
        for name in POLICY_NAMES {
            assert_eq!(by_name(name).unwrap().name(), *name);
        }
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let err = by_name("fastest").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown policy \"fastest\"; valid names: firstfit, bestfit, spread"
        );
    }
}
