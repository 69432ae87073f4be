//! The JSON workload format (documented on [`Workload`]), so users can
//! replay their own clusters.
//!
//! The top level is parsed with the elements of `nodes` and `tasks` kept as
//! raw JSON text; each element is then parsed on its own and
//! validated. That two-step parse is what lets every error name the
//! element's index and point at the line where it starts, which serde's
//! derived code cannot do.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::timed::{TimedTask, MAX_TIME_S};
use crate::Error;
use lepton_core::NodeSpec;

/// A cluster and the tasks to replay on it: the JSON workload format.
///
/// Read one with [`read_workload`] or [`parse_workload`], which validate
/// every node and task; it serializes back to the same format.
///
/// A workload is one JSON object with two arrays: `nodes`, each a
/// [`NodeSpec`], and `tasks`, each a [`TimedTask`] (a [`TaskSpec`](lepton_core::TaskSpec) with an
/// arrival time and an optional duration, in seconds). Unknown fields are
/// errors, so a misspelt field never silently falls back to its default.
///
/// ```
/// let json = r#"{
///   "nodes": [
///     {
///       "id": 0,
///       "name": "gpu-0",
///       "kind": "server",
///       "capacity": {"cpu_milli": 64000, "memory_mib": 262144, "network_mbps": 10000, "storage_gib": 2000},
///       "gpus": {"model": "V100M32", "count": 8},
///       "labels": {"rack": "r1"},
///       "taints": [{"key": "dedicated", "value": "ml"}],
///       "zone": "eu-1a",
///       "price_per_hour": 12.5
///     },
///     {"id": 1, "capacity": {"cpu_milli": 32000, "memory_mib": 131072}}
///   ],
///   "tasks": [
///     {
///       "spec": {
///         "id": 0,
///         "name": "train-resnet",
///         "request": {"cpu_milli": 8000, "memory_mib": 32768},
///         "gpu": {"count": 2, "milli_per_gpu": 1000},
///         "priority": 200,
///         "qos": "latency_sensitive",
///         "timeout_ms": 7200000,
///         "constraints": {
///           "gpu_models": ["V100M16", "V100M32"],
///           "node_selector": {"rack": "r1"},
///           "tolerations": [{"key": "dedicated", "value": "ml"}],
///           "anti_affinity": "trainers"
///         }
///       },
///       "arrival_s": 0,
///       "duration_s": 3600
///     },
///     {
///       "spec": {"id": 1, "request": {"cpu_milli": 2000, "memory_mib": 4096},
///                "gpu": {"count": 1, "milli_per_gpu": 250}},
///       "arrival_s": 30
///     },
///     {"spec": {"id": 2, "request": {"cpu_milli": 500}}, "arrival_s": 60, "duration_s": 5}
///   ]
/// }"#;
/// let workload = lepton_sim::parse_workload(json, "example.json")?;
/// assert_eq!(workload.nodes.len(), 2);
/// assert_eq!(workload.tasks[1].duration_s, None); // runs until the end
/// # Ok::<(), lepton_sim::Error>(())
/// ```
///
/// # Fields
/// Every field, its default and its range are described in the
/// repository's `docs/WORKLOAD.md`. Only `id` and `capacity` of a node, and
/// `spec` (with its `id` and `request`) and `arrival_s` of a task, are
/// required. A node must offer something, a task must ask for something.
///
/// # Load errors
/// Every problem is an [`Error::Load`] with the file, the line and the
/// (byte) column: syntax errors where serde_json found them; wrong types,
/// unknown fields, invalid nodes and tasks, and duplicate ids at the line
/// where the element starts, naming its index in its array (`nodes[3]`,
/// `tasks[17]`) and, once it parsed, its id. No input makes the reader
/// panic.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// The nodes, in the order given (which breaks ties for most policies).
    pub nodes: Vec<NodeSpec>,
    /// The tasks; those arriving at the same second are submitted in this order.
    pub tasks: Vec<TimedTask>,
}

/// Reads a workload from a JSON file (the format is described on [`Workload`]).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Load`] with the line
/// and column for malformed JSON, a wrong type, an unknown field, an invalid
/// node or task, or a duplicate id.
pub fn read_workload(path: &Path) -> Result<Workload, Error> {
    let display = path.display().to_string();
    let bytes =
        lepton_policies::files::read_bounded(path, crate::MAX_INPUT_BYTES).map_err(|e| {
            Error::Io {
                path: display.clone(),
                message: e.to_string(),
            }
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let at = Position::of(&bytes, e.valid_up_to());
        at.error(&display, format!("invalid UTF-8: {e}"))
    })?;
    parse_workload(text, &display)
}

/// A UTF-8 byte-order mark some editors write at the start of a file.
pub(crate) const BOM: char = '\u{feff}';

