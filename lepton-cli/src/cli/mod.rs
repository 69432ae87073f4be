//! The `lepton` command line's subcommands and what they share.

use std::path::PathBuf;
use std::sync::Arc;

use lepton::fragmentation::TargetWorkload;
use lepton::policies::{PolicyContext, RulePolicy};
use lepton::sim::{read_openb_nodes, read_openb_pods, trace_dir, TracePod};
use lepton::{NodeSpec, TaskSpec};

pub(crate) mod chaos;
pub(crate) mod demo;
pub(crate) mod fill;
mod plot;
pub(crate) mod replay;
mod report;
pub(crate) mod scale;
pub(crate) mod service;
mod table;
pub(crate) mod train;

/// The share of a workload's tasks FGD's target workload covers (the paper's 95%).
const TARGET_COVERAGE: f64 = 0.95;

/// How a command prints its results (`-o/--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// A table for people (`text` works too).
    #[value(alias = "text")]
    Table,
    /// One JSON object, for programs.
    Json,
}

/// `-o/--output table|json`, the same on every command that prints results.
#[derive(Debug, clap::Args)]
pub(crate) struct OutputArgs {
    /// What stdout gets: `table` for people or `json` (one object) for
    /// programs. `--format` and `text` are the older spellings.
    #[arg(
        short = 'o',
        long = "output",
        alias = "format",
        value_enum,
        value_name = "FORMAT",
        default_value_t = Format::Table
    )]
    pub(crate) output: Format,
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

/// A spinner on stderr with the elapsed time and `message`, for a run
/// whose length is not known in advance; nothing when stderr is not a
/// terminal.
pub(crate) fn spinner(message: String) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{elapsed_precise} {spinner} {msg}")
    {
        spinner.set_style(style);
    }
    spinner.set_message(message);
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    spinner
}

/// Says on stderr that a file was written (stdout stays the results'),
/// with what it holds.
pub(crate) fn wrote(path: &std::path::Path, what: &str) {
    eprintln!("wrote {}: {what}", path.display());
}

/// A whole number from `MIN` to `MAX` (a flag's value parser): `-1`, `2.5`
/// or `1e9` get an error that says the range, not "invalid digit".
pub(crate) fn whole<const MIN: u64, const MAX: u64>(text: &str) -> Result<u64, String> {
    let range = || {
        format!(
            "a whole number from {} to {}",
            thousands(MIN),
            thousands(MAX)
        )
    };
    let value: i128 = text
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{text} is not {}", range()))?;
    u64::try_from(value)
        .ok()
        .filter(|value| (MIN..=MAX).contains(value))
        .ok_or_else(|| format!("{text} is out of range: {}", range()))
}

/// A decimal number (a flag's value parser); its range is checked where it
/// is used, which names it.
pub(crate) fn decimal(text: &str) -> Result<f64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text} is not a number (a decimal such as 0.5 or 2.5)"))
}

/// `1000000` as `1,000,000`.
pub(crate) fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
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

/// The trace files `fill`, `replay` and `train` read.
#[derive(Debug, clap::Args)]
pub(crate) struct TraceArgs {
    /// Node list, an openb CSV (sn,cpu_milli,memory_mib,gpu,model).
    /// Default: openb_node_list_gpu_node.csv in $LEPTON_TRACE_DIR, or in
    /// the copy of the Alibaba GPU trace shipped with Lepton.
    #[arg(long = "node-list", alias = "nodes", value_name = "FILE")]
    node_list: Option<PathBuf>,
    /// Pod list, an openb CSV (name,cpu_milli,memory_mib,num_gpu,gpu_milli
    /// and optionally gpu_spec,qos,creation_time,deletion_time, …).
    /// Default: openb_pod_list_default.csv, found as --node-list is.
    #[arg(long = "pod-list", alias = "pods", value_name = "FILE")]
    pod_list: Option<PathBuf>,
}

impl TraceArgs {
    /// The node and pod list files: as given, or the trace's defaults.
    pub(crate) fn paths(&self) -> Result<(PathBuf, PathBuf), CliError> {
        let trace = || trace_dir().map_err(CliError::from);
        let nodes = match &self.node_list {
            Some(path) => path.clone(),
            None => trace()?.join("openb_node_list_gpu_node.csv"),
        };
        let pods = match &self.pod_list {
            Some(path) => path.clone(),
            None => trace()?.join("openb_pod_list_default.csv"),
        };
        Ok((nodes, pods))
    }

    /// Reads the node and pod lists, and checks some pod fits some node
    /// (warning about each pod that fits none).
    pub(crate) fn read(&self) -> Result<(Vec<NodeSpec>, Vec<TracePod>), CliError> {
        let (nodes_path, pods_path) = self.paths()?;
        let (nodes, pods) = (read_openb_nodes(&nodes_path)?, read_openb_pods(&pods_path)?);
        let specs: Vec<&TaskSpec> = pods.iter().map(|p| &p.spec).collect();
        check_fit(&nodes, &specs, &nodes_path, &pods_path)?;
        Ok((nodes, pods))
    }
}

