//! The `lepton` command line's subcommands and what they share.

use std::path::PathBuf;

pub(crate) mod fill;
mod plot;
pub(crate) mod replay;

/// The share of a workload's tasks FGD's target workload covers (the paper's 95%).
pub(crate) const TARGET_COVERAGE: f64 = 0.95;

/// How a command prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// A table for people.
    Text,
    /// One JSON object.
    Json,
}

/// Errors the command line reports.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Core(#[from] lepton::Error),
    #[error(transparent)]
    Policy(#[from] lepton::policies::Error),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Output(String),
    #[error("{0}")]
    Scenario(String),
}

/// A file of the Alibaba GPU trace, in `LEPTON_TRACE_DIR` (default
/// `../shared/traces/alibaba-gpu-2023`).
pub(crate) fn trace_path(file: &str) -> PathBuf {
    std::env::var_os("LEPTON_TRACE_DIR")
        .map_or_else(
            || PathBuf::from("../shared/traces/alibaba-gpu-2023"),
            PathBuf::from,
        )
        .join(file)
}

/// Parses `42-51`, `42,45` or `42`.
pub(crate) fn parse_seeds(text: &str) -> Result<Vec<u64>, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "bad --seeds {text:?}: expected e.g. 42-51, 42,45 or 42"
        ))
    };
    let mut seeds = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((low, high)) => {
                let low: u64 = low.trim().parse().map_err(|_| bad())?;
                let high: u64 = high.trim().parse().map_err(|_| bad())?;
                if low > high {
                    return Err(bad());
                }
                seeds.extend(low..=high);
            }
            None => seeds.push(part.trim().parse().map_err(|_| bad())?),
        }
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_as_ranges_and_lists() {
        assert_eq!(parse_seeds("42-45").unwrap(), vec![42, 43, 44, 45]);
        assert_eq!(parse_seeds("1,7").unwrap(), vec![1, 7]);
        assert_eq!(parse_seeds("3").unwrap(), vec![3]);
        for bad in ["", "9-1", "a", "1-", "4,,5"] {
            assert!(parse_seeds(bad).is_err(), "{bad:?}");
        }
    }
}