/// Parses a workload from JSON text; `source` names it in errors (a file
/// name, `"<stdin>"`, …).
///
/// # Errors
/// As [`read_workload`], always [`Error::Load`].
pub fn parse_workload(json: &str, source: &str) -> Result<Workload, Error> {
    // A byte-order mark is not JSON, but editors write one; skipped as
    // whitespace (with spaces in its place, so byte columns still hold).
    let unmarked;
    let json = match json.strip_prefix(BOM) {
        Some(rest) => {
            unmarked = format!("{}{rest}", " ".repeat(BOM.len_utf8()));
            unmarked.as_str()
        }
        None => json,
    };
    let Some(start) = json.find(|c: char| !c.is_ascii_whitespace()) else {
        return Err(Position { line: 1, column: 0 }.error(
            source,
            "the file is empty: expected a JSON object with \"nodes\" and \"tasks\"".into(),
        ));
    };
    if !json[start..].starts_with('{') {
        return Err(Position::of(json.as_bytes(), start).error(
            source,
            "expected a JSON object with \"nodes\" and \"tasks\"".into(),
        ));
    }
    // Elements are kept as raw text first, so every error can point at the
    // line of the element it is about.
    let raw: RawWorkload<'_> =
        serde_json::from_str(json).map_err(|e| json_error(source, None, &e, None))?;
    let document = Document { json, source };
    let nodes = document.elements("nodes", "node", &raw.nodes, |node: &mut NodeSpec| {
        node.validate().map_err(|e| e.to_string())?;
        Ok(node.id)
    })?;
    let tasks = document.elements("tasks", "task", &raw.tasks, |task: &mut TimedTask| {
        let id = task.spec.id;
        task.spec.validate().map_err(|e| e.to_string())?;
        let end_s = task
            .arrival_s
            .checked_add(task.duration_s.unwrap_or(0))
            .filter(|&end| end <= MAX_TIME_S);
        if end_s.is_none() {
            return Err(format!(
                "task {id}: arrival_s + duration_s is after the end of virtual time ({MAX_TIME_S} s)"
            ));
        }
        Ok(id)
    })?;
    Ok(Workload { nodes, tasks })
}

/// The top level, elements unparsed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload<'a> {
    #[serde(borrow)]
    nodes: Vec<&'a RawValue>,
    #[serde(borrow)]
    tasks: Vec<&'a RawValue>,
}

/// A line (from 1) and a byte column (from 1; 0 when unknown).
#[derive(Debug, Clone, Copy)]
struct Position {
    line: usize,
    column: usize,
}

impl Position {
    /// The position of byte `offset` of `text`.
    fn of(text: &[u8], offset: usize) -> Self {
        let before = &text[..offset.min(text.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        Position {
            line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
            column: before.len() - line_start + 1,
        }
    }

    fn error(self, source: &str, message: String) -> Error {
        Error::Load {
            path: source.to_owned(),
            line: self.line,
            column: (self.column > 0).then(|| self.column.to_string()),
            message,
        }
    }
}

/// A serde_json error, its position made absolute when it came from an
/// element starting at `element_start`, its message prefixed by `label`.
fn json_error(
    source: &str,
    element_start: Option<Position>,
    error: &serde_json::Error,
    label: Option<&str>,
) -> Error {
    let (line, column) = (error.line(), error.column());
    let at = match element_start {
        // The element's first line starts mid-line in the file.
        Some(start) if line <= 1 => Position {
            line: start.line,
            column: start.column - 1 + column,
        },
        Some(start) => Position {
            line: start.line + line - 1,
            column,
        },
        None => Position { line, column },
    };
    let message = without_position(&error.to_string());
    let message = match label {
        Some(label) => format!("{label}: {message}"),
        None => message,
    };
    at.error(source, message)
}

struct Document<'a> {
    json: &'a str,
    source: &'a str,
}

impl Document<'_> {
    /// Parses the elements of array `name`, each a `kind`, checking each
    /// with `check` (which returns its id) and that no id is used twice.
    fn elements<T, Id>(
        &self,
        name: &str,
        kind: &str,
        raw: &[&RawValue],
        mut check: impl FnMut(&mut T) -> Result<Id, String>,
    ) -> Result<Vec<T>, Error>
    where
        T: DeserializeOwned,
        Id: Hash + Eq + std::fmt::Display + Copy,
    {
        let mut out = Vec::with_capacity(raw.len());
        let mut first_use: HashMap<Id, usize> = HashMap::new();
        for (i, element) in raw.iter().enumerate() {
            let label = format!("{name}[{i}]");
            let text = element.get();
            // The raw value is a slice of `json`; its address gives its offset.
            let offset = (text.as_ptr() as usize).saturating_sub(self.json.as_ptr() as usize);
            // Found only for an error: a scan from the file's start for
            // every element would make loading quadratic.
            let start = || Position::of(self.json.as_bytes(), offset);
            if !text.starts_with('{') {
                return Err(start().error(self.source, format!("{label}: expected an object")));
            }
            let mut value: T = serde_json::from_str(text)
                .map_err(|e| json_error(self.source, Some(start()), &e, Some(&label)))?;
            let id = check(&mut value)
                .map_err(|e| start().error(self.source, format!("{label}: {e}")))?;
            match first_use.entry(id) {
                Entry::Occupied(first) => {
                    return Err(start().error(
                        self.source,
                        format!("{label}: {kind} {id} is already {name}[{}]", first.get()),
                    ))
                }
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
            out.push(value);
        }
        Ok(out)
    }
}

/// serde_json appends " at line L column C" to its messages; the position
/// is reported apart.
fn without_position(message: &str) -> String {
    let mut message = message;
    while let Some(at) = message.rfind(" at line ") {
        let tail = &message[at + " at line ".len()..];
        let is_position = tail.split_once(" column ").is_some_and(|(line, column)| {
            !line.is_empty()
                && !column.is_empty()
                && line.bytes().all(|b| b.is_ascii_digit())
                && column.bytes().all(|b| b.is_ascii_digit())
        });
        if !is_position {
            break;
        }
        message = &message[..at];
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_stripped_from_messages_only_at_the_end() {
        assert_eq!(
            without_position("nodes[2]: bad at line 3 column 4"),
            "nodes[2]: bad"
        );
        assert_eq!(
            without_position("label \"at line x column y\""),
            "label \"at line x column y\""
        );
        assert_eq!(without_position("plain"), "plain");
    }
}
