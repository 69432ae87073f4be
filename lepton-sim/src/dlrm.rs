//! Reader for Alibaba's GPU-disaggregated DLRM serving trace (2025): one
//! row per inference instance of a recommendation service, with its
//! requests, its density limit and its creation and deletion times
//! (Yang et al., "GPU-Disaggregated Serving for Deep Learning
//! Recommendation Models at Scale", USENIX NSDI '25; `data/alibaba-dlrm-2025`).
//!
//! Units are converted here: CPUs to milli-CPUs, GiB of memory to MiB, disk
//! to storage GiB, the RDMA share (a percentage of one NIC) to the
//! extended resource [`RDMA`]. An instance's density limit
//! (`max_instance_per_node`) becomes an anti-affinity group per service
//! and role with that limit, each instance's own value counting (10 of the
//! trace's 312 service-role groups carry two values). A malformed row is an
//! [`Error::Load`] naming the line and the column.

use std::path::{Path, PathBuf};

use lepton_core::model::{Priority, QosClass, TaskKind, Toleration};
use lepton_core::{GpuRequest, Resources, TaskId, TaskSpec};

use crate::trace::{CsvRows, Row, UniqueNames};
use crate::Error;

/// The extended resource an instance's RDMA bandwidth is asked in: percent
/// of one NIC (a node has one, so 100).
pub const RDMA: &str = "rdma";

/// The taint of the trace's GPU nodes: only GPU-node (`HN`) instances,
/// which tolerate it, run there.
pub const DLRM_GPU_TAINT: &str = "gpu";

/// One instance of the trace.
#[derive(Debug, Clone)]
pub struct DlrmInstance {
    /// What it asks for (id = row index from 0, name = `instance_sn`; a
    /// latency-sensitive service).
    pub spec: TaskSpec,
    /// A GPU-node (`HN`) instance; otherwise a CPU-node (`CN`) one.
    pub gpu_node: bool,
    /// Its service (`app_name`).
    pub app: String,
    /// Created, seconds from the trace's start; `None`: it ran before the
    /// trace started.
    pub created_s: Option<f64>,
    /// Deleted, seconds from the trace's start; `None`: it still ran when
    /// the trace ended.
    pub deleted_s: Option<f64>,
}

/// The trace's file as shipped in the repository
/// (`data/alibaba-dlrm-2025/disaggregated_DLRM_trace.csv`, fixed when
/// Lepton is built).
pub fn dlrm_trace_path() -> PathBuf {
    let shipped = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/alibaba-dlrm-2025/disaggregated_DLRM_trace.csv"
    ));
    shipped.canonicalize().unwrap_or(shipped)
}

/// Reads a trace file of the DLRM format.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Load`] for a
/// malformed row or a file without rows.
pub fn read_dlrm(path: &Path) -> Result<Vec<DlrmInstance>, Error> {
    instances(CsvRows::open(path)?)
}

/// [`read_dlrm`] on text in memory; `source` names it in errors.
///
/// # Errors
/// [`Error::Load`] for a malformed row or a text without rows.
pub fn parse_dlrm(text: &str, source: &str) -> Result<Vec<DlrmInstance>, Error> {
    instances(CsvRows::from_text(text, source)?)
}

fn instances(mut rows: CsvRows) -> Result<Vec<DlrmInstance>, Error> {
    let columns = [
        "instance_sn",
        "role",
        "app_name",
        "cpu_request",
        "gpu_request",
        "rdma_request",
        "memory_request",
        "disk_request",
        "max_instance_per_node",
        "creation_time",
        "deletion_time",
    ];
    let [sn, role, app, cpu, gpu, rdma, memory, disk, limit, created, deleted] =
        columns.map(|c| rows.required(c));
    let (sn, role, app, cpu, gpu, rdma, memory, disk, limit, created, deleted) = (
        sn?, role?, app?, cpu?, gpu?, rdma?, memory?, disk?, limit?, created?, deleted?,
    );
    let mut instances = Vec::new();
    let mut names = UniqueNames::default();
    while let Some(row) = rows.next_row()? {
        names.check(&row, sn, "instance")?;
        let gpu_node = match row.text(role) {
            "HN" => true,
            "CN" => false,
            other => {
                return Err(row.error(Some(role), format!("{other:?} is not a role (CN or HN)")))
            }
        };
        let gpus: u32 = row.parse(gpu)?;
        if gpu_node != (gpus > 0) {
            return Err(row.error(
                Some(gpu),
                format!(
                    "a {} instance asks for {gpus} GPUs: HN instances ask for GPUs, CN ones for none",
                    row.text(role)
                ),
            ));
        }
        let rdma_percent: u64 = row.parse(rdma)?;
        if rdma_percent > 100 {
            return Err(row.error(
                Some(rdma),
                format!("{rdma_percent} is above 100 % of one RDMA NIC"),
            ));
        }
        let request = Resources::new(amount(&row, cpu, 1_000.0)?, amount(&row, memory, 1_024.0)?)
            .with_storage_gib(amount(&row, disk, 1.0)?)
            .with_extended(RDMA, rdma_percent);
        let id = TaskId(instances.len() as u64);
        let group = format!("{}/{}", row.text(app), row.text(role));
        let mut spec = TaskSpec::new(id, request)
            .with_name(row.text(sn))
            .with_config("app", group.as_str())
            .with_kind(TaskKind::Service)
            .with_qos(QosClass::LatencySensitive)
            .with_priority(Priority(200));
        if gpu_node {
            spec = spec
                .with_gpu(GpuRequest::whole(gpus))
                .with_toleration(Toleration::key(DLRM_GPU_TAINT));
        }
        let text = row.text(limit);
        spec = match text.parse::<i64>() {
            Ok(-1) => spec,
            Ok(n @ 1..=1_000_000) => spec.with_anti_affinity_limit(group, n as u32),
            _ => {
                return Err(row.error(
                    Some(limit),
                    format!("{text:?} is not a limit (-1 for none, or 1 to 1,000,000)"),
                ))
            }
        };
        spec.validate()
            .map_err(|e| row.invalid(&e, &format!("task {id}"), "instance", sn))?;
        let created_s = time(&row, created)?;
        let deleted_s = time(&row, deleted)?;
        if let (Some(c), Some(d)) = (created_s, deleted_s) {
            if d < c {
                return Err(row.error(
                    Some(deleted),
                    format!("deleted at {d} s, before its creation at {c} s"),
                ));
            }
        }
        instances.push(DlrmInstance {
            spec,
            gpu_node,
            app: row.text(app).to_owned(),
            created_s,
            deleted_s,
        });
    }
    rows.at_least_one_row(instances.len(), "instance")?;
    Ok(instances)
}

