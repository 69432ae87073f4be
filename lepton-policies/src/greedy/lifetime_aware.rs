use std::collections::HashMap;

use lepton_core::clock::Timestamp;
use lepton_core::cluster::ClusterNode;
use lepton_core::policy::{Feedback, Outcome};
use lepton_core::{ClusterState, FeasibleNodes, NodeId, Placement, Policy, TaskId};

use super::KubeResources;
use crate::lifetime::{task_kind, LifetimePredictor};

/// Tasks expected to end together share nodes, so nodes empty sooner and
/// can be released: the idea of Google's LAVA (Barbalho et al.,
/// "Lifetime-Aware VM Allocation with Learned Distributions and
/// Adaptation to Mispredictions", 2024), on lifetimes learned online.
///
/// Each finished run teaches a [`LifetimePredictor`] how long tasks of its
/// kind ([`task_kind`]: application, shape, priority) live; the policy
/// never reads a task's own duration. A node's **expected end** is the
/// latest predicted end (median) of the tasks it holds; a task whose age
/// has passed its prediction is predicted again from the finished tasks
/// of its kind that lived longer (LAVA's reprediction), or, when none
/// did, as living as long again as it has.
///
/// A task goes to the node that packs it best — kube-scheduler's
/// most-allocated plus balanced-allocation score
/// ([`KubeResources::BINPACK`], CPU and memory), an integer, so many nodes
/// tie — and among those, the node whose expected end it **extends the
/// least** (its own predicted end beyond the node's; an empty node is
/// extended by the whole of it), then the earliest node. Lifetimes break
/// the packing score's ties rather than override it: ranked first, they
/// cost 1.4–1.9 % on seed 1 of the synthetic data center, whose durations
/// are drawn at random within a kind (docs/SCENARIOS.md). Before any run has ended,
/// packing alone decides.
///
/// A decision scans the feasible nodes; each node's expected end is
/// cached until its tasks change or one of them outlives its prediction.
#[derive(Debug, Default)]
pub struct LifetimeAware {
    predictor: LifetimePredictor,
    /// The scheduler's clock at the start of the cycle, seconds.
    now_s: f64,
    /// Runs placed and not yet reported ended: when each started (the
    /// cycle's time) and its kind.
    running: HashMap<TaskId, (f64, String)>,
    /// Per node position: the node's expected end, as last computed.
    ends: Vec<Option<NodeEnd>>,
}

/// Runs kept beyond twice the cluster's allocations before the ones that
/// ended unreported are dropped.
const UNREPORTED_SLACK: usize = 64;

/// A node's expected end and how long it holds.
#[derive(Debug, Clone, Copy)]
struct NodeEnd {
    node: NodeId,
    generation: u64,
    end_s: f64,
    /// The earliest predicted end among its tasks: past it, a task has
    /// outlived its prediction and the end is computed again.
    revise_s: f64,
}

impl LifetimeAware {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "lifetime";

    /// A policy that has seen no run end yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A policy that starts from `history`: lifetimes of tasks that ended
    /// before it (say, an embedder's finished tasks of last week).
    pub fn with_history(history: LifetimePredictor) -> Self {
        LifetimeAware {
            predictor: history,
            ..Self::default()
        }
    }

    /// What it has learned: the predictor, to report its accuracy.
    pub fn predictor(&self) -> &LifetimePredictor {
        &self.predictor
    }

    /// When a run of `kind` that started at `start_s` is expected to end.
    fn run_end(&self, kind: &str, start_s: f64) -> f64 {
        let age_s = self.now_s - start_s;
        match self.predictor.predict(kind) {
            Some(life) if life.p50_s > age_s => start_s + life.p50_s,
            _ => match self.predictor.predict_alive(kind, age_s) {
                Some(life) => start_s + life.p50_s,
                None => start_s + 2.0 * age_s.max(1.0),
            },
        }
    }

    /// `node`'s expected end (now for an empty node), cached by position.
    fn node_end(&mut self, position: usize, node: &ClusterNode) -> f64 {
        if let Some(Some(cached)) = self.ends.get(position) {
            if cached.node == node.id()
                && cached.generation == node.generation()
                && self.now_s < cached.revise_s
            {
                return cached.end_s.max(self.now_s);
            }
        }
        let (mut end_s, mut revise_s) = (self.now_s, f64::INFINITY);
        for (task, _) in node.tasks() {
            // A run placed by someone else (adopted) has no known start.
            if let Some((start_s, kind)) = self.running.get(task) {
                let task_end = self.run_end(kind, *start_s);
                end_s = end_s.max(task_end);
                revise_s = revise_s.min(task_end);
            }
        }
        if self.ends.len() <= position {
            self.ends.resize(position + 1, None);
        }
        self.ends[position] = Some(NodeEnd {
            node: node.id(),
            generation: node.generation(),
            end_s,
            revise_s,
        });
        end_s
    }
}

