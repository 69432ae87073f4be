//! The `lepton` command line's subcommands and what they share.

use std::path::PathBuf;
use std::sync::Arc;

use lepton::policies::{PolicyContext, RulePolicy};
use lepton::sim::{read_openb_nodes, read_openb_pods, trace_dir, TracePod};
use lepton::{NodeSpec, TargetWorkload, TaskSpec};

pub(crate) mod chaos;
pub(crate) mod demo;
pub(crate) mod fill;
mod plot;
pub(crate) mod replay;
mod report;
pub(crate) mod scale;
pub(crate) mod train;

/// The share of a workload's tasks FGD's target workload covers (the paper's 95%).
const TARGET_COVERAGE: f64 = 0.95;

/// How a command prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// A table for people.
    Text,
    /// One JSON object.
    Json,
}

/// Prints a line on stdout, as `println!` does; a closed pipe (`lepton …
/// | head`) gives [`CliError::Closed`], which ends the command quietly,
/// instead of a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::cli::CliError::from_stdout)
    }};
}
pub(crate) use say;

/// A bar on stderr counting `len` `unit`s (with a message), or nothing
/// when stderr is not a terminal.
pub(crate) fn progress_bar(len: usize, unit: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    let template = format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Errors the command line reports.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Core(#[from] lepton::Error),
    #[error(transparent)]
    Policy(#[from] lepton::policies::Error),
    #[error(transparent)]
    Sim(#[from] lepton::sim::Error),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Output(String),
    #[error("{0}")]
    Scenario(String),
    /// Standard output was closed by the reader (a pipe into `head`, say):
    /// not an error, the command just stops.
    #[error("standard output closed")]
    Closed,
}

impl CliError {
    /// A failed write to standard output.
    pub(crate) fn from_stdout(error: std::io::Error) -> CliError {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::Closed
        } else {
            CliError::Output(format!("cannot write to standard output: {error}"))
        }
    }
}

/// The inputs `fill` and `replay` share: the trace files and a rules file.
#[derive(Debug, clap::Args)]
pub(crate) struct InputArgs {
    /// Node list (openb CSV). Default: the trace's GPU nodes.
    #[arg(long)]
    nodes: Option<PathBuf>,
    /// Pod list (openb CSV). Default: the trace's default pod list.
    #[arg(long)]
    pods: Option<PathBuf>,
    /// Rules file (TOML or JSON) for the `rule` policy.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Model file (safetensors) for the `drl` policy. Default: the model
    /// trained on the Alibaba trace, built in.
    #[arg(long)]
    model: Option<PathBuf>,
}

impl InputArgs {
    /// The node and pod list files: as given, or the trace's defaults.
    pub(crate) fn paths(&self) -> Result<(PathBuf, PathBuf), CliError> {
        let trace = || trace_dir().map_err(CliError::from);
        let nodes = match &self.nodes {
            Some(path) => path.clone(),
            None => trace()?.join("openb_node_list_gpu_node.csv"),
        };
        let pods = match &self.pods {
            Some(path) => path.clone(),
            None => trace()?.join("openb_pod_list_default.csv"),
        };
        Ok((nodes, pods))
    }

    /// Reads the node and pod lists.
    pub(crate) fn read_trace(&self) -> Result<(Vec<NodeSpec>, Vec<TracePod>), CliError> {
        let (nodes, pods) = self.paths()?;
        Ok((read_openb_nodes(&nodes)?, read_openb_pods(&pods)?))
    }

    /// The policy context for `tasks`: FGD's target workload and the rules, if any.
    pub(crate) fn policy_context(&self, tasks: &[TaskSpec]) -> Result<PolicyContext, CliError> {
        let rules = match &self.rules {
            Some(path) => Some(Arc::new(RulePolicy::from_path(path)?)),
            None => None,
        };
        Ok(PolicyContext {
            target_workload: Some(Arc::new(TargetWorkload::from_tasks(tasks, TARGET_COVERAGE))),
            rules,
            model: self.model.clone(),
        })
    }
}

/// The most seeds one command accepts. Each is a whole run per policy; a
/// range like `0-18446744073709551615` must be refused, not allocated.
const MAX_SEEDS: u64 = 10_000;

/// Parses `42-51`, `42,45` or `42`: at most [`MAX_SEEDS`] seeds.
pub(crate) fn parse_seeds(text: &str) -> Result<Vec<u64>, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "bad --seeds {text:?}: expected e.g. 42-51, 42,45 or 42"
        ))
    };
    let too_many = || CliError::Usage(format!("bad --seeds {text:?}: more than {MAX_SEEDS} seeds"));
    let mut seeds = Vec::new();
    for part in text.split(',') {
        // Seeds still allowed; `seeds` never holds more than MAX_SEEDS.
        let room = MAX_SEEDS - seeds.len() as u64;
        match part.split_once('-') {
            Some((low, high)) => {
                let low: u64 = low.trim().parse().map_err(|_| bad())?;
                let high: u64 = high.trim().parse().map_err(|_| bad())?;
                if low > high {
                    return Err(bad());
                }
                // `high - low` is one less than the range's length, so it
                // cannot overflow.
                if high - low >= room {
                    return Err(too_many());
                }
                seeds.extend(low..=high);
            }
            None if room == 0 => return Err(too_many()),
            None => seeds.push(part.trim().parse().map_err(|_| bad())?),
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = seeds.iter().find(|&&seed| !seen.insert(seed)) {
        return Err(CliError::Usage(format!(
            "bad --seeds {text:?}: seed {twice} is given twice"
        )));
    }
    Ok(seeds)
}

/// Where an SVG plot goes: it must end in `.svg` and its directory must
/// exist, checked before any run so a typo does not cost the run.
pub(crate) fn check_plot_path(path: &std::path::Path) -> Result<(), CliError> {
    if path.extension().and_then(|e| e.to_str()) != Some("svg") {
        return Err(CliError::Usage(format!(
            "--plot {}: plots are SVG; the file name must end in .svg",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(CliError::Usage(format!(
            "--plot {}: directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
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
        assert_eq!(parse_seeds("1-10000").unwrap().len(), 10_000);
        for too_many in ["0-18446744073709551615", "1-10001", "1-9999,5,6"] {
            let error = parse_seeds(too_many).unwrap_err().to_string();
            assert!(
                error.contains("more than 10000 seeds"),
                "{too_many}: {error}"
            );
        }
    }
}
