//! `lepton demo` from Python: the article's scenarios, Lepton against the
//! baselines, as the command line's JSON gives them (its `"scenarios"`).

use lepton::policies::{build, PolicyContext};
use lepton::sim::scenario::{
    compare_datacenter_with, compare_dlrm, compare_edge, compare_hybrid, DatacenterConfig,
    EdgeConfig, FleetWorld, HybridConfig, TraceWindow,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::error::{to_json, to_py};
use crate::trace::dlrm;

const SCENARIOS: [&str; 5] = ["datacenter", "datacenter-trace", "edge", "hybrid", "all"];

/// Runs `scenario` (`datacenter`, `datacenter-trace`, `edge`, `hybrid` or
/// `all`) as `lepton demo --scenario S -o json` does with the same
/// settings; the JSON list of the comparisons.
#[pyfunction]
#[pyo3(signature = (scenario = "all", seed = None, policy = "lifetime", vms = None, tasks = None, hours = None))]
pub(crate) fn demo(
    py: Python<'_>,
    scenario: &str,
    seed: Option<u64>,
    policy: &str,
    vms: Option<usize>,
    tasks: Option<usize>,
    hours: Option<u64>,
) -> PyResult<String> {
    if !SCENARIOS.contains(&scenario) {
        return Err(PyValueError::new_err(format!(
            "unknown scenario {scenario:?}; expected one of {}",
            SCENARIOS.join(", ")
        )));
    }
    if scenario == "datacenter-trace" && (tasks.is_some() || hours.is_some()) {
        return Err(PyValueError::new_err(
            "tasks and hours are not read by datacenter-trace: the trace's instances and times are its tasks",
        ));
    }
    if vms.is_some() && !matches!(scenario, "datacenter" | "all") {
        return Err(PyValueError::new_err(format!(
            "vms is the data center's, and scenario {scenario:?} does not run it"
        )));
    }
    let wanted = |one: &str| scenario == one || scenario == "all";
    let default = DatacenterConfig::default();
    let seed = seed.unwrap_or(default.seed);
    let datacenter = DatacenterConfig {
        seed,
        vms: vms.unwrap_or(default.vms),
        tasks: tasks.unwrap_or(default.tasks),
        hours: hours.unwrap_or(default.hours),
        ..default
    };
    let edge_default = EdgeConfig::default();
    let edge = EdgeConfig {
        seed,
        tasks: tasks.unwrap_or(default.tasks),
        hours: hours.unwrap_or(default.hours),
        ..edge_default
    };
    let hybrid_default = HybridConfig::default();
    let hybrid = HybridConfig {
        seed,
        tasks: tasks.unwrap_or(hybrid_default.tasks),
        hours: hours.unwrap_or(default.hours),
        ..hybrid_default
    };
    datacenter.validate().map_err(to_py)?;
    edge.validate().map_err(to_py)?;
    hybrid.validate().map_err(to_py)?;
    let context = PolicyContext::default();
    let unknown = |e: lepton::policies::Error| PyValueError::new_err(e.to_string());
    build(policy, &context).map_err(unknown)?;
    let encode = |e: serde_json::Error| PyRuntimeError::new_err(e.to_string());
    py.detach(|| {
        let mut all = Vec::new();
        if wanted("datacenter") {
            let lepton = build(policy, &context).map_err(unknown)?;
            let comparison = compare_datacenter_with(&datacenter, policy, lepton).map_err(to_py)?;
            all.push(serde_json::to_value(comparison).map_err(encode)?);
        }
        if wanted("datacenter-trace") {
            let instances = dlrm()?;
            let window = TraceWindow::REPORT;
            let rules = DatacenterConfig {
                seed,
                ..DatacenterConfig::default()
            };
            let world = FleetWorld::from_dlrm(&instances, window, &rules).map_err(to_py)?;
            let comparison =
                compare_dlrm(&world, &instances, window, policy, &context).map_err(to_py)?;
            all.push(serde_json::to_value(comparison).map_err(encode)?);
        }
        if wanted("edge") {
            let comparison = compare_edge(&edge).map_err(to_py)?;
            all.push(serde_json::to_value(comparison).map_err(encode)?);
        }
        if wanted("hybrid") {
            let comparison = compare_hybrid(&hybrid).map_err(to_py)?;
            all.push(serde_json::to_value(comparison).map_err(encode)?);
        }
        to_json(&all)
    })
}
