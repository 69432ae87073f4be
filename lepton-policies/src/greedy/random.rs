use lepton_core::cluster::GpuSlots;
use lepton_core::model::GPU_MILLI_PER_GPU;
use lepton_core::rng::SeededRng;
use lepton_core::{FeasibleNodes, Placement, Policy};

/// A uniformly random feasible node; for a GPU share, a uniformly random
/// GPU with room inside it (whole GPUs are the lowest-index free ones).
#[derive(Debug, Clone, Default)]
pub struct Random {
    rng: SeededRng,
}

/// Draws from the whole cluster before counting the feasible nodes.
const TRIES: usize = 16;

impl Random {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "random";
}

impl Policy for Random {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn reseed(&mut self, seed: u64) {
        self.rng = SeededRng::new(seed);
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let task = nodes.task();
        if nodes.is_empty() {
            return None; // through the index, without a scan
        }
        // A node drawn uniformly from the cluster and kept if feasible is
        // uniform among the feasible ones; when most nodes are not (a full
        // cluster), draw among them after a scan instead.
        let all = nodes.cluster().nodes();
        let drawn = (0..TRIES)
            .map(|_| &all[self.rng.index(all.len())])
            .find(|node| nodes.admits(node));
        let chosen = match drawn {
            Some(node) => Some(node),
            None => {
                let count = nodes.count();
                nodes.iter().nth(self.rng.index(count))
            }
        };
        let node = chosen?;
        if task.gpu.count != 1 || task.gpu.milli_per_gpu >= GPU_MILLI_PER_GPU {
            return Some(Placement::on(node.id()));
        }
        let fitting: GpuSlots = (0u32..)
            .zip(node.gpu_free_milli())
            .filter(|(_, &free)| free >= task.gpu.milli_per_gpu)
            .map(|(index, _)| index)
            .collect();
        match fitting.get(self.rng.index(fitting.len())) {
            Some(&gpu) => Some(Placement::on_gpus(node.id(), [gpu])),
            None => Some(Placement::on(node.id())),
        }
    }
}
