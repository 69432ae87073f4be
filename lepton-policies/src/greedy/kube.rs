use lepton_core::cluster::ClusterNode;
use lepton_core::{FeasibleNodes, Placement, Policy, TaskSpec};

use super::best_scoring;

/// kube-scheduler's resource scoring as its default profile sets it up:
/// `NodeResourcesFit` (least or most allocated) plus
/// `NodeResourcesBalancedAllocation`, each weighted 1, both over CPU and
/// memory with weight 1 each
/// (<https://kubernetes.io/docs/reference/scheduling/config/#scheduling-plugins>,
/// <https://kubernetes.io/docs/concepts/scheduling-eviction/resource-bin-packing/>).
///
/// With `r` the node's requested fraction of a resource once the task is
/// placed (requests, not use):
/// - least allocated: ⌊(1 − r) × 100⌋ per resource, averaged (the
///   default: spreads);
/// - most allocated: ⌊r × 100⌋ per resource, averaged (bin packing, the
///   one-block `scoringStrategy` change the docs show);
/// - balanced allocation: ⌊(1 − |r_cpu − r_memory| / 2) × 100⌋.
///
/// The highest sum wins. kube-scheduler breaks ties at random; here the
/// earliest node wins, so runs are repeatable. The other default score
/// plugins (taints, affinities, topology spread, image locality) score
/// every node alike for tasks without such constraints and are left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeResources {
    /// Most allocated (bin packing) instead of the default least allocated.
    pub most_allocated: bool,
}

impl KubeResources {
    /// The default profile: least allocated.
    pub const DEFAULT: KubeResources = KubeResources {
        most_allocated: false,
    };

    /// Bin packing: most allocated.
    pub const BINPACK: KubeResources = KubeResources {
        most_allocated: true,
    };
}

impl Policy for KubeResources {
    fn name(&self) -> &str {
        if self.most_allocated {
            "kube-most-allocated"
        } else {
            "kube-least-allocated"
        }
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let task = nodes.task();
        best_scoring(nodes, |node| Some((self.score(task, node), ())))
            .map(|(node, ())| Placement::on(node.id()))
    }
}

impl KubeResources {
    /// The two plugins' scores for `task` on `node`, summed (0..=200);
    /// higher is better.
    pub fn score(&self, task: &TaskSpec, node: &ClusterNode) -> i64 {
        score(task, node, self.most_allocated)
    }
}

/// The two plugins' scores for `task` on `node`, summed.
fn score(task: &TaskSpec, node: &ClusterNode, most_allocated: bool) -> i64 {
    let capacity = &node.spec().capacity;
    let free = node.free();
    let cpu = requested(capacity.cpu_milli, free.cpu_milli, task.request.cpu_milli);
    let memory = requested(
        capacity.memory_mib,
        free.memory_mib,
        task.request.memory_mib,
    );
    let fit = |(used, capacity): (u64, u64)| -> i64 {
        if capacity == 0 {
            return 0;
        }
        let used = used.min(capacity);
        let scored = if most_allocated {
            used
        } else {
            capacity - used
        };
        (u128::from(scored) * 100 / u128::from(capacity)) as i64
    };
    let fit_score = (fit(cpu) + fit(memory)) / 2;
    let fraction = |(used, capacity): (u64, u64)| {
        if capacity == 0 {
            0.0
        } else {
            (used as f64 / capacity as f64).min(1.0)
        }
    };
    let deviation = (fraction(cpu) - fraction(memory)).abs() / 2.0;
    let balance_score = ((1.0 - deviation) * 100.0) as i64;
    fit_score + balance_score
}

/// (requested once `request` is added, capacity).
fn requested(capacity: u64, free: u64, request: u64) -> (u64, u64) {
    let used = capacity.saturating_sub(free).saturating_add(request);
    (used, capacity)
}

#[cfg(test)]
mod tests {
    use lepton_core::{ClusterState, NodeId, NodeSpec, Resources, TaskId, TaskSpec};

    use super::*;

    fn cluster(nodes: &[(u64, u64)], held: &[(u64, u64, u64)]) -> ClusterState {
        let mut cluster = ClusterState::new();
        for (id, &(cpu, memory)) in nodes.iter().enumerate() {
            let spec = NodeSpec::new(NodeId(id as u64), Resources::new(cpu, memory));
            cluster.add_node(spec).unwrap();
        }
        for (n, &(node, cpu, memory)) in held.iter().enumerate() {
            let task = TaskSpec::new(TaskId(100 + n as u64), Resources::new(cpu, memory));
            cluster
                .reserve(&task, &Placement::on(NodeId(node)))
                .unwrap();
        }
        cluster
    }

    fn choose(mut policy: KubeResources, cluster: &ClusterState, cpu: u64, memory: u64) -> u64 {
        let task = TaskSpec::new(TaskId(1), Resources::new(cpu, memory));
        let nodes = cluster.feasible(&task, None);
        policy.select(&nodes).expect("a node fits").node.0
    }

    #[test]
    fn least_allocated_spreads_and_most_allocated_packs() {
        // Node 0 is half used, in CPU and memory alike.
        let cluster = cluster(&[(8000, 32_768), (8000, 32_768)], &[(0, 4000, 16_384)]);
        assert_eq!(choose(KubeResources::DEFAULT, &cluster, 1000, 4096), 1);
        assert_eq!(choose(KubeResources::BINPACK, &cluster, 1000, 4096), 0);
    }

    #[test]
    fn scores_are_fractions_of_each_node_not_amounts() {
        // A big empty node and a small half-used one: by fractions the
        // small node is the fuller, though the big one has more left.
        let cluster = cluster(&[(64_000, 262_144), (4000, 16_384)], &[(1, 2000, 8192)]);
        assert_eq!(choose(KubeResources::BINPACK, &cluster, 1000, 4096), 1);
        assert_eq!(choose(KubeResources::DEFAULT, &cluster, 1000, 4096), 0);
        let task = TaskSpec::new(TaskId(1), Resources::new(1000, 4096));
        let (big, small) = (
            cluster.node(NodeId(0)).unwrap(),
            cluster.node(NodeId(1)).unwrap(),
        );
        // Big: 1/64 requested → ⌊98.4⌋ per resource; balanced: 100.
        assert_eq!(score(&task, big, false), 98 + 100);
        // Small: 3/4 requested → 25 (least) or 75 (most); balanced: 100.
        assert_eq!(score(&task, small, false), 25 + 100);
        assert_eq!(score(&task, small, true), 75 + 100);
    }

    #[test]
    fn balanced_allocation_breaks_what_the_fit_leaves_equal() {
        // Node 0: memory 75 % requested; node 1: CPU 75 %.
        let cluster = cluster(
            &[(8000, 32_768), (8000, 32_768)],
            &[(0, 0, 24_576), (1, 6000, 0)],
        );
        // A memory task: node 0 ends at (0 %, 100 %), node 1 at (75 %,
        // 25 %); the fit scores tie at 50 either way, and only balance
        // (50 against 75) picks node 1.
        assert_eq!(choose(KubeResources::DEFAULT, &cluster, 0, 8192), 1);
        assert_eq!(choose(KubeResources::BINPACK, &cluster, 0, 8192), 1);
    }
}
