//! Synthetic clusters and workloads, for benches, scale tests and users
//! without a trace: shapes like the Alibaba GPU cluster's, drawn with the
//! run's seed.

use lepton_core::rng::SeededRng;
use lepton_core::{GpuRequest, Resources};
use lepton_core::{Gpus, NodeId, NodeSpec};
use lepton_core::{TaskId, TaskSpec};

use crate::{TimedTask, Workload};

/// Node shapes (CPU milli-cores, GPUs), the trace's most common ones.
const NODE_SHAPES: [(u64, u32); 4] = [(32_000, 0), (64_000, 2), (96_000, 8), (128_000, 4)];

/// `count` nodes with ids from 0: 32 to 128 cores, 4 GiB of memory per core,
/// none, 2, 4 or 8 V100 GPUs, shapes drawn uniformly with `seed`.
pub fn synthetic_nodes(count: u64, seed: u64) -> Vec<NodeSpec> {
    let mut rng = SeededRng::new(seed);
    (0..count)
        .map(|id| {
            let (cpu_milli, gpus) = NODE_SHAPES[rng.index(NODE_SHAPES.len())];
            let gpus = if gpus > 0 {
                Gpus::new("V100M32", gpus)
            } else {
                Gpus::none()
            };
            NodeSpec::new(NodeId(id), Resources::new(cpu_milli, cpu_milli * 4)).with_gpus(gpus)
        })
        .collect()
}

/// One task of the mix: 1 to 16 cores, 2 GiB per core; a quarter ask for a
/// GPU share (100 to 900 milli), a quarter for one whole GPU, the rest for
/// no GPU.
pub fn synthetic_task(id: u64, rng: &mut SeededRng) -> TaskSpec {
    let cpu_milli = 1_000 * (1 + rng.below(16));
    let gpu = match rng.below(4) {
        0 => GpuRequest::shared(100 * (1 + rng.below(9) as u32)),
        1 => GpuRequest::whole(1),
        _ => GpuRequest::NONE,
    };
    TaskSpec::new(TaskId(id), Resources::new(cpu_milli, cpu_milli * 2)).with_gpu(gpu)
}

/// `count` tasks of the mix with ids from 0, drawn with `seed`.
pub fn synthetic_tasks(count: u64, seed: u64) -> Vec<TaskSpec> {
    let mut rng = SeededRng::new(seed);
    (0..count).map(|id| synthetic_task(id, &mut rng)).collect()
}

/// A timed workload of `nodes` synthetic nodes and `tasks` synthetic tasks,
/// one arriving per second, each running 60 to 3,600 s: to write as a JSON
/// workload file (`lepton replay --workload`) or to time its reader.
pub fn synthetic_workload(nodes: u64, tasks: u64, seed: u64) -> Workload {
    let mut rng = SeededRng::new(seed ^ 0x5EED_F11E);
    let tasks = synthetic_tasks(tasks, seed)
        .into_iter()
        .enumerate()
        .map(|(i, spec)| TimedTask::new(spec, i as u64, Some(60 + rng.below(3_541))))
        .collect();
    Workload {
        nodes: synthetic_nodes(nodes, seed),
        tasks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_workload_and_every_spec_is_valid() {
        assert_eq!(
            synthetic_nodes(50, 1)
                .iter()
                .map(|n| n.capacity.cpu_milli)
                .collect::<Vec<_>>(),
            synthetic_nodes(50, 1)
                .iter()
                .map(|n| n.capacity.cpu_milli)
                .collect::<Vec<_>>()
        );
        for node in synthetic_nodes(200, 2) {
            node.validate().unwrap();
        }
        let tasks = synthetic_tasks(1_000, 3);
        for task in &tasks {
            task.validate().unwrap();
        }
        let shares = tasks
            .iter()
            .filter(|t| t.gpu.count == 1 && t.gpu.milli_per_gpu < 1000)
            .count();
        assert!((200..300).contains(&shares), "{shares} shares of 1000");
    }

    #[test]
    fn a_synthetic_workload_reads_back_as_written() {
        let workload = synthetic_workload(20, 300, 4);
        let json = serde_json::to_string_pretty(&workload).unwrap();
        let read = crate::parse_workload(&json, "synthetic.json").unwrap();
        assert_eq!(serde_json::to_string_pretty(&read).unwrap(), json);
        assert_eq!(read.tasks.len(), 300);
    }
}
