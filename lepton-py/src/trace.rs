//! The trace an environment or a fill runs on: the Alibaba GPU trace's
//! node list and pod lists, built into the module (so an installed package
//! needs no clone), or files the caller names.

use std::path::Path;
use std::sync::Arc;

use lepton::fragmentation::TargetWorkload;
use lepton::sim::{
    parse_dlrm, parse_openb_nodes, parse_openb_pods, read_openb_nodes, read_openb_pods,
    DlrmInstance, TracePod,
};
use lepton::{NodeSpec, TaskSpec};
use pyo3::exceptions::PyValueError;
use pyo3::PyResult;

use crate::error::to_py;

/// The node list shipped in `data/alibaba-gpu-2023` (see its README for
/// the source and licence).
const NODES: &str = include_str!("../../data/alibaba-gpu-2023/openb_node_list_gpu_node.csv");

/// The pod lists shipped in `data/alibaba-gpu-2023`, by the name `trace=`
/// takes.
pub(crate) const SHIPPED: [(&str, &str); 5] = [
    (
        "default",
        include_str!("../../data/alibaba-gpu-2023/openb_pod_list_default.csv"),
    ),
    (
        "cpu050",
        include_str!("../../data/alibaba-gpu-2023/openb_pod_list_cpu050.csv"),
    ),
    (
        "gpushare20",
        include_str!("../../data/alibaba-gpu-2023/openb_pod_list_gpushare20.csv"),
    ),
    (
        "gpuspec10",
        include_str!("../../data/alibaba-gpu-2023/openb_pod_list_gpuspec10.csv"),
    ),
    (
        "multigpu20",
        include_str!("../../data/alibaba-gpu-2023/openb_pod_list_multigpu20.csv"),
    ),
];

/// Alibaba's DLRM serving trace shipped in `data/alibaba-dlrm-2025` (see
/// its README for the source and licence).
const DLRM: &str = include_str!("../../data/alibaba-dlrm-2025/disaggregated_DLRM_trace.csv");

/// The DLRM trace's instances.
///
/// # Errors
/// None expected: the shipped file is checked by the tests.
pub(crate) fn dlrm() -> PyResult<Arc<Vec<DlrmInstance>>> {
    parse_dlrm(DLRM, "disaggregated_DLRM_trace.csv")
        .map(Arc::new)
        .map_err(to_py)
}

/// FGD's target workload covers the task shapes making up this share of
/// the trace's tasks (as the command line's).
const TARGET_COVERAGE: f64 = 0.95;

/// A trace, read and checked.
pub(crate) struct Trace {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) pods: Vec<TracePod>,
    pub(crate) workload: Arc<TargetWorkload>,
}

impl Trace {
    /// The shipped pod list `name` on the shipped node list, either list
    /// replaced by a file when one is given.
    ///
    /// # Errors
    /// `ValueError` naming an unknown `name` (and the known ones) or a
    /// malformed file's line; `OSError` when a file cannot be read.
    pub(crate) fn load(
        name: &str,
        node_list: Option<&Path>,
        pod_list: Option<&Path>,
    ) -> PyResult<Trace> {
        let shipped = SHIPPED
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, text)| *text);
        let Some(pods_text) = shipped else {
            let known: Vec<&str> = SHIPPED.iter().map(|(known, _)| *known).collect();
            return Err(PyValueError::new_err(format!(
                "unknown trace {name:?}; the shipped traces are {}",
                known.join(", ")
            )));
        };
        let nodes = match node_list {
            Some(path) => read_openb_nodes(path),
            None => parse_openb_nodes(NODES, "openb_node_list_gpu_node.csv"),
        }
        .map_err(to_py)?;
        let pods = match pod_list {
            Some(path) => read_openb_pods(path),
            None => parse_openb_pods(pods_text, &format!("openb_pod_list_{name}.csv")),
        }
        .map_err(to_py)?;
        let tasks: Vec<TaskSpec> = pods.iter().map(|pod| pod.spec.clone()).collect();
        let workload = Arc::new(TargetWorkload::from_tasks(&tasks, TARGET_COVERAGE));
        Ok(Trace {
            nodes,
            pods,
            workload,
        })
    }

    /// The pods' task specs.
    pub(crate) fn tasks(&self) -> Vec<TaskSpec> {
        self.pods.iter().map(|pod| pod.spec.clone()).collect()
    }
}
