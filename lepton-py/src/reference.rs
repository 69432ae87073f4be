//! An episode run wholly in Rust, on `lepton::sim::gym::FillEnv` itself
//! (not through this module's [`Slot`](crate::env::Slot)): the reference
//! the Python environment is tested against, and the Rust side of the
//! speed comparison (`examples/python/bench.py`).

use lepton::rng::SeededRng;
use lepton::sim::fgd_choice;
use lepton::sim::gym::{EnvConfig, FillEnv, Reward};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::error::to_py;
use crate::trace::Trace;

/// One fill episode with `seed`, each decision taken by `rule`: `"fgd"`
/// (FGD's choice), `"first"` or `"last"` candidate, or `"random"` (a
/// candidate drawn with the episode's seed); the step rewards.
#[pyfunction]
#[pyo3(signature = (seed, rule, trace = "default", node_list = None, pod_list = None, max_candidates = 64, reward = "gpus", tune = 1.3))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn rust_episode(
    py: Python<'_>,
    seed: u64,
    rule: &str,
    trace: &str,
    node_list: Option<std::path::PathBuf>,
    pod_list: Option<std::path::PathBuf>,
    max_candidates: usize,
    reward: &str,
    tune: f64,
) -> PyResult<Vec<f64>> {
    if !["fgd", "first", "last", "random"].contains(&rule) {
        return Err(PyValueError::new_err(format!(
            "unknown rule {rule:?}; expected \"fgd\", \"first\", \"last\" or \"random\""
        )));
    }
    let trace = Trace::load(trace, node_list.as_deref(), pod_list.as_deref())?;
    let mut config = EnvConfig::default();
    config.reward = Reward::parse(reward).map_err(to_py)?;
    config.max_candidates = max_candidates;
    config.tune = tune;
    let mut env = FillEnv::new(
        trace.nodes.clone(),
        trace.tasks(),
        trace.workload.clone(),
        config,
    )
    .map_err(to_py)?;
    py.detach(|| {
        let mut rewards = Vec::new();
        let mut rng = SeededRng::new(seed);
        let mut observation = env.reset(seed)?;
        while let Some(current) = observation {
            let action = match rule {
                "fgd" => fgd_choice(&current).unwrap_or(0),
                "first" => 0,
                "last" => current.candidates.len() - 1,
                _ => rng.index(current.candidates.len()),
            };
            let step = env.step(action)?;
            rewards.push(step.reward);
            observation = step.observation;
        }
        Ok(rewards)
    })
    .map_err(to_py)
}