impl Policy for LifetimeAware {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn begin_cycle(&mut self, cluster: &ClusterState, now: Timestamp) {
        self.now_s = now.as_micros() as f64 / 1e6;
        // Runs that ended unreported (cancelled, their node removed) go
        // once they outnumber what runs: memory stays bounded by the
        // cluster's allocations.
        if self.running.len() > 2 * cluster.allocation_count() + UNREPORTED_SLACK {
            self.running
                .retain(|task, _| cluster.allocation(*task).is_some());
        }
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let task = nodes.task();
        let kind = task_kind(task);
        // Before anything has ended, every node's extension is unknown:
        // packing alone decides.
        let life_s = self.predictor.predict(&kind).map_or(0.0, |l| l.p50_s);
        let task_end = self.now_s + life_s;
        let mut best: Option<((i64, f64), NodeId)> = None;
        for (position, node) in nodes.with_positions() {
            let extension_s = (task_end - self.node_end(position, node)).max(0.0);
            let score = (-KubeResources::BINPACK.score(task, node), extension_s);
            if best.is_none_or(|(kept, _)| score < kept) {
                best = Some((score, node.id()));
            }
        }
        let (_, node) = best?;
        self.running.insert(task.id, (self.now_s, kind));
        Some(Placement::on(node))
    }

    fn observe(&mut self, feedback: &Feedback<'_>) {
        let Some((_, kind)) = self.running.remove(&feedback.task.id) else {
            return;
        };
        // A failed run's length says when it failed, not how long the task
        // lives.
        if feedback.outcome == Outcome::Completed {
            self.predictor.observe(&kind, feedback.ran_s());
        }
    }
}

#[cfg(test)]
mod tests {
    use lepton_core::{NodeSpec, Resources, TaskSpec};

    use super::*;

    #[test]
    fn it_learns_from_completed_runs_it_placed_only() {
        let mut cluster = ClusterState::new();
        cluster
            .add_node(NodeSpec::new(NodeId(1), Resources::new(4_000, 8_192)))
            .unwrap();
        let mut policy = LifetimeAware::new();
        let tasks: Vec<TaskSpec> = (1..=3)
            .map(|id| {
                TaskSpec::new(TaskId(id), Resources::new(1_000, 1_024)).with_config("app", "web")
            })
            .collect();
        let kind = task_kind(&tasks[0]);
        let ended = |task, outcome| Feedback {
            task,
            node: NodeId(1),
            outcome,
            started: Timestamp::from_secs(100),
            ended: Timestamp::from_secs(700),
        };
        // Placed and completed after 600 s: learned.
        policy.begin_cycle(&cluster, Timestamp::from_secs(100));
        assert!(policy.decide(&tasks[0], &cluster).is_some());
        assert!(policy.decide(&tasks[1], &cluster).is_some());
        policy.observe(&ended(&tasks[0], Outcome::Completed));
        let learned = policy.predictor().predict(&kind).unwrap();
        assert!((learned.p50_s / 600.0 - 1.0).abs() < 0.05, "{learned:?}");
        // A failed run, a second report, a task it never placed: nothing.
        policy.observe(&ended(&tasks[1], Outcome::Failed));
        policy.observe(&ended(&tasks[0], Outcome::Completed));
        policy.observe(&ended(&tasks[2], Outcome::Completed));
        assert_eq!(policy.predictor().seen(), 1);
    }

    #[test]
    fn runs_that_end_unreported_are_dropped() {
        let mut cluster = ClusterState::new();
        cluster
            .add_node(NodeSpec::new(NodeId(1), Resources::new(4_000, 8_192)))
            .unwrap();
        let mut policy = LifetimeAware::new();
        // Chosen but never booked, as a cancelled run is never reported.
        for id in 0..=(2 * UNREPORTED_SLACK as u64) {
            let task = TaskSpec::new(TaskId(id), Resources::new(1_000, 1_024));
            assert!(policy.decide(&task, &cluster).is_some());
        }
        let booked = TaskSpec::new(TaskId(1_000), Resources::new(1_000, 1_024));
        let choice = policy.decide(&booked, &cluster).unwrap();
        cluster.reserve(&booked, &choice).unwrap();
        policy.begin_cycle(&cluster, Timestamp::from_secs(1));
        assert_eq!(policy.running.len(), 1);
        assert!(policy.running.contains_key(&TaskId(1_000)));
    }
}
