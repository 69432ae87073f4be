//! Fixtures shared by the integration tests of `lepton-core`.

// Each test file uses only some of these.
#![allow(dead_code)]

use std::path::PathBuf;

pub(crate) mod invariants;

use lepton_core::{policy_fn, ClusterState, Placement, Policy, TaskSpec};

/// The simplest policy: the first feasible node, in cluster order.
pub(crate) fn first_fit() -> Box<dyn Policy> {
    Box::new(policy_fn(
        "first-fit",
        |task: &TaskSpec, cluster: &ClusterState| {
            cluster
                .feasible_nodes(task)
                .next()
                .map(|node| Placement::on(node.id()))
        },
    ))
}

/// A file of the Alibaba GPU trace: in `LEPTON_TRACE_DIR`, by default
/// `../shared/traces/alibaba-gpu-2023` beside the repository. A missing file
/// fails the test; it is never skipped.
pub(crate) fn trace_file(name: &str) -> PathBuf {
    let dir = std::env::var_os("LEPTON_TRACE_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces/alibaba-gpu-2023"),
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.exists(),
        "trace file {} is missing: set LEPTON_TRACE_DIR",
        path.display()
    );
    path
}
