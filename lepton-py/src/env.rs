//! One environment, of any mode, with its observations as NumPy arrays:
//! the candidate rows padded to a fixed width, and the mask of the actions
//! that name a candidate.

use std::sync::{Mutex, MutexGuard};

use lepton::policies::FEATURES;
use lepton::sim::fgd_choice;
use lepton::sim::gym::{Observation, EDGE_FEATURES};
use numpy::ndarray::Array;
use numpy::{PyArray1, PyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{to_json, to_py};
use crate::source::{Sim, Source};

/// The most candidates an observation holds (its rows are allocated per
/// step: a bound keeps a typo from asking for gigabytes).
pub(crate) const MAX_CANDIDATES: usize = 1024;

/// An environment and the decision waiting for its action; what both the
/// single [`Env`] and the batched [`crate::batch::VecEnv`] step.
pub(crate) struct Slot {
    sim: Sim,
    width: usize,
    /// Numbers per candidate row: [`FEATURES`], and in edge mode the edge
    /// columns after them.
    columns: usize,
    current: Option<Observation>,
}

/// What a step gives back besides the next observation.
pub(crate) struct Outcome {
    pub(crate) reward: f64,
    pub(crate) done: bool,
    pub(crate) node: u64,
    pub(crate) dropped: usize,
}

impl Slot {
    /// An environment of `source`, up to `max_candidates` candidates per
    /// decision, paying `reward` (the mode's defaults when `None`).
    pub(crate) fn new(
        source: &Source,
        max_candidates: Option<usize>,
        reward: Option<&str>,
    ) -> PyResult<Slot> {
        let max_candidates = max_candidates.unwrap_or_else(|| source.default_candidates());
        if max_candidates == 0 || max_candidates > MAX_CANDIDATES {
            return Err(PyValueError::new_err(format!(
                "max_candidates = {max_candidates} is out of range: 1 to {MAX_CANDIDATES}"
            )));
        }
        let sim = source.sim(max_candidates, reward)?;
        let columns = match sim {
            Sim::Edge(_) => FEATURES + EDGE_FEATURES,
            Sim::Fill(_) | Sim::Timed(_) | Sim::Fleet(_) => FEATURES,
        };
        Ok(Slot {
            sim,
            width: max_candidates,
            columns,
            current: None,
        })
    }

    /// The action slots of an observation.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// The numbers in each candidate's row.
    pub(crate) fn columns(&self) -> usize {
        self.columns
    }

    /// Starts an episode with `seed`.
    ///
    /// # Errors
    /// `ValueError` when the episode asks for no decision at all (no task
    /// of the trace fits any node).
    pub(crate) fn reset(&mut self, seed: u64) -> PyResult<()> {
        self.current = match &mut self.sim {
            Sim::Fill(env) => env.reset(seed),
            Sim::Timed(env) => env.reset(seed),
            Sim::Fleet(env) => env.reset(seed),
            Sim::Edge(env) => env.reset(seed),
        }
        .map_err(to_py)?;
        if self.current.is_none() {
            return Err(PyValueError::new_err(format!(
                "the episode with seed {seed} asks for no decision: no task of the trace fits any node"
            )));
        }
        Ok(())
    }

    /// `action` as a candidate's index.
    ///
    /// # Errors
    /// `ValueError` naming the action when it names no candidate,
    /// `RuntimeError` when no episode is running.
    pub(crate) fn check(&self, action: i64) -> PyResult<usize> {
        let Some(current) = &self.current else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "no episode is running: call reset() first (and again after the episode ends)",
            ));
        };
        check_action(action, current.candidates.len())
    }

    /// How many candidates the waiting decision has (0 when none waits).
    pub(crate) fn candidates(&self) -> usize {
        self.current.as_ref().map_or(0, |c| c.candidates.len())
    }

    /// Places the task on candidate `action` (checked by [`check`](Self::check)).
    pub(crate) fn step(&mut self, action: usize) -> PyResult<Outcome> {
        let step = match &mut self.sim {
            Sim::Fill(env) => env.step(action),
            Sim::Timed(env) => env.step(action),
            Sim::Fleet(env) => env.step(action),
            Sim::Edge(env) => env.step(action),
        }
        .map_err(to_py)?;
        self.current = step.observation;
        Ok(Outcome {
            reward: step.reward,
            done: step.done,
            node: step.info.placement.node.0,
            dropped: step.info.dropped,
        })
    }

    /// Writes the observation: `width` rows of [`columns`](Self::columns)
    /// into `rows` (zeros past the candidates, or all zeros after the end)
    /// and the mask of valid actions into `mask`.
    pub(crate) fn write(&self, rows: &mut [f32], mask: &mut [bool]) {
        rows.fill(0.0);
        mask.fill(false);
        let Some(current) = &self.current else {
            return;
        };
        for (index, (row, valid)) in rows
            .chunks_exact_mut(self.columns)
            .zip(mask.iter_mut())
            .enumerate()
        {
            let Some(candidate) = current.candidates.get(index) else {
                break;
            };
            let (features, edge) = row.split_at_mut(FEATURES);
            features.copy_from_slice(&candidate.features);
            if let Some(columns) = current.edge.get(index) {
                edge.copy_from_slice(columns);
            }
            *valid = true;
        }
    }

    /// FGD's choice among the candidates (the best integer score, the
    /// earliest on ties); `None` when no decision is waiting.
    pub(crate) fn fgd_action(&self) -> Option<usize> {
        self.current.as_ref().and_then(fgd_choice)
    }

    /// The episode's figures so far, as JSON.
    pub(crate) fn summary(&self) -> PyResult<String> {
        let summary = match &self.sim {
            Sim::Fill(env) => env.summary(),
            Sim::Timed(env) => env.summary(),
            Sim::Fleet(env) => env.summary(),
            Sim::Edge(env) => env.summary(),
        }
        .map_err(to_py)?;
        to_json(&summary)
    }

    /// A scenario's run report (cost, utilization, SLO violations,
    /// latencies, …) as JSON, once its episode ended; `None` otherwise and
    /// in the trace's modes.
    pub(crate) fn report(&self) -> PyResult<Option<String>> {
        match &self.sim {
            Sim::Fleet(env) => env.report().map(to_json).transpose(),
            Sim::Edge(env) => env.report().map(to_json).transpose(),
            Sim::Fill(_) | Sim::Timed(_) => Ok(None),
        }
    }
}

