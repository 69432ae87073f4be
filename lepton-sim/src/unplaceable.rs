//! Which tasks of a workload no node of its cluster could ever hold: a run
//! would only drop them (fill) or keep them waiting (timed), so a front end
//! checks before the run and says so.

use lepton_core::cluster::NodeFilter;
use lepton_core::{ClusterState, NodeSpec, TaskSpec};

use crate::Error;

/// The indexes of the `tasks` that fit no node of `nodes` even with the
/// cluster empty (too large, a GPU model no node has, a label no node
/// carries, …) — and, with a policy's `filter` (its rules), no node it lets
/// them onto — in order.
///
/// # Errors
/// [`Error::Scheduler`] for a malformed node or a node id given twice.
///
/// ```
/// use lepton_core::model::GpuModel;
/// use lepton_core::{GpuRequest, Gpus, NodeId, NodeSpec, Resources, TaskId, TaskSpec};
///
/// let nodes = [NodeSpec::new(NodeId(0), Resources::new(8_000, 16_384)).with_gpus(Gpus::new("T4", 2))];
/// let tasks = [
///     TaskSpec::new(TaskId(0), Resources::new(1_000, 1_024)).with_gpu(GpuRequest::whole(1)),
///     TaskSpec::new(TaskId(1), Resources::new(1_000, 1_024)).with_gpu(GpuRequest::whole(4)),
///     TaskSpec::new(TaskId(2), Resources::new(1_000, 1_024))
///         .with_gpu(GpuRequest::whole(1))
///         .with_gpu_models([GpuModel::new("V100M32")]),
/// ];
/// assert_eq!(lepton_sim::unplaceable(&nodes, &tasks, None)?, vec![1, 2]);
/// # Ok::<(), lepton_sim::Error>(())
/// ```
pub fn unplaceable<'a>(
    nodes: &[NodeSpec],
    tasks: impl IntoIterator<Item = &'a TaskSpec>,
    filter: Option<&dyn NodeFilter>,
) -> Result<Vec<usize>, Error> {
    let mut cluster = ClusterState::new();
    for node in nodes {
        cluster.add_node(node.clone())?;
    }
    Ok(tasks
        .into_iter()
        .enumerate()
        .filter(|(_, task)| cluster.feasible(task, filter).is_empty())
        .map(|(index, _)| index)
        .collect())
}
