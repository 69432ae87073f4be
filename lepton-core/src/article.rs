//! The formulas of the article Lepton grew from.
//!
//! The article scores a schedule with the utility
//!
//! U(S, T, P) = ½·[1/‖S‖ + 1/‖T‖] − ½·[(1/α)(‖S‖ − 1) + (1/β)(‖T‖ − 1)]
//!
//! where ‖S‖ is the number of servers (VMs) in play, ‖T‖ the number of tasks,
//! and α, β weights. Its worked example (10 VMs, 5 tasks) prints 0.2 for
//! spreading (α = 10, β = 5) and −0.2 for packing onto 5 VMs (α = β = 5), but
//! the formula itself gives **−0.70** and **−0.60**. Lepton implements the
//! formula as written, and its tests pin those two corrected values.
//!
//! The reward (+1 when a task completes, −1 when it fails or times out) is
//! [`Outcome::reward`](crate::policy::Outcome::reward).

use crate::error::Error;

/// The article's utility U(S, T, P) for `servers` servers, `tasks` tasks and
/// weights `alpha`, `beta`.
///
/// ```
/// let spreading = lepton_core::article::article_utility(10, 5, 10.0, 5.0).unwrap();
/// assert!((spreading - (-0.70)).abs() < 1e-12);
/// ```
///
/// # Errors
/// [`Error::OutOfRange`] when `servers` or `tasks` is 0, or a weight is not a
/// finite number above 0.
pub fn article_utility(servers: u32, tasks: u32, alpha: f64, beta: f64) -> Result<f64, Error> {
    let at_least_one = |name, value: u32| {
        if value == 0 {
            Err(Error::OutOfRange {
                name,
                value: 0.0,
                expected: "at least 1",
            })
        } else {
            Ok(f64::from(value))
        }
    };
    let positive = |name, value: f64| {
        if value.is_finite() && value > 0.0 {
            Ok(value)
        } else {
            Err(Error::OutOfRange {
                name,
                value,
                expected: "a finite number above 0",
            })
        }
    };
    let s = at_least_one("servers", servers)?;
    let t = at_least_one("tasks", tasks)?;
    let alpha = positive("alpha", alpha)?;
    let beta = positive("beta", beta)?;
    Ok(0.5 * (1.0 / s + 1.0 / t) - 0.5 * ((s - 1.0) / alpha + (t - 1.0) / beta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Outcome;

    #[test]
    fn article_example_with_the_corrected_values() {
        let spreading = article_utility(10, 5, 10.0, 5.0).unwrap();
        let packing = article_utility(5, 5, 5.0, 5.0).unwrap();
        assert!((spreading - -0.70).abs() < 1e-12, "spreading = {spreading}");
        assert!((packing - -0.60).abs() < 1e-12, "packing = {packing}");
    }

    #[test]
    fn one_server_one_task_is_the_maximum() {
        assert_eq!(article_utility(1, 1, 1.0, 1.0).unwrap(), 1.0);
    }

    #[test]
    fn bad_arguments_are_named() {
        let err = article_utility(0, 5, 1.0, 1.0).unwrap_err();
        assert_eq!(err.to_string(), "servers = 0 is out of range: at least 1");
        let err = article_utility(3, 5, f64::NAN, 1.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "alpha = NaN is out of range: a finite number above 0"
        );
        assert!(article_utility(3, 0, 1.0, 1.0).is_err());
        assert!(article_utility(3, 5, 1.0, -2.0).is_err());
    }

    #[test]
    fn reward_is_plus_one_for_completion_minus_one_otherwise() {
        assert_eq!(Outcome::Completed.reward(), 1.0);
        assert_eq!(Outcome::Failed.reward(), -1.0);
        assert_eq!(Outcome::TimedOut.reward(), -1.0);
    }
}
