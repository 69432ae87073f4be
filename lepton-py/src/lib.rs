//! Lepton for Python: the extension module `lepton._lepton`, which the
//! Python package `lepton` (in `python/`) wraps in Gymnasium's API.
//!
//! - `Env` (module `env`): one environment, fill or timed mode, over
//!   `lepton::sim::gym`; its observation is a NumPy array of candidate rows
//!   padded to a fixed width, with the mask of the valid actions.
//! - `VecEnv` (module `batch`): many environments stepped in Rust, on threads,
//!   with the GIL released.
//! - `Scheduler` (module `scheduler`): the scheduler itself, nodes and
//!   tasks as JSON specs in, assignments out.
//! - `fill`, `demo` and `policies`: the fill experiment, the article's
//!   scenarios and the policy registry, as `lepton fill -o json`, `lepton
//!   demo -o json` and `lepton policies` give them.
//!
//! No Rust panic crosses into Python: every failure is a Rust error turned
//! into a Python exception (module `error`) with the error's message.

mod batch;
mod demo;
mod env;
mod error;
mod reference;
mod scheduler;
mod source;
mod trace;

use lepton::policies::{
    build, policy_descriptions, PolicyContext, FEATURES, FEATURE_BOUNDS, FEATURE_NAMES,
};
use lepton::sim::gym::{EDGE_FEATURE_BOUNDS, EDGE_FEATURE_NAMES};
use lepton::sim::{run_fill, FillConfig};
use pyo3::prelude::*;

use error::{to_json, to_py};

/// Every policy's name and one-line description, as `lepton policies`
/// lists them.
#[pyfunction]
fn policies() -> Vec<(String, String)> {
    policy_descriptions()
}

/// The most seeds (one run each) one `fill` call takes, as the command
/// line's `--seed`.
const MAX_SEEDS: usize = 10_000;

/// The fill experiment (`lepton fill`): one run per seed of `policy` on a
/// trace; a JSON list of the runs' results (`FillResult`), allocation
/// curves left out unless `curve`.
#[pyfunction]
#[pyo3(signature = (policy, seeds, trace = "default", node_list = None, pod_list = None, tune = 1.3, curve = false))]
#[allow(clippy::too_many_arguments)]
fn fill(
    py: Python<'_>,
    policy: &str,
    seeds: Vec<u64>,
    trace: &str,
    node_list: Option<std::path::PathBuf>,
    pod_list: Option<std::path::PathBuf>,
    tune: f64,
    curve: bool,
) -> PyResult<String> {
    if seeds.len() > MAX_SEEDS {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{} seeds: at most {MAX_SEEDS} runs in one call (as `lepton fill --seed`)",
            seeds.len()
        )));
    }
    let trace = trace::Trace::load(trace, node_list.as_deref(), pod_list.as_deref())?;
    let context = PolicyContext {
        target_workload: Some(trace.workload.clone()),
        ..PolicyContext::default()
    };
    let tasks = trace.tasks();
    let runs = py.detach(|| {
        seeds
            .iter()
            .map(|&seed| {
                let policy = build(policy, &context)?;
                let config = FillConfig { seed, tune };
                let mut result = run_fill(&trace.nodes, &tasks, &trace.workload, policy, &config)?;
                if !curve {
                    result.curve.clear();
                }
                Ok(result)
            })
            .collect::<Result<Vec<_>, lepton::sim::Error>>()
    });
    to_json(&runs.map_err(to_py)?)
}

/// The module `lepton._lepton`.
#[pymodule]
fn _lepton(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<env::Env>()?;
    module.add_class::<batch::VecEnv>()?;
    module.add_class::<scheduler::Scheduler>()?;
    module.add_function(wrap_pyfunction!(policies, module)?)?;
    module.add_function(wrap_pyfunction!(fill, module)?)?;
    module.add_function(wrap_pyfunction!(demo::demo, module)?)?;
    module.add_function(wrap_pyfunction!(reference::rust_episode, module)?)?;
    module.add("FEATURES", FEATURES)?;
    module.add("FEATURE_NAMES", FEATURE_NAMES.to_vec())?;
    module.add("FEATURE_BOUNDS", FEATURE_BOUNDS.to_vec())?;
    module.add("EDGE_FEATURE_NAMES", EDGE_FEATURE_NAMES.to_vec())?;
    module.add("EDGE_FEATURE_BOUNDS", EDGE_FEATURE_BOUNDS.to_vec())?;
    module.add("TRACES", trace::SHIPPED.map(|(name, _)| name).to_vec())?;
    module.add("MODES", source::MODES.to_vec())?;
    Ok(())
}
