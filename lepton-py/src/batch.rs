//! Many environments stepped in Rust: one call steps them all, on threads,
//! with the GIL released, and an environment whose episode ends starts its
//! next one in the same step (Gymnasium's same-step autoreset).

use std::sync::Mutex;

use lepton::policies::FEATURES;
use numpy::ndarray::Array;
use numpy::{PyArray1, PyArray2, PyArray3, PyReadonlyArray1};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::env::{lock, observe, Slot};
use crate::trace::Trace;

/// The most environments one batch holds.
const MAX_ENVS: usize = 4096;

/// Environments stepped together (see the Python wrapper `lepton.VecEnv`).
#[pyclass(module = "lepton._lepton")]
pub(crate) struct VecEnv {
    state: Mutex<Batch>,
    threads: usize,
}

/// The environments and each one's seed for its current episode.
struct Batch {
    slots: Vec<Slot>,
    seeds: Vec<u64>,
}

type Observations<'py> = (Bound<'py, PyArray3<f32>>, Bound<'py, PyArray2<bool>>);

fn arrays<'py>(py: Python<'py>, slots: &[Slot]) -> PyResult<Observations<'py>> {
    let n = slots.len();
    let width = slots.first().map_or(0, Slot::width);
    let (rows, mask) = observe(slots);
    let internal = |e: numpy::ndarray::ShapeError| PyRuntimeError::new_err(e.to_string());
    let rows = Array::from_shape_vec((n, width, FEATURES), rows).map_err(internal)?;
    let mask = Array::from_shape_vec((n, width), mask).map_err(internal)?;
    Ok((
        PyArray3::from_owned_array(py, rows),
        PyArray2::from_owned_array(py, mask),
    ))
}

/// Runs `work` on every slot (with its index), split over `threads`
/// scoped threads; the results in slot order, or the first error by index.
fn each<T, F>(slots: &mut [Slot], threads: usize, work: F) -> PyResult<Vec<T>>
where
    T: Send,
    F: Fn(usize, &mut Slot) -> PyResult<T> + Sync,
{
    let chunk = slots.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<PyResult<Vec<T>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = slots
            .chunks_mut(chunk)
            .enumerate()
            .map(|(c, part)| {
                let work = &work;
                scope.spawn(move || {
                    part.iter_mut()
                        .enumerate()
                        .map(|(i, slot)| work(c * chunk + i, slot))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(PyRuntimeError::new_err("an environment's thread panicked"))
                })
            })
            .collect()
    });
    let mut results = Vec::with_capacity(slots.len());
    for part in parts {
        results.extend(part?);
    }
    Ok(results)
}

#[pymethods]
impl VecEnv {
    /// `n` environments, each as `lepton._lepton.Env(mode, …)`, stepped on
    /// `threads` threads (default: one per core).
    #[new]
    #[pyo3(signature = (n, mode = "fill", trace = "default", node_list = None, pod_list = None, max_candidates = 64, reward = "gpus", tune = 1.3, threads = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        n: usize,
        mode: &str,
        trace: &str,
        node_list: Option<std::path::PathBuf>,
        pod_list: Option<std::path::PathBuf>,
        max_candidates: usize,
        reward: &str,
        tune: f64,
        threads: Option<usize>,
    ) -> PyResult<VecEnv> {
        if n == 0 || n > MAX_ENVS {
            return Err(PyValueError::new_err(format!(
                "n = {n} environments is out of range: 1 to {MAX_ENVS}"
            )));
        }
        let threads = match threads {
            Some(0) | Some(257..) => {
                return Err(PyValueError::new_err(format!(
                    "threads = {} is out of range: 1 to 256",
                    threads.unwrap_or(0)
                )))
            }
            Some(threads) => threads,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let trace = Trace::load(trace, node_list.as_deref(), pod_list.as_deref())?;
        let slots = (0..n)
            .map(|_| Slot::new(mode, &trace, max_candidates, reward, tune))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(VecEnv {
            state: Mutex::new(Batch {
                slots,
                seeds: vec![0; n],
            }),
            threads,
        })
    }

    /// The number of environments.
    fn __len__(&self) -> usize {
        lock(&self.state).slots.len()
    }

    /// Starts every environment's episode, environment `i` with
    /// `seeds[i]`; the observations `[n, width, FEATURES]` and masks
    /// `[n, width]`.
    fn reset<'py>(&self, py: Python<'py>, seeds: Vec<u64>) -> PyResult<Observations<'py>> {
        let mut guard = lock(&self.state);
        let batch = &mut *guard;
        if seeds.len() != batch.slots.len() {
            return Err(PyValueError::new_err(format!(
                "{} seeds for {} environments",
                seeds.len(),
                batch.slots.len()
            )));
        }
        let threads = self.threads;
        let slots = &mut batch.slots;
        py.detach(|| each(slots, threads, |i, slot| slot.reset(seeds[i])))?;
        batch.seeds = seeds;
        arrays(py, &batch.slots)
    }

    /// Steps environment `i` with `actions[i]`; an environment whose
    /// episode ends starts the next at once with its seed plus `n`. The
    /// observations, masks, rewards and which episodes ended. Every action
    /// is checked before any environment steps.
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &self,
        py: Python<'py>,
        actions: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<(
        Bound<'py, PyArray3<f32>>,
        Bound<'py, PyArray2<bool>>,
        Bound<'py, PyArray1<f64>>,
        Bound<'py, PyArray1<bool>>,
    )> {
        let mut guard = lock(&self.state);
        let batch = &mut *guard;
        let actions = actions.as_slice()?;
        let n = batch.slots.len();
        if actions.len() != n {
            return Err(PyValueError::new_err(format!(
                "{} actions for {n} environments",
                actions.len()
            )));
        }
        let indexes = batch
            .slots
            .iter()
            .zip(actions)
            .enumerate()
            .map(|(i, (slot, &action))| {
                slot.check(action)
                    .map_err(|e| PyValueError::new_err(format!("environment {i}: {}", e.value(py))))
            })
            .collect::<PyResult<Vec<usize>>>()?;
        let threads = self.threads;
        let (slots, seeds) = (&mut batch.slots, &batch.seeds);
        // An episode that ends gives way to the next, seeded n further on,
        // so the environments never share a seed.
        let next = |i: usize| seeds[i].wrapping_add(n as u64);
        let outcomes = py.detach(|| {
            each(slots, threads, |i, slot| {
                let outcome = slot.step(indexes[i])?;
                if outcome.done {
                    slot.reset(next(i))?;
                }
                Ok((outcome.reward, outcome.done))
            })
        })?;
        let (rewards, done): (Vec<f64>, Vec<bool>) = outcomes.into_iter().unzip();
        for (seed, _) in batch
            .seeds
            .iter_mut()
            .zip(&done)
            .filter(|(_, &ended)| ended)
        {
            *seed = seed.wrapping_add(n as u64);
        }
        let (rows, mask) = arrays(py, &batch.slots)?;
        Ok((
            rows,
            mask,
            PyArray1::from_vec(py, rewards),
            PyArray1::from_vec(py, done),
        ))
    }

    /// FGD's choice in every environment.
    fn fgd_actions<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let batch = lock(&self.state);
        let actions = batch
            .slots
            .iter()
            .map(|slot| slot.fgd_action().map_or(-1, |a| a as i64))
            .collect();
        PyArray1::from_vec(py, actions)
    }
}
