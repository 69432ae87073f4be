//! Readers for the Alibaba GPU cluster trace 2023 ("openb") CSV files.
//!
//! Columns are found by header name, so files with fewer columns (the
//! `multigpu*` pod lists carry no constraints or times) read fine, their
//! missing columns being absent. Units are converted here, at the boundary:
//! the rest of Lepton sees [`NodeSpec`]s and [`TaskSpec`]s. A malformed row
//! is an [`Error::Load`] naming the file, the line and the column — never a
//! panic and never a silently skipped row.

use std::io::{BufRead, Cursor};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::Error;
use lepton_core::model::QosClass;
use lepton_core::model::{GpuModel, MAX_GPUS_PER_NODE};
use lepton_core::{GpuRequest, Resources};
use lepton_core::{Gpus, NodeId, NodeSpec};
use lepton_core::{TaskId, TaskSpec};

/// One pod of a trace: the task it asks for, and its times when the file has them.
#[derive(Debug, Clone)]
pub struct TracePod {
    /// The task (id = row index from 0, name = the pod's name).
    pub spec: TaskSpec,
    /// When the pod was created, in seconds.
    pub creation_time_s: Option<u64>,
    /// When the pod was deleted, in seconds.
    pub deletion_time_s: Option<u64>,
    /// When the pod was scheduled, in seconds; absent for pods that stayed pending.
    pub scheduled_time_s: Option<u64>,
}

/// Where the Alibaba GPU trace's files are: `LEPTON_TRACE_DIR` when it is
/// set, else the copy shipped in the repository (`data/alibaba-gpu-2023`,
/// fixed when Lepton is built, so it is found from any directory).
///
/// # Errors
/// [`Error::Io`] naming `LEPTON_TRACE_DIR` when it is set but empty (an
/// empty path would silently mean the current directory).
pub fn trace_dir() -> Result<PathBuf, Error> {
    match std::env::var_os("LEPTON_TRACE_DIR") {
        Some(dir) if dir.is_empty() => Err(Error::Io {
            path: "LEPTON_TRACE_DIR".to_owned(),
            message: "it is set but empty; unset it to use the trace shipped with Lepton"
                .to_owned(),
        }),
        Some(dir) => Ok(PathBuf::from(dir)),
        None => {
            let shipped = PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../data/alibaba-gpu-2023"
            ));
            // Without the `..`, for messages; as built when it has moved.
            Ok(shipped.canonicalize().unwrap_or(shipped))
        }
    }
}

/// Reads an openb node list (`sn,cpu_milli,memory_mib,gpu,model`).
///
/// Node ids are row indexes from 0; names are the `sn` column.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Load`] for a
/// malformed row (file, line, column and value named) or a file without rows.
pub fn read_openb_nodes(path: &Path) -> Result<Vec<NodeSpec>, Error> {
    openb_nodes(CsvRows::open(path)?)
}

/// [`read_openb_nodes`] on text in memory; `source` names it in errors.
///
/// # Errors
/// [`Error::Load`] for a malformed row or a text without rows.
pub fn parse_openb_nodes(text: &str, source: &str) -> Result<Vec<NodeSpec>, Error> {
    openb_nodes(CsvRows::from_text(text, source)?)
}

fn openb_nodes(mut rows: CsvRows) -> Result<Vec<NodeSpec>, Error> {
    let columns = ["sn", "cpu_milli", "memory_mib", "gpu", "model"];
    let [sn, cpu, memory, gpu, model] = columns.map(|c| rows.required(c));
    let (sn, cpu, memory, gpu, model) = (sn?, cpu?, memory?, gpu?, model?);
    let mut nodes = Vec::new();
    let mut names = UniqueNames::default();
    while let Some(row) = rows.next_row()? {
        let id = NodeId(nodes.len() as u64);
        names.check(&row, sn, "node")?;
        let gpu_count: u32 = row.parse(gpu)?;
        let model_name = row.text(model);
        if gpu_count > 0 && model_name.is_empty() {
            return Err(row.error(Some(model), "a node with GPUs needs a GPU model".into()));
        }
        let gpus = if gpu_count == 0 {
            Gpus::none()
        } else {
            Gpus::new(model_name, gpu_count)
        };
        let spec = NodeSpec::new(id, Resources::new(row.parse(cpu)?, row.parse(memory)?))
            .with_name(row.text(sn))
            .with_gpus(gpus);
        spec.validate()
            .map_err(|e| row.invalid(&e, &format!("node {id}"), "node", sn))?;
        nodes.push(spec);
    }
    rows.at_least_one_row(nodes.len(), "node")?;
    Ok(nodes)
}

