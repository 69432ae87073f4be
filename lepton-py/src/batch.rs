//! Many environments stepped in Rust. The calling thread and each worker
//! thread own a share of the environments for the batch's life (their
//! state stays in one core's caches); one call steps them all with the GIL
//! released, and an environment whose episode ends starts its next one in
//! the same step (Gymnasium's same-step autoreset).
//!
//! A thread that waits for the next order or for a share's reply spins a
//! little before it sleeps ([`receive`]): on this kind of virtual machine,
//! waking a sleeping thread costs 50–100 µs, more than stepping a few
//! environments.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

use lepton::sim::gym::receive;
use numpy::ndarray::Array;
use numpy::{PyArray1, PyArray2, PyArray3, PyReadonlyArray1};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::env::{check_action, lock, observe, Slot};
use crate::source::Source;

/// The most environments one batch holds.
const MAX_ENVS: usize = 4096;

/// The most candidate rows one batched observation holds (environments ×
/// `max_candidates`): 80 MiB of features.
const MAX_ROWS: usize = 1 << 20;

/// The most worker threads.
const MAX_THREADS: usize = 256;

/// Environments stepped together (see the Python wrapper `lepton.VecEnv`).
#[pyclass(module = "lepton._lepton")]
pub(crate) struct VecEnv {
    state: Mutex<Batch>,
    n: usize,
    width: usize,
    /// Numbers per candidate row.
    columns: usize,
}

/// How long a worker spins for its next order (Python's part of a step
/// usually comes in well under this) before it sleeps.
const ORDER_SPIN: Duration = Duration::from_micros(300);

/// How long the calling thread spins for a worker's reply after its own
/// share (the shares are alike, so the reply is close) before it sleeps.
const REPLY_SPIN: Duration = Duration::from_millis(2);

/// The environments: the calling thread's share, then the workers', in
/// environment order; and what the last observation showed of each.
struct Batch {
    own: Owned,
    workers: Vec<Worker>,
    /// Environments per worker (the last may have fewer).
    chunk: usize,
    /// Candidates per environment (for checking actions before a step).
    candidates: Vec<usize>,
    /// FGD's choice per environment (-1 when none waits).
    fgd: Vec<i64>,
}

/// A thread owning environments, and the channels to it.
struct Worker {
    orders: Sender<Order>,
    replies: Receiver<PyResult<Part>>,
}

enum Order {
    /// Start each environment's episode with its seed.
    Reset(Vec<u64>),
    /// Step each environment with its action (already checked).
    Step(Vec<usize>),
}

/// What a worker's environments show after an order, in their order.
#[derive(Default)]
struct Part {
    rows: Vec<f32>,
    mask: Vec<bool>,
    rewards: Vec<f64>,
    done: Vec<bool>,
    candidates: Vec<usize>,
    fgd: Vec<i64>,
}

/// The environments a worker owns, with each one's episode seed.
struct Owned {
    slots: Vec<Slot>,
    seeds: Vec<u64>,
    /// How far an environment's next episode's seed is from its last: the
    /// batch's size, so environments never share a seed.
    stride: u64,
}

impl Owned {
    fn new(slots: Vec<Slot>, stride: u64) -> Owned {
        Owned {
            seeds: vec![0; slots.len()],
            slots,
            stride,
        }
    }

    fn obey(&mut self, order: Order) -> PyResult<Part> {
        let mut part = Part::default();
        match order {
            Order::Reset(seeds) => {
                for (slot, &seed) in self.slots.iter_mut().zip(&seeds) {
                    slot.reset(seed)?;
                }
                self.seeds = seeds;
            }
            Order::Step(actions) => {
                for ((slot, seed), &action) in
                    self.slots.iter_mut().zip(&mut self.seeds).zip(&actions)
                {
                    let outcome = slot.step(action)?;
                    if outcome.done {
                        *seed = seed.wrapping_add(self.stride);
                        slot.reset(*seed)?;
                    }
                    part.rewards.push(outcome.reward);
                    part.done.push(outcome.done);
                }
            }
        }
        (part.rows, part.mask) = observe(&self.slots);
        part.candidates = self.slots.iter().map(Slot::candidates).collect();
        part.fgd = self
            .slots
            .iter()
            .map(|slot| slot.fgd_action().map_or(-1, |a| a as i64))
            .collect();
        Ok(part)
    }
}

