//! [`GrowthIndex`]: FGD's ranking of the nodes, per task shape, kept up to
//! date from the cluster's changes, so that a decision reads the top of a
//! ranking instead of scoring every node.
//!
//! FGD's score of a node for a task depends only on the task's shape and
//! the node's state, and a placement changes one node. So each task shape
//! seen keeps its ranking: every node's score (an integer, 0..=100) and,
//! per score, the set of node positions with it. Before a decision the
//! ranking re-scores the nodes that changed since it was last used
//! ([`ClusterState::changed_since`]); the decision then walks the scores
//! from the highest, each set in cluster order, and takes the first node
//! that passes the feasibility stage — FGD's choice exactly (highest score,
//! earliest node on ties).
//!
//! Scores come from memos (see `memo.rs`): nodes in alike states score
//! alike, so a score is computed once per task shape and node state, and a
//! fragment once per node state.

use foldhash::HashMap;

use super::memo::Memo;
use super::{Growth, TargetWorkload, TaskShape};
use crate::cluster::{ClusterNode, ClusterState};
use crate::node::NodeState;
use crate::task::TaskSpec;
use crate::FeasibleNodes;

/// FGD's ranking of the nodes for each task shape (see the module's
/// documentation), and the memo its scores come from.
///
/// It describes one cluster state at a time (by
/// [`ClusterState::instance`]); handed another, it starts afresh. Growths
/// depend on the target workload: call [`clear`](Self::clear) whenever it
/// changes.
///
/// Memory: a byte per node per task shape seen, plus a bit per node per
/// score a shape's nodes take; past 64 Mi entries the rankings are dropped
/// and rebuilt on use. The memos hold at most a million fragments and
/// 16,384 scores per shape.
#[derive(Debug, Clone, Default)]
pub struct GrowthIndex {
    /// The cluster instance the rankings describe.
    cluster: u64,
    rankings: HashMap<TaskShape, Ranking>,
    memo: Memo,
}

/// The most ranking entries (nodes × shapes) kept.
const RANKING_BUDGET: usize = 64 << 20;

impl GrowthIndex {
    /// An empty index.
    pub fn new() -> Self {
        GrowthIndex::default()
    }

    /// Forgets everything: call it when the target workload changes.
    pub fn clear(&mut self) {
        self.rankings.clear();
        self.memo = Memo::default();
    }

    /// FGD's choice among `feasible`: the node where the task's
    /// [`Growth`] scores highest, the earliest in cluster order on ties,
    /// with its position in [`ClusterState::nodes`] and the growth.
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
        let (cluster, task) = (feasible.cluster(), feasible.task());
        let nodes = cluster.nodes();
        if cluster.instance() != self.cluster
            || (self.rankings.len() + 1) * nodes.len() > RANKING_BUDGET
        {
            self.cluster = cluster.instance();
            self.rankings.clear();
            self.memo.forget_nodes();
        }
        let GrowthIndex { rankings, memo, .. } = self;
        memo.prepare(workload);
        let ranking = rankings.entry(TaskShape::of(task)).or_default();
        ranking.sync(cluster, workload, task, memo);
        for positions in ranking.by_score.iter().rev() {
            for position in positions.iter() {
                let node = &nodes[position];
                if !feasible.admits(node) {
                    continue;
                }
                // Ranked, so it has a growth; the memo answers at once.
                let Some(growth) = memo.growth(workload, task, node) else {
                    continue;
                };
                if !more(position, growth) {
                    return;
                }
            }
        }
    }
}

/// One task shape's ranking of the nodes.
#[derive(Debug, Clone, Default)]
struct Ranking {
    /// The cluster's generation when last brought up to date (0: never).
    synced: u64,
    /// Per node position, its score, or [`UNRANKED`].
    scores: Vec<u8>,
    /// Per score (0..=100), the positions with it.
    by_score: Vec<Positions>,
    /// Scores (or [`UNRANKED`]) per node state, by [`Memo::score_key`].
    known: HashMap<u128, u8>,
}

/// The score of a node the shape does not rank.
const UNRANKED: u8 = u8::MAX;

/// The most scores a shape remembers before it starts afresh.
const KNOWN_SCORES: usize = 1 << 14;