/// Column `column` (a non-negative number) times `scale`, rounded up.
fn amount(row: &Row<'_>, column: usize, scale: f64) -> Result<u64, Error> {
    let text = row.text(column);
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && (0.0..=1e9).contains(&value) => {
            Ok((value * scale).ceil() as u64)
        }
        _ => Err(row.error(
            Some(column),
            format!("{text:?} is not a non-negative number up to 1e9"),
        )),
    }
}

/// A time in seconds; empty or `nan` is none.
fn time(row: &Row<'_>, column: usize) -> Result<Option<f64>, Error> {
    let text = row.text(column);
    if text.is_empty() || text.eq_ignore_ascii_case("nan") {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && (0.0..=1e10).contains(&value) => Ok(Some(value)),
        _ => Err(row.error(
            Some(column),
            format!("{text:?} is not a time in seconds (0 to 1e10, or empty)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "instance_sn,role,app_name,cpu_request,cpu_limit,gpu_request,gpu_limit,rdma_request,rdma_limit,memory_request,memory_limit,disk_request,disk_limit,max_instance_per_node,creation_time,scheduled_time,deletion_time";

    #[test]
    fn rows_become_services_with_their_limits() {
        let text = format!(
            "{HEADER}\ni0,HN,app_0,12,12,1,1,25,25,120.0,120.0,640.0,800.0,8,,,\n\
             i1,CN,app_0,64,64,0,0,1,1,320.0,320.0,255.0,255.0,-1,475.5,600.0,91730.0\n"
        );
        let instances = parse_dlrm(&text, "t.csv").unwrap();
        let hn = &instances[0];
        assert!(hn.gpu_node);
        assert_eq!(hn.spec.request.cpu_milli, 12_000);
        assert_eq!(hn.spec.request.memory_mib, 120 * 1_024);
        assert_eq!(hn.spec.request.extended(RDMA), 25);
        assert_eq!(hn.spec.gpu, GpuRequest::whole(1));
        assert_eq!(
            hn.spec.constraints.anti_affinity.as_deref(),
            Some("app_0/HN")
        );
        assert_eq!(hn.spec.constraints.max_per_node, Some(8));
        assert_eq!((hn.created_s, hn.deleted_s), (None, None));
        let cn = &instances[1];
        assert!(!cn.gpu_node && cn.spec.constraints.anti_affinity.is_none());
        assert_eq!(cn.spec.request.storage_gib, 255);
        assert_eq!((cn.created_s, cn.deleted_s), (Some(475.5), Some(91_730.0)));
    }

    #[test]
    fn bad_rows_are_named() {
        for (row, column, words) in [
            ("i0,XN,a,1,1,0,0,1,1,1,1,1,1,-1,,,", "role", "\"XN\""),
            ("i0,CN,a,1,1,1,1,1,1,1,1,1,1,-1,,,", "gpu_request", "CN"),
            ("i0,CN,a,1,1,0,0,101,1,1,1,1,1,-1,,,", "rdma_request", "101"),
            (
                "i0,CN,a,-4,1,0,0,1,1,1,1,1,1,-1,,,",
                "cpu_request",
                "\"-4\"",
            ),
            (
                "i0,CN,a,1,1,0,0,1,1,1,1,1,1,0,,,",
                "max_instance_per_node",
                "\"0\"",
            ),
            (
                "i0,CN,a,1,1,0,0,1,1,1,1,1,1,-1,9,,5",
                "deletion_time",
                "before",
            ),
            (
                "i0,CN,a,1,1,0,0,1,1,1,1,1,1,-1,inf,,",
                "creation_time",
                "\"inf\"",
            ),
        ] {
            let error = parse_dlrm(&format!("{HEADER}\n{row}\n"), "t.csv").unwrap_err();
            let message = error.to_string();
            assert!(message.starts_with("t.csv:2: column "), "{message}");
            assert!(
                message.contains(column) && message.contains(words),
                "{message}"
            );
        }
    }

    #[test]
    fn the_shipped_trace_reads_whole() {
        let instances = read_dlrm(&dlrm_trace_path()).unwrap();
        assert_eq!(instances.len(), 23_871);
        let gpu = instances.iter().filter(|i| i.gpu_node).count();
        assert_eq!(gpu, 7_386);
        let before = instances.iter().filter(|i| i.created_s.is_none()).count();
        let after = instances.iter().filter(|i| i.deleted_s.is_none()).count();
        assert_eq!((before, after), (7_280, 8_878));
    }
}
