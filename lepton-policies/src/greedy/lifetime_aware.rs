use foldhash::{HashMap, HashMapExt};
use lepton_core::clock::Timestamp;
use lepton_core::cluster::{ClusterNode, NodeRankings};
use lepton_core::policy::{Feedback, Outcome};
use lepton_core::{ClusterState, FeasibleNodes, GpuRequest, NodeId, Placement, Policy, TaskId};

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
/// latest predicted end (median) of the tasks it holds, from everything
/// learned so far; a task whose age has passed its prediction is
/// predicted again from the finished tasks of its kind that lived longer
/// (LAVA's reprediction), or, when none did, as living as long again as
/// it has.
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
/// A decision reads the nodes ranked by packing score per task shape
/// ([`NodeRankings`], re-scored as nodes change) and looks only at the
/// best-scoring ones, in cluster order, stopping at the first it does not
/// extend. A node's expected end is kept until the node changes, a run
/// ends (the predictor learns) or one of its tasks outlives its
/// prediction: the same as computed afresh.
#[derive(Debug)]
pub struct LifetimeAware {
    predictor: LifetimePredictor,
    /// The scheduler's clock at the start of the cycle, seconds.
    now_s: f64,
    /// Runs placed and not yet reported ended: when each started (the
    /// cycle's time) and its kind.
    running: HashMap<TaskId, (f64, String)>,
    /// Per node position: the node's expected end, as last computed.
    ends: KeptEnds,
    /// The nodes ranked by packing score, per task shape (CPU, memory,
    /// GPUs).
    packing: NodeRankings<(u64, u64, GpuRequest)>,
}

/// Runs kept beyond twice the cluster's allocations before the ones that
/// ended unreported are dropped.
const UNREPORTED_SLACK: usize = 64;

/// The highest packing score: most allocated plus balanced, 100 each.
const MAX_PACKING_SCORE: u8 = 200;

/// A node's expected end and what it was computed from.
#[derive(Debug, Clone, Copy)]
struct NodeEnd {
    node: NodeId,
    generation: u64,
    /// The predictor's runs seen.
    seen: u64,
    /// When it was computed.
    at_s: f64,
    end_s: f64,
    /// Until when it holds: the earliest predicted end among its tasks
    /// (past it, a task has outlived its prediction), or `at_s` when one
    /// already has (its prediction then depends on the clock).
    until_s: f64,
}

impl Default for LifetimeAware {
    fn default() -> Self {
        LifetimeAware {
            predictor: LifetimePredictor::default(),
            now_s: 0.0,
            running: HashMap::new(),
            ends: KeptEnds::default(),
            packing: NodeRankings::with_max_score(MAX_PACKING_SCORE),
        }
    }
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
}

/// Per node position: the node's expected end, as last computed.
#[derive(Debug, Default)]
struct KeptEnds(Vec<Option<NodeEnd>>);

impl KeptEnds {
    /// `node`'s expected end at `now_s` (`now_s` for an empty node): the
    /// one kept for `position` while it is what a fresh computation would
    /// give, else computed afresh and kept.
    fn get(
        &mut self,
        position: usize,
        node: &ClusterNode,
        predictor: &LifetimePredictor,
        running: &HashMap<TaskId, (f64, String)>,
        now_s: f64,
    ) -> f64 {
        let seen = predictor.seen();
        if let Some(Some(kept)) = self.0.get(position) {
            if kept.node == node.id()
                && kept.generation == node.generation()
                && kept.seen == seen
                && (now_s == kept.at_s || now_s < kept.until_s)
            {
                return kept.end_s.max(now_s);
            }
        }
        let (end_s, until_s) = node_end(predictor, running, now_s, node);
        if self.0.len() <= position {
            self.0.resize(position + 1, None);
        }
        self.0[position] = Some(NodeEnd {
            node: node.id(),
            generation: node.generation(),
            seen,
            at_s: now_s,
            end_s,
            until_s,
        });
        end_s
    }
}

