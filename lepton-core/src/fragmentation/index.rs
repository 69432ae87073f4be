//! [`GrowthIndex`]: FGD's choice without a scan — the nodes ranked per task
//! shape by FGD's score ([`NodeRankings`]), the scores from memos (see
//! `memo.rs`): nodes in alike states score alike, so a score is computed
//! once per task shape and node state, and a fragment once per node state.

use foldhash::HashMap;

use super::memo::Memo;
use super::{Growth, TargetWorkload, TaskShape};
use crate::cluster::NodeRankings;
use crate::FeasibleNodes;

/// FGD's ranking of the nodes for each task shape, and the memos its
/// scores come from.
///
/// Growths depend on the target workload: call [`clear`](Self::clear)
/// whenever it changes. Memory: see [`NodeRankings`]; the memos hold
/// about a million fragments and a million scores at most (then start
/// afresh).
#[derive(Debug, Clone, Default)]
pub struct GrowthIndex {
    rankings: NodeRankings<TaskShape>,
    /// What is known per shape.
    known: HashMap<TaskShape, Known>,
    /// How many scores and growths `known` holds in all.
    known_count: usize,
    memo: Memo,
    /// The cluster the growths in `known` were read on.
    cluster: u64,
}

/// What a [`GrowthIndex`] knows of one task shape.
#[derive(Debug, Clone, Default)]
struct Known {
    /// Scores (or `None`: no growth) per node state, by
    /// [`Memo::score_key`].
    scores: HashMap<u128, Option<i64>>,
    /// Per node position, the growth at the node's generation then: the
    /// exact growth (GPU index included) of an unchanged node, which the
    /// ranked nodes of a walk mostly are.
    growths: HashMap<usize, (u64, Growth)>,
}

/// The most scores and growths remembered, over all shapes, before a walk
/// starts afresh (a walk adds at most two per node).
const KNOWN_SCORES: usize = 1 << 20;

impl GrowthIndex {
    /// An empty index.
    pub fn new() -> Self {
        GrowthIndex::default()
    }

    /// Forgets everything: call it when the target workload changes.
    pub fn clear(&mut self) {
        self.rankings.clear();
        self.known.clear();
        self.known_count = 0;
        self.memo = Memo::default();
    }

    /// FGD's choice among `feasible`: the node where the task's
    /// [`Growth`] scores highest, the earliest in cluster order on ties,
    /// with its position in [`ClusterState::nodes`](crate::ClusterState::nodes)
    /// and the growth.
    pub fn best(
        &mut self,
        workload: &TargetWorkload,
        feasible: &FeasibleNodes<'_>,
    ) -> Option<(usize, Growth)> {
        let mut found = None;
        self.walk(workload, feasible, |position, growth| {
            found = Some((position, growth));
            false
        });
        found
    }

    /// The `limit` nodes of `feasible` FGD ranks first, in that order
    /// (highest score first, cluster order on ties), with their positions
    /// and growths, into `out` (cleared first).
    pub fn ranked(
        &mut self,
        workload: &TargetWorkload,
        feasible: &FeasibleNodes<'_>,
        limit: usize,
        out: &mut Vec<(usize, Growth)>,
    ) {
        out.clear();
        if limit == 0 {
            return;
        }
        self.walk(workload, feasible, |position, growth| {
            out.push((position, growth));
            out.len() < limit
        });
    }

    /// Hands `more` the feasible nodes in FGD's order until it says stop.
    fn walk(
        &mut self,
        workload: &TargetWorkload,
        feasible: &FeasibleNodes<'_>,
        mut more: impl FnMut(usize, Growth) -> bool,
    ) {
        let task = feasible.task();
        if self.known_count >= KNOWN_SCORES {
            self.known.clear();
            self.known_count = 0;
        }
        let GrowthIndex {
            rankings,
            known,
            known_count,
            memo,
            cluster,
        } = self;
        let instance = feasible.cluster().instance();
        if *cluster != instance {
            // Positions and generations are another cluster's.
            *cluster = instance;
            known.values_mut().for_each(|k| k.growths.clear());
        }
        memo.prepare(workload, instance);
        let shape = TaskShape::of(task);
        let Known { scores, growths } = known.entry(shape.clone()).or_default();
        let mut added = 0;
        let ranked = rankings.walk(shape, feasible, |position, node| {
            let key = memo.score_key(position, node, task.request.cpu_milli);
            if let Some(&score) = key.and_then(|key| scores.get(&key)) {
                return score;
            }
            let score = memo.growth(workload, task, node).map(|g| g.score);
            if let Some(key) = key {
                scores.insert(key, score);
                added += 1;
            }
            score
        });
        for (position, node) in ranked {
            let growth = match growths.get(&position) {
                Some(&(generation, growth)) if generation == node.generation() => growth,
                _ => {
                    // Ranked, so it has a growth.
                    let Some(growth) = memo.growth(workload, task, node) else {
                        continue;
                    };
                    growths.insert(position, (node.generation(), growth));
                    added += 1;
                    growth
                }
            };
            if !more(position, growth) {
                break;
            }
        }
        *known_count += added;
    }
}
