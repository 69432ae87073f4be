//! The rebalancer: moves a bounded number of tasks off hot nodes.
//!
//! A node is hot when its fullest dimension ([`Utilization::max`]) is above
//! the high threshold, cold when below the low one — both measured on what
//! tasks reserve, never on what they use. Hottest nodes first, and on each
//! the lowest-ranked tasks first (lowest priority, best-effort first among
//! equals: the eviction order of preemption), a task moves to the coldest
//! node that passes the one feasibility stage (the node's
//! checks and the policy's filter, `cluster/feasible.rs`) and stays at or below the high
//! threshold after the move, until the node cools down or the run's move
//! budget is spent. The rebalancer ranks; the policy's filter still decides
//! where the task may go. A run tries at most four tasks per move allowed.
//! Moves are not charged to retry budgets.
//!
//! [`Utilization::max`]: crate::cluster::Utilization::max

use super::preempt::EvictionRank;
use super::RebalanceConfig;
use super::{Assignment, CoreScheduler};
use crate::cluster::{check_feasible, ClusterState, NodeFilter, Placement};
use crate::node::{NodeId, NodeState};
use crate::task::{TaskId, TaskSpec};

/// Tasks a run may try to move per move it is allowed.
const MAX_TRIES_PER_MOVE: usize = 4;

impl CoreScheduler {
    /// Runs the rebalancer now (the scheduler also runs it every configured
    /// period). Each assignment moves a task; it evicts the task's old run,
    /// which the caller stops or live-migrates. Does nothing when
    /// rebalancing is not configured.
    #[must_use = "each move's new run is counted running: launch it and stop the old one"]
    pub fn rebalance(&mut self) -> Vec<Assignment> {
        let Some(config) = self.config.rebalance else {
            return Vec::new();
        };
        let mut hot: Vec<(f64, NodeId)> = self
            .cluster
            .nodes()
            .iter()
            .filter(|node| node.state() == NodeState::Ready)
            .map(|node| (node.utilization().max(), node.id()))
            .filter(|&(load, _)| load > config.high())
            .collect();
        hot.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        // Targets are found among the nodes cold at the start only, and a
        // run tries a bounded number of tasks, so it costs O(nodes) plus
        // O(cold nodes) per try.
        let cold: Vec<NodeId> = self
            .cluster
            .nodes()
            .iter()
            .filter(|node| node.utilization().max() < config.low())
            .map(|node| node.id())
            .collect();
        if cold.is_empty() {
            return Vec::new();
        }
        let mut tries = config.max_moves().saturating_mul(MAX_TRIES_PER_MOVE);
        let mut moves = Vec::new();
        for (_, source) in hot {
            let mut tasks = self.cluster.tasks_on(source);
            tasks.sort_by_key(|task| {
                let rank = self
                    .tasks
                    .get(task)
                    .map(|r| EvictionRank::of(r.spec.priority, r.spec.qos));
                (rank, *task)
            });
            tasks.retain(|&task| self.evictable(task));
            for task in tasks {
                let cooled = self
                    .cluster
                    .node(source)
                    .is_none_or(|node| node.utilization().max() <= config.high());
                if moves.len() >= config.max_moves() || cooled || tries == 0 {
                    break;
                }
                tries -= 1;
                if let Some(assignment) = self.move_to_cold_node(task, &cold, &config) {
                    moves.push(assignment);
                }
            }
            if moves.len() >= config.max_moves() || tries == 0 {
                break;
            }
        }
        self.stats.moves += moves.len() as u64;
        moves
    }

    fn move_to_cold_node(
        &mut self,
        task: TaskId,
        cold: &[NodeId],
        config: &RebalanceConfig,
    ) -> Option<Assignment> {
        let record = self.tasks.get(&task)?;
        let old = record.run();
        let target = coldest_fit(
            &self.cluster,
            self.filter.as_deref(),
            cold,
            &record.spec,
            config,
        )?;
        let from = self.cluster.release(task).ok()?;
        self.waiting.node_changed(from.node);
        let record = self.tasks.get(&task)?;
        let filter = self.filter.as_deref();
        let booked = self
            .cluster
            .reserve_if(&record.spec, &Placement::on(target), |node| {
                check_feasible(&record.spec, filter, node)
            });
        match booked {
            Ok(allocation) => {
                let booked = (allocation.node, allocation.gpus.clone());
                Some(self.start(task, booked, vec![old]))
            }
            Err(_) => {
                self.rebook(
                    task,
                    &Placement::on_gpus(from.node, from.gpus.iter().copied()),
                );
                None
            }
        }
    }
}

/// Among `cold`, the node still below the low threshold with the least
/// load that passes the feasibility stage for `spec` and that stays at or
/// below the high threshold with it; the earliest on ties.
fn coldest_fit(
    cluster: &ClusterState,
    filter: Option<&dyn NodeFilter>,
    cold: &[NodeId],
    spec: &TaskSpec,
    config: &RebalanceConfig,
) -> Option<NodeId> {
    cold.iter()
        .filter_map(|&id| {
            let node = cluster.node(id)?;
            let load = node.utilization().max();
            let fits = load < config.low()
                && check_feasible(spec, filter, node).is_ok()
                && node.utilization_with(spec).max() <= config.high();
            fits.then_some((load, id))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map(|(_, node)| node)
}