/// Refuses a workload none of whose tasks fits any node (the run would
/// measure nothing), and warns about each task that fits no node (it will
/// be dropped or wait to the end), naming it and what it asks for.
pub(crate) fn check_fit(
    nodes: &[NodeSpec],
    tasks: &[&TaskSpec],
    nodes_path: &std::path::Path,
    tasks_path: &std::path::Path,
) -> Result<(), CliError> {
    let misfits = lepton::sim::unplaceable(nodes, tasks.iter().copied(), None)?;
    let describe = |index: usize| {
        let task = tasks[index];
        // Shown with `{:?}`, which escapes control characters.
        let name = task.name.clone().unwrap_or_else(|| task.id.to_string());
        let mut ask = format!(
            "cpu_milli {}, memory_mib {}",
            task.request.cpu_milli, task.request.memory_mib
        );
        if !task.gpu.is_none() {
            ask += &format!(
                ", num_gpu {}, gpu_milli {}",
                task.gpu.count, task.gpu.milli_per_gpu
            );
            if !task.constraints.gpu_models.is_empty() {
                let models: Vec<&str> = task
                    .constraints
                    .gpu_models
                    .iter()
                    .map(|m| m.as_str())
                    .collect();
                ask += &format!(", gpu_spec {}", models.join("|"));
            }
        }
        format!("{name:?} ({ask})")
    };
    let mut models: Vec<&str> = nodes
        .iter()
        .filter(|n| n.gpus.count > 0)
        .filter_map(|n| n.gpus.model.as_ref().map(|m| m.as_str()))
        .collect();
    models.sort_unstable();
    models.dedup();
    let most_gpus = nodes.iter().map(|n| n.gpus.count).max().unwrap_or(0);
    let cluster = format!(
        "the nodes of {} have at most {most_gpus} GPUs, of models {}",
        nodes_path.display(),
        if models.is_empty() {
            "none".to_owned()
        } else {
            models.join(", ")
        }
    );
    if !tasks.is_empty() && misfits.len() == tasks.len() {
        return Err(CliError::Usage(format!(
            "no task of {} fits any node, even in an empty cluster (the first: {}); {cluster}",
            tasks_path.display(),
            describe(0)
        )));
    }
    warn_tasks(
        tasks_path,
        &misfits,
        |index| {
            format!(
                "{} fits no node, even in an empty cluster; {cluster}",
                describe(index)
            )
        },
        "fit no node",
    );
    Ok(())
}

/// Warns about the first few tasks of `indexes` in `tasks_path`, each with
/// what `says`, then about how many more there are (`more`: what they do).
fn warn_tasks(
    tasks_path: &std::path::Path,
    indexes: &[usize],
    says: impl Fn(usize) -> String,
    more: &str,
) {
    const SHOWN: usize = 5;
    for &index in indexes.iter().take(SHOWN) {
        eprintln!("warning: {}: {}", tasks_path.display(), says(index));
    }
    if indexes.len() > SHOWN {
        eprintln!(
            "warning: {}: {} more tasks {more}",
            tasks_path.display(),
            indexes.len() - SHOWN
        );
    }
}

/// Refuses a workload whose every task `policy`'s filter (its rules) keeps
/// off every node that fits it, and warns about each task it keeps off
/// them all: such a task would wait to the end (or be dropped).
pub(crate) fn check_filter(
    policy: &dyn lepton::Policy,
    nodes: &[NodeSpec],
    tasks: &[&TaskSpec],
    tasks_path: &std::path::Path,
) -> Result<(), CliError> {
    let Some(filter) = policy.filter() else {
        return Ok(());
    };
    let fitting = lepton::sim::unplaceable(nodes, tasks.iter().copied(), None)?;
    let kept_off: Vec<usize> =
        lepton::sim::unplaceable(nodes, tasks.iter().copied(), Some(&*filter))?
            .into_iter()
            .filter(|index| fitting.binary_search(index).is_err())
            .collect();
    let name = |index: usize| {
        let task = tasks[index];
        // `{:?}` escapes control characters.
        format!(
            "{:?}",
            task.name.clone().unwrap_or_else(|| task.id.to_string())
        )
    };
    let policy = policy.name();
    if !kept_off.is_empty() && kept_off.len() + fitting.len() == tasks.len() {
        return Err(CliError::Usage(format!(
            "policy {policy}'s rules let no task of {} onto any node it fits (the first: {}): \
             check their labels, zones and caps against the nodes",
            tasks_path.display(),
            name(kept_off[0])
        )));
    }
    warn_tasks(
        tasks_path,
        &kept_off,
        |index| {
            format!(
                "{} fits a node, but none that policy {policy}'s rules allow",
                name(index)
            )
        },
        "fit no node the rules allow",
    );
    Ok(())
}