impl Worker {
    fn spawn(mut owned: Owned) -> PyResult<Worker> {
        let (orders, inbox) = channel::<Order>();
        let (outbox, replies) = channel();
        std::thread::Builder::new()
            .name("lepton-vecenv".into())
            .spawn(move || {
                // Ends when the batch drops its end of the channels.
                while let Ok(order) = receive(&inbox, ORDER_SPIN) {
                    if outbox.send(owned.obey(order)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start a worker thread: {e}")))?;
        Ok(Worker { orders, replies })
    }
}

impl Batch {
    /// Gives every worker its order, carries out the calling thread's
    /// own, then gathers the parts in environment order; the first error
    /// by environment, if any.
    fn run(&mut self, orders: Vec<Order>) -> PyResult<Part> {
        let stopped = || PyRuntimeError::new_err("an environment's worker thread stopped");
        let mut orders = orders.into_iter();
        let own = orders.next();
        for (worker, order) in self.workers.iter().zip(orders) {
            worker.orders.send(order).map_err(|_| stopped())?;
        }
        let own = own.map(|order| self.own.obey(order));
        let replies = self
            .workers
            .iter()
            .map(|worker| receive(&worker.replies, REPLY_SPIN).map_err(|_| stopped()));
        let mut all = Part::default();
        let mut first_error = None;
        for reply in own.map(Ok).into_iter().chain(replies) {
            match reply {
                Ok(Ok(part)) => {
                    all.rows.extend(part.rows);
                    all.mask.extend(part.mask);
                    all.rewards.extend(part.rewards);
                    all.done.extend(part.done);
                    all.candidates.extend(part.candidates);
                    all.fgd.extend(part.fgd);
                }
                Ok(Err(err)) | Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if let Some(err) = first_error {
            // Some environments may have moved on: only a reset is safe now.
            self.candidates.fill(0);
            return Err(err);
        }
        self.candidates.clone_from(&all.candidates);
        self.fgd.clone_from(&all.fgd);
        Ok(all)
    }

    /// `values`, one per environment, cut into each worker's share.
    fn split<T: Clone>(&self, values: &[T]) -> Vec<Vec<T>> {
        values.chunks(self.chunk).map(<[T]>::to_vec).collect()
    }
}

type Observations<'py> = (Bound<'py, PyArray3<f32>>, Bound<'py, PyArray2<bool>>);

impl VecEnv {
    fn arrays<'py>(
        &self,
        py: Python<'py>,
        rows: Vec<f32>,
        mask: Vec<bool>,
    ) -> PyResult<Observations<'py>> {
        let internal = |e: numpy::ndarray::ShapeError| PyRuntimeError::new_err(e.to_string());
        let rows =
            Array::from_shape_vec((self.n, self.width, self.columns), rows).map_err(internal)?;
        let mask = Array::from_shape_vec((self.n, self.width), mask).map_err(internal)?;
        Ok((
            PyArray3::from_owned_array(py, rows),
            PyArray2::from_owned_array(py, mask),
        ))
    }
}

#[pymethods]
impl VecEnv {
    /// `n` environments, each as `lepton._lepton.Env(mode, …)`, shared
    /// among `threads` worker threads (default: one per core).
    #[new]
    #[pyo3(signature = (n, mode = "fill", max_candidates = None, reward = None, threads = None, **options))]
    fn new(
        n: usize,
        mode: &str,
        max_candidates: Option<usize>,
        reward: Option<&str>,
        threads: Option<usize>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<VecEnv> {
        if n == 0 || n > MAX_ENVS {
            return Err(PyValueError::new_err(format!(
                "n = {n} environments is out of range: 1 to {MAX_ENVS}"
            )));
        }
        let source = Source::new(mode, options)?;
        let max_candidates = max_candidates.unwrap_or_else(|| source.default_candidates());
        if n.saturating_mul(max_candidates) > MAX_ROWS {
            return Err(PyValueError::new_err(format!(
                "{n} environments × max_candidates = {max_candidates} is more than the \
                 {MAX_ROWS} candidate rows one observation holds"
            )));
        }
        let threads = match threads {
            Some(t) if t == 0 || t > MAX_THREADS => {
                return Err(PyValueError::new_err(format!(
                    "threads = {t} is out of range: 1 to {MAX_THREADS}"
                )))
            }
            Some(t) => t,
            None => std::thread::available_parallelism().map_or(1, |c| c.get()),
        };
        let mut slots = (0..n)
            .map(|_| Slot::new(&source, Some(max_candidates), reward))
            .collect::<PyResult<Vec<_>>>()?;
        // The calling thread takes the first share, a worker each other.
        let columns = slots.first().map_or(0, Slot::columns);
        let chunk = n.div_ceil(threads.min(n));
        let mut rest = slots.split_off(chunk);
        let own = Owned::new(slots, n as u64);
        let mut workers = Vec::new();
        while !rest.is_empty() {
            let after = rest.split_off(chunk.min(rest.len()));
            workers.push(Worker::spawn(Owned::new(rest, n as u64))?);
            rest = after;
        }
        Ok(VecEnv {
            state: Mutex::new(Batch {
                own,
                workers,
                chunk,
                candidates: vec![0; n],
                fgd: vec![-1; n],
            }),
            n,
            width: max_candidates,
            columns,
        })
    }

    /// The number of environments.
    fn __len__(&self) -> usize {
        self.n
    }

    /// The action slots of each observation (`max_candidates`).
    #[getter]
    fn width(&self) -> usize {
        self.width
    }

    /// The numbers in each candidate's row (`FEATURES`, and the edge
    /// columns in edge mode).
    #[getter]
    fn columns(&self) -> usize {
        self.columns
    }

    /// Starts every environment's episode, environment `i` with
    /// `seeds[i]`; the observations `[n, width, columns]` and masks
    /// `[n, width]`.
    fn reset<'py>(&self, py: Python<'py>, seeds: Vec<u64>) -> PyResult<Observations<'py>> {
        if seeds.len() != self.n {
            return Err(PyValueError::new_err(format!(
                "{} seeds for {} environments",
                seeds.len(),
                self.n
            )));
        }
        let mut guard = lock(&self.state);
        let batch = &mut *guard;
        let orders = batch.split(&seeds).into_iter().map(Order::Reset).collect();
        let part = py.detach(|| batch.run(orders))?;
        self.arrays(py, part.rows, part.mask)
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
        let actions = actions.as_slice()?;
        if actions.len() != self.n {
            return Err(PyValueError::new_err(format!(
                "{} actions for {} environments",
                actions.len(),
                self.n
            )));
        }
        let mut guard = lock(&self.state);
        let batch = &mut *guard;
        let indexes = actions
            .iter()
            .zip(&batch.candidates)
            .enumerate()
            .map(|(i, (&action, &candidates))| {
                if candidates == 0 {
                    return Err(PyRuntimeError::new_err(
                        "no episode is running: call reset() first",
                    ));
                }
                check_action(action, candidates)
                    .map_err(|e| PyValueError::new_err(format!("environment {i}: {}", e.value(py))))
            })
            .collect::<PyResult<Vec<usize>>>()?;
        let orders = batch.split(&indexes).into_iter().map(Order::Step).collect();
        let part = py.detach(|| batch.run(orders))?;
        let (rows, mask) = self.arrays(py, part.rows, part.mask)?;
        Ok((
            rows,
            mask,
            PyArray1::from_vec(py, part.rewards),
            PyArray1::from_vec(py, part.done),
        ))
    }

    /// FGD's choice in every environment (-1 where no decision waits).
    fn fgd_actions<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_vec(py, lock(&self.state).fgd.clone())
    }
}