/// `node`'s expected end at `now_s` (`now_s` when it holds no run of the
/// policy), and until when that holds (see [`NodeEnd::until_s`]).
fn node_end(
    predictor: &LifetimePredictor,
    running: &HashMap<TaskId, (f64, String)>,
    now_s: f64,
    node: &ClusterNode,
) -> (f64, f64) {
    let (mut end_s, mut until_s) = (now_s, f64::INFINITY);
    for (task, _) in node.tasks() {
        // A run placed by someone else (adopted) has no known start.
        let Some((start_s, kind)) = running.get(task) else {
            continue;
        };
        let age_s = now_s - start_s;
        let task_end_s = match predictor.predict(kind) {
            Some(life) if life.p50_s > age_s => {
                until_s = until_s.min(start_s + life.p50_s);
                start_s + life.p50_s
            }
            // Outlived: predicted again from its age.
            _ => {
                until_s = now_s;
                match predictor.predict_alive(kind, age_s) {
                    Some(life) => start_s + life.p50_s,
                    None => start_s + 2.0 * age_s.max(1.0),
                }
            }
        };
        end_s = end_s.max(task_end_s);
    }
    (end_s, until_s)
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
        let task_end_s = self.now_s + life_s;
        let shape = (task.request.cpu_milli, task.request.memory_mib, task.gpu);
        let pack = |node: &ClusterNode| KubeResources::BINPACK.score(task, node);
        let LifetimeAware {
            predictor,
            now_s,
            running,
            ends,
            packing,
        } = self;
        let ranked = packing.walk(shape, nodes, |_, node| Some(pack(node)));
        // The best-scoring nodes, in cluster order: the one extended least.
        let mut best: Option<(i64, f64, NodeId)> = None;
        for (position, node) in ranked {
            let score = pack(node);
            if best.is_some_and(|(top, _, _)| score < top) {
                break;
            }
            let end_s = ends.get(position, node, predictor, running, *now_s);
            let extension_s = (task_end_s - end_s).max(0.0);
            if best.is_none_or(|(_, kept, _)| extension_s < kept) {
                best = Some((score, extension_s, node.id()));
            }
            if extension_s <= 0.0 {
                break;
            }
        }
        let (_, _, node) = best?;
        running.insert(task.id, (*now_s, kind));
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

    mod against_a_scan {
        use lepton_core::model::NodeState;
        use lepton_core::{NodeSpec, Resources, TaskSpec};
        use proptest::prelude::*;
        use proptest::sample::Index;

        use super::super::*;

        /// Task shapes drawn: (cores, GiB, app).
        const SHAPES: [(u64, u64, &str); 4] = [
            (1, 2, "web"),
            (2, 4, "web"),
            (4, 8, "batch"),
            (2, 16, "cache"),
        ];

        #[derive(Debug, Clone)]
        enum Op {
            Add(u64, u64),
            Remove(Index),
            Cordon(Index, bool),
            Place(usize),
            Complete(Index),
            Wait(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                2 => (prop::sample::select(vec![4u64, 8, 16]), prop::sample::select(vec![16u64, 32, 64]))
                    .prop_map(|(c, m)| Op::Add(c, m)),
                1 => any::<Index>().prop_map(Op::Remove),
                1 => (any::<Index>(), any::<bool>()).prop_map(|(n, c)| Op::Cordon(n, c)),
                8 => (0..SHAPES.len()).prop_map(Op::Place),
                3 => any::<Index>().prop_map(Op::Complete),
                3 => (1u64..4_000).prop_map(Op::Wait),
            ]
        }

        /// A scan of every feasible node, each node's end computed afresh:
        /// the highest packing score, then the least extension, then the
        /// earliest node.
        fn scan(policy: &LifetimeAware, task: &TaskSpec, cluster: &ClusterState) -> Option<NodeId> {
            let now_s = policy.now_s;
            let life_s = policy
                .predictor
                .predict(&task_kind(task))
                .map_or(0.0, |l| l.p50_s);
            let mut best: Option<((i64, f64), NodeId)> = None;
            for node in cluster.feasible(task, None).iter() {
                let (end_s, _) = node_end(&policy.predictor, &policy.running, now_s, node);
                let extension_s = (now_s + life_s - end_s.max(now_s)).max(0.0);
                let key = (-KubeResources::BINPACK.score(task, node), extension_s);
                if best.is_none_or(|(kept, _)| key < kept) {
                    best = Some((key, node.id()));
                }
            }
            best.map(|(_, node)| node)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]

            #[test]
            fn chooses_as_a_scan_of_every_node_does(
                ops in prop::collection::vec(op(), 1..120),
            ) {
                let mut cluster = ClusterState::new();
                let mut policy = LifetimeAware::new();
                let (mut now, mut next_node, mut next_task) = (0u64, 0u64, 0u64);
                let mut placed: Vec<(TaskSpec, NodeId, u64)> = Vec::new();
                policy.begin_cycle(&cluster, Timestamp::from_secs(now));
                for op in &ops {
                    let count = cluster.nodes().len();
                    let pick = |index: &Index| (count > 0).then(|| cluster.nodes()[index.index(count)].id());
                    match op {
                        Op::Add(cores, gib) => {
                            next_node += 1;
                            let spec = NodeSpec::new(NodeId(next_node), Resources::new(cores * 1_000, gib * 1_024));
                            cluster.add_node(spec).unwrap();
                        }
                        Op::Remove(index) => if let Some(id) = pick(index) {
                            let _ = cluster.remove_node(id); // refused while it holds tasks
                        },
                        Op::Cordon(index, cordon) => if let Some(id) = pick(index) {
                            let state = if *cordon { NodeState::Cordoned } else { NodeState::Ready };
                            cluster.set_state(id, state).unwrap();
                        },
                        Op::Place(shape) => {
                            let (cores, gib, app) = SHAPES[*shape];
                            next_task += 1;
                            let task = TaskSpec::new(TaskId(next_task), Resources::new(cores * 1_000, gib * 1_024))
                                .with_config("app", app);
                            let expected = scan(&policy, &task, &cluster);
                            let chosen = policy.decide(&task, &cluster);
                            prop_assert_eq!(chosen.as_ref().map(|p| p.node), expected);
                            // Every end kept is the end computed afresh.
                            for (position, node) in cluster.nodes().iter().enumerate() {
                                let now_s = policy.now_s;
                                let fresh = node_end(&policy.predictor, &policy.running, now_s, node).0;
                                let kept = policy.ends.get(
                                    position,
                                    node,
                                    &policy.predictor,
                                    &policy.running,
                                    now_s,
                                );
                                prop_assert_eq!(kept, fresh.max(now_s));
                            }
                            if let Some(placement) = chosen {
                                cluster.reserve(&task, &placement).unwrap();
                                placed.push((task, placement.node, now));
                            }
                        }
                        Op::Complete(index) => if !placed.is_empty() {
                            let (task, node, started) = placed.swap_remove(index.index(placed.len()));
                            cluster.release(task.id).unwrap();
                            policy.observe(&Feedback {
                                task: &task,
                                node,
                                outcome: Outcome::Completed,
                                started: Timestamp::from_secs(started),
                                ended: Timestamp::from_secs(now),
                            });
                        },
                        Op::Wait(seconds) => {
                            now += seconds;
                            policy.begin_cycle(&cluster, Timestamp::from_secs(now));
                        }
                    }
                }
            }
        }
    }
}