/// Reads an openb pod list
/// (`name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time]`).
///
/// Task ids are row indexes from 0; names are the `name` column. `gpu_spec`
/// becomes the accepted GPU models (`V100M16|V100M32`); `qos` maps `LS`,
/// `BE`, `Burstable` and `Guaranteed` to [`QosClass`].
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Load`] for a
/// malformed row (file, line, column and value named), including a pod that
/// asks for nothing or for more than 1000 milli-GPUs on one GPU, or a file
/// without rows.
pub fn read_openb_pods(path: &Path) -> Result<Vec<TracePod>, Error> {
    openb_pods(CsvRows::open(path)?)
}

/// [`read_openb_pods`] on text in memory; `source` names it in errors.
///
/// # Errors
/// [`Error::Load`] for a malformed row or a text without rows.
pub fn parse_openb_pods(text: &str, source: &str) -> Result<Vec<TracePod>, Error> {
    openb_pods(CsvRows::from_text(text, source)?)
}

fn openb_pods(mut rows: CsvRows) -> Result<Vec<TracePod>, Error> {
    let columns = ["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"];
    let [name, cpu, memory, num_gpu, gpu_milli] = columns.map(|c| rows.required(c));
    let (name, cpu, memory, num_gpu, gpu_milli) = (name?, cpu?, memory?, num_gpu?, gpu_milli?);
    let gpu_spec = rows.optional("gpu_spec");
    let qos = rows.optional("qos");
    let creation = rows.optional("creation_time");
    let deletion = rows.optional("deletion_time");
    let scheduled = rows.optional("scheduled_time");
    let mut pods = Vec::new();
    let mut names = UniqueNames::default();
    while let Some(row) = rows.next_row()? {
        let id = TaskId(pods.len() as u64);
        names.check(&row, name, "pod")?;
        let count = row.parse(num_gpu)?;
        if count > MAX_GPUS_PER_NODE {
            return Err(row.error(
                Some(num_gpu),
                format!(
                    "num_gpu = {count} is out of range: 0 to {MAX_GPUS_PER_NODE}, the most GPUs a node can have"
                ),
            ));
        }
        let gpu = GpuRequest {
            count,
            milli_per_gpu: row.parse(gpu_milli)?,
        };
        let mut spec = TaskSpec::new(id, Resources::new(row.parse(cpu)?, row.parse(memory)?))
            .with_name(row.text(name))
            .with_gpu(gpu);
        if let Some(column) = gpu_spec {
            let models = row.text(column);
            if !models.is_empty() {
                spec = spec.with_gpu_models(models.split('|').map(GpuModel::new));
            }
        }
        if let Some(column) = qos {
            spec = spec.with_qos(parse_qos(&row, column)?);
        }
        spec.validate()
            .map_err(|e| row.invalid(&e, &format!("task {id}"), "pod", name))?;
        let creation_time_s = row.parse_optional(creation)?;
        let deletion_time_s = row.parse_optional(deletion)?;
        if let (Some(created), Some(deleted)) = (creation_time_s, deletion_time_s) {
            if deleted < created {
                return Err(row.error(
                    deletion,
                    format!(
                        "pod {:?} is deleted at {deleted} s, before its creation at {created} s",
                        row.text(name)
                    ),
                ));
            }
        }
        pods.push(TracePod {
            spec,
            creation_time_s,
            deletion_time_s,
            scheduled_time_s: row.parse_optional(scheduled)?,
        });
    }
    rows.at_least_one_row(pods.len(), "pod")?;
    Ok(pods)
}

fn parse_qos(row: &Row<'_>, column: usize) -> Result<QosClass, Error> {
    match row.text(column) {
        "LS" => Ok(QosClass::LatencySensitive),
        "BE" => Ok(QosClass::BestEffort),
        "Burstable" | "" => Ok(QosClass::Burstable),
        "Guaranteed" => Ok(QosClass::Guaranteed),
        other => Err(row.error(
            Some(column),
            format!("{other:?} is not a QoS class (LS, BE, Burstable, Guaranteed)"),
        )),
    }
}

/// A plain CSV reader for the trace's simple format (no quoting), one row at
/// a time, with the header's column names.
pub(crate) struct CsvRows {
    path: String,
    lines: std::io::Lines<Box<dyn BufRead>>,
    header: Vec<String>,
    line: usize,
    /// The text of the current row.
    current: String,
}

pub(crate) struct Row<'a> {
    rows: &'a CsvRows,
    fields: Vec<&'a str>,
}

impl CsvRows {
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        let source = path.display().to_string();
        let bytes =
            lepton_policies::files::read_bounded(path, crate::MAX_INPUT_BYTES).map_err(|e| {
                Error::Io {
                    path: source.clone(),
                    message: e.to_string(),
                }
            })?;
        Self::new(Box::new(Cursor::new(bytes)), source)
    }

    pub(crate) fn from_text(text: &str, source: &str) -> Result<Self, Error> {
        Self::new(Box::new(Cursor::new(text.to_owned())), source.to_owned())
    }

    fn new(reader: Box<dyn BufRead>, source: String) -> Result<Self, Error> {
        let mut lines = reader.lines();
        let header_line = lines
            .next()
            .transpose()
            .map_err(|e| Error::Io {
                path: source.clone(),
                message: e.to_string(),
            })?
            .ok_or_else(|| Error::Load {
                path: source.clone(),
                line: 1,
                column: None,
                message: "the file is empty: expected a header row".into(),
            })?;
        // A byte-order mark (some editors write one) is not part of the
        // first column's name.
        let header_line = header_line
            .strip_prefix(crate::workload::BOM)
            .unwrap_or(&header_line);
        let header: Vec<String> = header_line
            .trim_end()
            .split(',')
            .map(|name| name.trim().to_owned())
            .collect();
        for (index, name) in header.iter().enumerate() {
            if header[..index].contains(name) {
                return Err(Error::Load {
                    path: source,
                    line: 1,
                    column: Some(name.clone()),
                    message: format!("column {name:?} is given twice in the header"),
                });
            }
        }
        Ok(CsvRows {
            path: source,
            lines,
            header,
            line: 1,
            current: String::new(),
        })
    }

    fn optional(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    pub(crate) fn required(&self, name: &str) -> Result<usize, Error> {
        self.optional(name).ok_or_else(|| Error::Load {
            path: self.path.clone(),
            line: 1,
            column: Some(name.to_owned()),
            message: format!(
                "the header has no column {name:?} (it has: {})",
                self.header.join(",")
            ),
        })
    }

    /// A file with a header and no rows is refused: read as an empty
    /// cluster or workload, it would make a run that measures nothing.
    pub(crate) fn at_least_one_row(&self, rows: usize, what: &str) -> Result<(), Error> {
        if rows > 0 {
            return Ok(());
        }
        Err(Error::Load {
            path: self.path.clone(),
            line: 1,
            column: None,
            message: format!("the file has a header but no rows: expected at least one {what}"),
        })
    }

    /// The next non-empty row, checked to have as many fields as the header.
    pub(crate) fn next_row(&mut self) -> Result<Option<Row<'_>>, Error> {
        loop {
            let Some(line) = self.lines.next() else {
                return Ok(None);
            };
            self.line += 1;
            let line = line.map_err(|e| Error::Io {
                path: self.path.clone(),
                message: format!("line {}: {e}", self.line),
            })?;
            if line.trim().is_empty() {
                continue;
            }
            // Hold the text so the row can borrow from it.
            self.current = line;
            break;
        }
        let fields: Vec<&str> = self.current.trim_end().split(',').collect();
        let row = Row { rows: self, fields };
        if row.fields.len() != row.rows.header.len() {
            return Err(row.error(
                None,
                format!(
                    "expected {} fields, found {} (truncated or extra columns?)",
                    row.rows.header.len(),
                    row.fields.len()
                ),
            ));
        }
        Ok(Some(row))
    }
}

/// The names seen so far in one column, with the line of each.
#[derive(Default)]
pub(crate) struct UniqueNames(std::collections::HashMap<String, usize>);

impl UniqueNames {
    /// Refuses a row whose name (column `column`) an earlier row has.
    pub(crate) fn check(&mut self, row: &Row<'_>, column: usize, what: &str) -> Result<(), Error> {
        let name = row.text(column);
        if name.is_empty() {
            return Ok(());
        }
        match self.0.entry(name.to_owned()) {
            std::collections::hash_map::Entry::Occupied(first) => Err(row.error(
                Some(column),
                format!(
                    "{what} name {name:?} is already used on line {}",
                    first.get()
                ),
            )),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(row.rows.line);
                Ok(())
            }
        }
    }
}

impl Row<'_> {
    /// A validation error, naming the row as the file does (`pod "p-1"`,
    /// from column `name`) rather than by the id Lepton gave it
    /// (`internal`, as the error prints it: `task t-3`).
    pub(crate) fn invalid(
        &self,
        error: &lepton_core::Error,
        internal: &str,
        what: &str,
        name: usize,
    ) -> Error {
        let message = error.to_string();
        let message = match self.text(name) {
            "" => message,
            own => message.replace(internal, &format!("{what} {own:?}")),
        };
        self.error(None, message)
    }

    pub(crate) fn text(&self, column: usize) -> &str {
        self.fields.get(column).map_or("", |f| f.trim())
    }

    pub(crate) fn error(&self, column: Option<usize>, message: String) -> Error {
        Error::Load {
            path: self.rows.path.clone(),
            line: self.rows.line,
            column: column.and_then(|c| self.rows.header.get(c).cloned()),
            message,
        }
    }

    pub(crate) fn parse<T: FromStr>(&self, column: usize) -> Result<T, Error> {
        let text = self.text(column);
        text.parse().map_err(|_| {
            self.error(
                Some(column),
                format!("{text:?} is not a non-negative integer in range"),
            )
        })
    }

    fn parse_optional<T: FromStr>(&self, column: Option<usize>) -> Result<Option<T>, Error> {
        match column {
            Some(c) if !self.text(c).is_empty() => self.parse(c).map(Some),
            _ => Ok(None),
        }
    }
}