/// `action` as the index of one of `candidates` candidates.
///
/// # Errors
/// `ValueError` naming the action when it names none.
pub(crate) fn check_action(action: i64, candidates: usize) -> PyResult<usize> {
    match usize::try_from(action) {
        Ok(index) if index < candidates => Ok(index),
        _ => Err(PyValueError::new_err(format!(
            "action {action} is infeasible: this decision has {candidates} candidates \
             (valid actions 0 to {}; see info[\"action_mask\"])",
            candidates.saturating_sub(1)
        ))),
    }
}

/// Locks `mutex`; a panic cannot happen while it is held (every failure is
/// an error value), so a poisoned lock still holds a whole environment.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The observations of `slots` (all of one source), flat: rows `n × width
/// × columns` and masks `n × width` (NumPy takes these vectors over
/// without a copy).
pub(crate) fn observe(slots: &[Slot]) -> (Vec<f32>, Vec<bool>) {
    let (width, columns) = slots.first().map_or((0, 0), |s| (s.width, s.columns));
    let mut rows = vec![0.0; slots.len() * width * columns];
    let mut mask = vec![false; slots.len() * width];
    for ((slot, rows), mask) in slots
        .iter()
        .zip(rows.chunks_exact_mut((width * columns).max(1)))
        .zip(mask.chunks_exact_mut(width))
    {
        slot.write(rows, mask);
    }
    (rows, mask)
}

/// A single environment (see the Python wrapper `lepton.LeptonEnv`).
#[pyclass(module = "lepton._lepton")]
pub(crate) struct Env {
    slot: Mutex<Slot>,
}

type Arrays<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<bool>>);

fn arrays<'py>(py: Python<'py>, slot: &Slot) -> PyResult<Arrays<'py>> {
    let (rows, mask) = observe(std::slice::from_ref(slot));
    let rows = Array::from_shape_vec((slot.width(), slot.columns()), rows)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    Ok((
        numpy::PyArray2::from_owned_array(py, rows),
        PyArray1::from_vec(py, mask),
    ))
}

#[pymethods]
impl Env {
    /// An environment in `mode` (`lepton.MODES`: fill, timed, datacenter,
    /// datacenter-trace, hybrid, edge) with the mode's keyword `options`.
    #[new]
    #[pyo3(signature = (mode = "fill", max_candidates = None, reward = None, **options))]
    fn new(
        mode: &str,
        max_candidates: Option<usize>,
        reward: Option<&str>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Env> {
        let source = Source::new(mode, options)?;
        let slot = Slot::new(&source, max_candidates, reward)?;
        Ok(Env {
            slot: Mutex::new(slot),
        })
    }

    /// The action slots of an observation (`max_candidates`).
    #[getter]
    fn width(&self) -> usize {
        lock(&self.slot).width()
    }

    /// The numbers in each candidate's row (`FEATURES`, and the edge
    /// columns in edge mode).
    #[getter]
    fn columns(&self) -> usize {
        lock(&self.slot).columns()
    }

    /// Starts an episode with `seed`; the first observation and its mask.
    fn reset<'py>(&self, py: Python<'py>, seed: u64) -> PyResult<Arrays<'py>> {
        let mut guard = lock(&self.slot);
        let slot = &mut *guard;
        py.detach(|| slot.reset(seed))?;
        arrays(py, slot)
    }

    /// Places the waiting task on candidate `action`: the next observation,
    /// its mask, the reward, whether the episode is over, the node the task
    /// went to and the tasks dropped since (fill mode).
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &self,
        py: Python<'py>,
        action: i64,
    ) -> PyResult<(
        Bound<'py, PyArray2<f32>>,
        Bound<'py, PyArray1<bool>>,
        f64,
        bool,
        u64,
        usize,
    )> {
        let mut guard = lock(&self.slot);
        let slot = &mut *guard;
        let index = slot.check(action)?;
        let outcome = py.detach(|| slot.step(index))?;
        let (rows, mask) = arrays(py, slot)?;
        Ok((
            rows,
            mask,
            outcome.reward,
            outcome.done,
            outcome.node,
            outcome.dropped,
        ))
    }

    /// FGD's choice for the waiting decision, or `None`.
    fn fgd_action(&self) -> Option<usize> {
        lock(&self.slot).fgd_action()
    }

    /// The episode's figures so far, as JSON (`Summary`).
    fn summary(&self) -> PyResult<String> {
        lock(&self.slot).summary()
    }

    /// A fleet's run report as JSON once its episode ended, else `None`.
    fn report(&self) -> PyResult<Option<String>> {
        lock(&self.slot).report()
    }
}
