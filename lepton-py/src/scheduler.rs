//! Lepton's scheduler from Python: nodes and tasks in, assignments out,
//! the policy swappable at run time. Specs travel as JSON, in the same
//! format as the service's API and workload files, so a bad one is refused
//! with serde's message naming the field.

use std::sync::Mutex;

use lepton::policies::{build, PolicyContext};
use lepton::{CoreScheduler, NodeId, NodeSpec, Scheduler as _, TaskId, TaskSpec};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde::de::DeserializeOwned;

use crate::env::lock;
use crate::error::to_json;

/// A scheduler (see the Python wrapper `lepton.Scheduler`).
#[pyclass(module = "lepton._lepton")]
pub(crate) struct Scheduler {
    inner: Mutex<CoreScheduler>,
}

/// A core error as `ValueError` with its message.
fn invalid(err: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(err.to_string())
}

/// `json` read as a `what` spec.
fn spec<T: DeserializeOwned>(json: &str, what: &str) -> PyResult<T> {
    serde_json::from_str(json).map_err(|e| PyValueError::new_err(format!("invalid {what}: {e}")))
}

fn build_policy(name: &str) -> PyResult<Box<dyn lepton::Policy>> {
    build(name, &PolicyContext::default()).map_err(invalid)
}

impl Scheduler {
    /// The task's current run.
    fn run(scheduler: &CoreScheduler, task: u64) -> PyResult<lepton::Run> {
        scheduler
            .current_run(TaskId(task))
            .ok_or_else(|| PyValueError::new_err(format!("task {task} is not running")))
    }
}

#[pymethods]
impl Scheduler {
    /// A scheduler with no nodes, placing with `policy`.
    #[new]
    #[pyo3(signature = (policy = "bestfit"))]
    fn new(policy: &str) -> PyResult<Scheduler> {
        Ok(Scheduler {
            inner: Mutex::new(CoreScheduler::new(build_policy(policy)?)),
        })
    }

    /// The policy's name.
    #[getter]
    fn policy(&self) -> String {
        lock(&self.inner).policy_name().to_owned()
    }

    /// Places with the policy `name` from the next cycle on.
    fn set_policy(&self, name: &str) -> PyResult<()> {
        let next = build_policy(name)?;
        lock(&self.inner).set_policy(next);
        Ok(())
    }

    /// Adds a node (a `NodeSpec` as JSON).
    fn add_node(&self, node: &str) -> PyResult<()> {
        let node: NodeSpec = spec(node, "node")?;
        lock(&self.inner).add_node(&node).map_err(invalid)
    }

    /// Removes a node; its tasks go back to the queue.
    fn remove_node(&self, node: u64) -> PyResult<()> {
        lock(&self.inner).remove_node(NodeId(node)).map_err(invalid)
    }

    /// Takes no new tasks on `node`.
    fn cordon(&self, node: u64) -> PyResult<()> {
        lock(&self.inner).cordon(NodeId(node)).map_err(invalid)
    }

    /// Takes tasks on `node` again.
    fn uncordon(&self, node: u64) -> PyResult<()> {
        lock(&self.inner).uncordon(NodeId(node)).map_err(invalid)
    }

    /// Queues a task (a `TaskSpec` as JSON); its id.
    fn submit(&self, task: &str) -> PyResult<u64> {
        let task: TaskSpec = spec(task, "task")?;
        let id = lock(&self.inner).submit(&task).map_err(invalid)?;
        Ok(id.0)
    }

    /// One scheduling cycle: the assignments, as JSON.
    fn schedule(&self, py: Python<'_>) -> PyResult<String> {
        let mut guard = lock(&self.inner);
        let scheduler = &mut *guard;
        let assignments = py.detach(|| scheduler.schedule());
        let list: Vec<serde_json::Value> = assignments
            .iter()
            .map(|a| {
                serde_json::json!({
                    "task": a.task.0,
                    "attempt": a.attempt,
                    "node": a.node.0,
                    "gpus": a.gpus.as_slice(),
                    "evicts": a.evicts.iter().map(|r| serde_json::json!({
                        "task": r.task.0,
                        "attempt": r.attempt,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        to_json(&list)
    }

    /// The running task ended well.
    fn complete(&self, task: u64) -> PyResult<()> {
        let mut scheduler = lock(&self.inner);
        let run = Scheduler::run(&scheduler, task)?;
        scheduler.complete(run).map_err(invalid)
    }

    /// The running task failed for `reason` (it is retried within its
    /// budget).
    fn fail(&self, task: u64, reason: &str) -> PyResult<()> {
        let mut scheduler = lock(&self.inner);
        let run = Scheduler::run(&scheduler, task)?;
        scheduler.fail(run, reason).map_err(invalid)
    }

    /// Cancels a task that has not ended.
    fn cancel(&self, task: u64) -> PyResult<()> {
        lock(&self.inner).cancel(TaskId(task)).map_err(invalid)
    }

    /// Where a task is and, if it waits, why (one line).
    fn explain(&self, task: u64) -> PyResult<String> {
        lock(&self.inner)
            .explain(TaskId(task))
            .map(|explanation| explanation.to_string())
            .ok_or_else(|| PyValueError::new_err(format!("unknown task {task}")))
    }

    /// Counts and utilization, as JSON.
    fn report(&self) -> PyResult<String> {
        to_json(&lock(&self.inner).report())
    }
}