/// The files a policy may need, wherever `--policy` is.
#[derive(Debug, clap::Args)]
pub(crate) struct PolicyFiles {
    /// Rules file (TOML or JSON) for `--policy rule`; see
    /// examples/rules.toml.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Model file (safetensors) for `--policy drl`, as `lepton train`
    /// writes. Default: the model trained on the Alibaba trace, built in.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
}

impl PolicyFiles {
    /// The files given, with their flags.
    pub(crate) fn inputs(&self) -> Vec<(&'static str, &std::path::Path)> {
        let rules = self.rules.as_deref().map(|p| ("--rules", p));
        let model = self.model.as_deref().map(|p| ("--model", p));
        rules.into_iter().chain(model).collect()
    }

    /// The policy context for `policies`: the rules and model, and FGD's
    /// target workload learned from `tasks` when given. A file none of
    /// `policies` reads (`--model` without `drl`) is refused, not ignored.
    pub(crate) fn context(
        &self,
        policies: &[&str],
        tasks: Option<&[TaskSpec]>,
    ) -> Result<PolicyContext, CliError> {
        for (flag, given, reader) in [
            ("--rules", self.rules.is_some(), "rule"),
            ("--model", self.model.is_some(), "drl"),
        ] {
            if given && !policies.contains(&reader) {
                return Err(CliError::Usage(format!(
                    "{flag} is read by --policy {reader} only, and the policy here is {}",
                    policies.join(", ")
                )));
            }
        }
        let rules = match &self.rules {
            Some(path) => Some(Arc::new(RulePolicy::from_path(path)?)),
            None => None,
        };
        Ok(PolicyContext {
            target_workload: tasks.map(target_workload),
            rules,
            model: self.model.clone(),
            lifetimes: None,
        })
    }
}

/// FGD's target workload for `tasks`: the shapes covering 95% of them.
pub(crate) fn target_workload(tasks: &[TaskSpec]) -> Arc<TargetWorkload> {
    Arc::new(TargetWorkload::from_tasks(tasks, TARGET_COVERAGE))
}

/// The most seeds one command accepts. Each is a whole run per policy; a
/// range like `0-18446744073709551615` must be refused, not allocated.
const MAX_SEEDS: u64 = 10_000;

/// Parses `42-51`, `42,45` or `42`: at most [`MAX_SEEDS`] seeds.
pub(crate) fn parse_seeds(text: &str) -> Result<Vec<u64>, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "bad --seed {text:?}: expected e.g. 42-51, 42,45 or 42"
        ))
    };
    let too_many = || CliError::Usage(format!("bad --seed {text:?}: more than {MAX_SEEDS} seeds"));
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
            "bad --seed {text:?}: seed {twice} is given twice"
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
    check_parent_dir(path, "--plot")
}

/// Refuses an output that would overwrite an input or another output:
/// `--placements a.json --workload a.json` would destroy the workload.
/// Each entry is the flag and its file.
pub(crate) fn check_outputs(
    outputs: &[(&str, &std::path::Path)],
    inputs: &[(&str, &std::path::Path)],
) -> Result<(), CliError> {
    // The file a path names: its directory resolved, so that `./a.csv`
    // and `a.csv` (or a link to the directory) are one file.
    let resolved = |path: &std::path::Path| {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => std::path::Path::new("."),
        };
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let file = dir.join(path.file_name().unwrap_or_default());
        std::fs::canonicalize(&file).unwrap_or(file)
    };
    for (i, (flag, path)) in outputs.iter().enumerate() {
        let file = resolved(path);
        let clash = inputs
            .iter()
            .chain(&outputs[..i])
            .find(|(_, other)| resolved(other) == file);
        if let Some((other, _)) = clash {
            return Err(CliError::Usage(format!(
                "{flag} {} is also {other}: it would be overwritten",
                path.display()
            )));
        }
    }
    Ok(())
}

/// `text` with its control characters (a terminal's escape sequences
/// among them: `\u{1b}[31m`) written as `\u{..}`, so that a name read
/// from a file cannot drive the terminal it is printed on. Line breaks
/// and tabs stay.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let hostile = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.contains(hostile) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hostile(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Writes `bytes` to `path` atomically: to a temporary file beside it,
/// then renamed over it, so that a failed or interrupted write leaves what
/// was there.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    let fail =
        |e: std::io::Error| CliError::Output(format!("cannot write {}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| CliError::Usage(format!("{}: not a file name", path.display())))?;
    let mut temporary = std::ffi::OsString::from(".");
    temporary.push(name);
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let written =
        std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail(error));
    }
    Ok(())
}

/// The directory of a file a command will write (given with `flag`) must
/// exist, checked before the run.
pub(crate) fn check_parent_dir(path: &std::path::Path, flag: &str) -> Result<(), CliError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    if dir.is_dir() {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "{flag} {}: directory {} does not exist",
        path.display(),
        dir.display()
    )))
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
