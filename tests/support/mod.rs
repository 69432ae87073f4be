//! Fixtures shared by the end-to-end tests.

// Each test file uses only some of these.
#![allow(dead_code, clippy::unwrap_used)]

#[cfg(feature = "controller")]
pub(crate) mod conformance;

use std::path::PathBuf;
use std::sync::Arc;

use lepton::fragmentation::TargetWorkload;
use lepton::policies::PolicyContext;
use lepton::sim::{read_openb_nodes, read_openb_pods};
use lepton::{NodeSpec, TaskSpec};

/// The value of `name`, which `scripts/backends.sh env` exports for the
/// `backend` server; unset fails the test (it never skips) and says how to
/// start the server.
pub(crate) fn server_env(name: &str, backend: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run `bash scripts/backends.sh start {backend}` and \
             `eval \"$(bash scripts/backends.sh env)\"` first"
        )
    })
}

/// A file of the trace (the copy in `data/`, or `LEPTON_TRACE_DIR`); a
/// missing file fails the test, it is never skipped.
pub(crate) fn trace_file(name: &str) -> PathBuf {
    let path = lepton::sim::trace_dir().unwrap().join(name);
    assert!(path.exists(), "trace file {} is missing", path.display());
    path
}

/// The paper's cluster and one of its pod lists (`default`, `cpu050`, …).
pub(crate) fn paper_cluster_and_pods(pods: &str) -> (Vec<NodeSpec>, Vec<TaskSpec>) {
    let nodes = read_openb_nodes(&trace_file("openb_node_list_gpu_node.csv")).unwrap();
    let tasks = read_openb_pods(&trace_file(&format!("openb_pod_list_{pods}.csv")))
        .unwrap()
        .into_iter()
        .map(|pod| pod.spec)
        .collect();
    (nodes, tasks)
}

/// FGD's target workload for `tasks` (95% coverage, as in the paper) and a
/// policy context carrying it.
pub(crate) fn paper_context(tasks: &[TaskSpec]) -> (Arc<TargetWorkload>, PolicyContext) {
    let workload = Arc::new(TargetWorkload::from_tasks(tasks, 0.95));
    let context = PolicyContext {
        target_workload: Some(Arc::clone(&workload)),
        ..PolicyContext::default()
    };
    (workload, context)
}