impl Ranking {
    /// Re-scores the nodes changed since the last sync.
    fn sync(
        &mut self,
        cluster: &ClusterState,
        workload: &TargetWorkload,
        task: &TaskSpec,
        memo: &mut Memo,
    ) {
        if self.by_score.is_empty() {
            self.by_score.resize_with(101, Positions::default);
        }
        let count = cluster.nodes().len();
        // Positions past the end belonged to removed nodes.
        while self.scores.len() > count {
            self.unrank(self.scores.len() - 1);
            self.scores.pop();
        }
        self.scores.resize(count, UNRANKED);
        for (position, node) in cluster.changed_since(self.synced) {
            self.unrank(position);
            if !may_take(task, node) {
                continue;
            }
            let score = self.score(position, node, workload, task, memo);
            if score != UNRANKED {
                self.scores[position] = score;
                self.by_score[usize::from(score)].insert(position);
            }
        }
        self.synced = cluster.generation();
    }

    /// FGD's score of the task on `node`, or [`UNRANKED`] when it has no
    /// growth there (a share fits on no GPU).
    fn score(
        &mut self,
        position: usize,
        node: &ClusterNode,
        workload: &TargetWorkload,
        task: &TaskSpec,
        memo: &mut Memo,
    ) -> u8 {
        let key = memo.score_key(position, node, task.request.cpu_milli);
        if let Some(&score) = key.and_then(|key| self.known.get(&key)) {
            return score;
        }
        let score = memo
            .growth(workload, task, node)
            .map_or(UNRANKED, |growth| growth.score.clamp(0, 100) as u8);
        if let Some(key) = key {
            if self.known.len() >= KNOWN_SCORES {
                self.known.clear();
            }
            self.known.insert(key, score);
        }
        score
    }

    fn unrank(&mut self, position: usize) {
        let score = std::mem::replace(&mut self.scores[position], UNRANKED);
        if score != UNRANKED {
            self.by_score[usize::from(score)].remove(position);
        }
    }
}

/// Whether a task of `task`'s shape could be placed on `node` as far as the
/// shape tells (state, CPU, GPUs): what the ranking keeps. Everything the
/// feasibility stage admits passes this; the rest of the stage (memory,
/// rules, the policy's filter) is checked on the walk.
fn may_take(task: &TaskSpec, node: &ClusterNode) -> bool {
    let request = task.gpu;
    node.state() == NodeState::Ready
        && node.free().cpu_milli >= task.request.cpu_milli
        && (request.is_none()
            || node
                .gpu_free_milli()
                .iter()
                .filter(|&&free| free >= request.milli_per_gpu)
                .count()
                >= request.count as usize)
}

/// A set of node positions, iterated in ascending order: a bit per
/// position, and a bit per word of them marking the words in use.
#[derive(Debug, Clone, Default)]
struct Positions {
    words: Vec<u64>,
    summary: Vec<u64>,
}

impl Positions {
    fn insert(&mut self, position: usize) {
        let word = position / 64;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
            self.summary.resize(word / 64 + 1, 0);
        }
        self.words[word] |= 1 << (position % 64);
        self.summary[word / 64] |= 1 << (word % 64);
    }

    fn remove(&mut self, position: usize) {
        let word = position / 64;
        let Some(bits) = self.words.get_mut(word) else {
            return;
        };
        *bits &= !(1 << (position % 64));
        if *bits == 0 {
            self.summary[word / 64] &= !(1 << (word % 64));
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        ones(&self.summary)
            .flat_map(move |word| ones(&self.words[word..=word]).map(move |bit| word * 64 + bit))
    }
}

/// The indexes of the set bits of `words`, ascending.
fn ones(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(index, &word)| {
        let mut rest = word;
        std::iter::from_fn(move || {
            (rest != 0).then(|| {
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                index * 64 + bit
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_iterate_in_order_across_words() {
        let mut set = Positions::default();
        let members = [0, 3, 63, 64, 4_095, 4_096, 70_001];
        for &p in members.iter().rev() {
            set.insert(p);
        }
        assert_eq!(set.iter().collect::<Vec<_>>(), members);
        set.remove(63);
        set.remove(4_096);
        set.remove(9_999_999);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![0, 3, 64, 4_095, 70_001]
        );
    }
}
