//! Fixtures shared by the integration tests of `lepton-core`.

// Each test file uses only some of these.
#![allow(dead_code)]

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
