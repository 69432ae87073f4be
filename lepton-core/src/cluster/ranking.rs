//! [`NodeRankings`]: the nodes ranked by a policy's integer score, per kind
//! of task, kept up to date from the cluster's changes, so that a decision
//! reads the top of a ranking instead of scoring every node.
//!
//! Many policies score a node by the task's shape and the node's state
//! alone (FGD, Tetris' dot product, the FGD paper's GPU packing and
//! clustering), and a placement changes one node. So each kind of task
//! keeps its ranking: every node's score and, per score, the set of node
//! positions with it. Before a decision the ranking re-scores the nodes
//! that changed since it was last used ([`ClusterState::changed_since`]);
//! the decision then walks the scores from the highest, each set in
//! cluster order, through the nodes that pass the feasibility stage — the
//! first is a scan's choice exactly (highest score, earliest node on ties).

use std::hash::Hash;

use foldhash::HashMap;

use super::{enough_gpus, ClusterNode, ClusterState, FeasibleNodes};
use crate::node::NodeState;
use crate::task::TaskSpec;

/// The highest score a ranking holds unless built
/// [`with_max_score`](NodeRankings::with_max_score); scores are clamped to
/// 0..=its highest.
pub const MAX_SCORE: i64 = 100;

/// Rankings of the nodes per kind of task `K` (see the module's
/// documentation).
///
/// A kind must determine the task's CPU and GPU request (nodes without the
/// CPU or the GPUs for them are left out of its ranking), and the score a
/// policy gives must depend on nothing but the kind and the node's state;
/// call [`clear`](Self::clear) when anything else it reads changes (a
/// target workload, the largest node it normalises by). Handed another
/// cluster state ([`ClusterState::instance`]), the rankings start afresh.
///
/// Memory: a byte per node per kind, plus a bit per node per score in use;
/// past 64 Mi entries the rankings are dropped and rebuilt on use.
#[derive(Debug, Clone)]
pub struct NodeRankings<K> {
    /// The cluster instance the rankings describe.
    cluster: u64,
    /// The highest score; scores are clamped to 0..=this.
    max_score: u8,
    rankings: HashMap<K, Ranking>,
}

impl<K> Default for NodeRankings<K> {
    fn default() -> Self {
        NodeRankings {
            cluster: 0,
            max_score: MAX_SCORE as u8,
            rankings: HashMap::default(),
        }
    }
}

/// The most ranking entries (nodes × kinds) kept.
const RANKING_BUDGET: usize = 64 << 20;

impl<K: Hash + Eq> NodeRankings<K> {
    /// No rankings yet.
    pub fn new() -> Self {
        NodeRankings::default()
    }

    /// No rankings yet; scores are clamped to 0..=`max_score` (at most
    /// 254) instead of 0..=[`MAX_SCORE`]. A decision walks every score
    /// down from the highest, so keep it no wider than the scores.
    pub fn with_max_score(max_score: u8) -> Self {
        NodeRankings {
            max_score: max_score.min(UNRANKED - 1),
            ..NodeRankings::default()
        }
    }

    /// Forgets every ranking.
    pub fn clear(&mut self) {
        self.rankings.clear();
    }

    /// The nodes of `feasible` (with their positions in
    /// [`ClusterState::nodes`]) in the order of `kind`'s ranking: highest
    /// score first, cluster order on ties.
    ///
    /// `score` gives a node's score (clamped to 0..=[`MAX_SCORE`], or to
    /// the highest given [`with_max_score`](Self::with_max_score)), or
    /// `None` to leave the node out; it is asked, before this returns, only
    /// about nodes that changed since this kind's last walk.
    pub fn walk<'s, 'a>(
        &'s mut self,
        kind: K,
        feasible: &FeasibleNodes<'a>,
        mut score: impl FnMut(usize, &ClusterNode) -> Option<i64>,
    ) -> impl Iterator<Item = (usize, &'a ClusterNode)> + 's
    where
        'a: 's,
    {
        let (feasible, cluster) = (*feasible, feasible.cluster());
        let (nodes, task) = (cluster.nodes(), feasible.task());
        if cluster.instance() != self.cluster
            || (self.rankings.len() + 1) * nodes.len() > RANKING_BUDGET
        {
            self.cluster = cluster.instance();
            self.rankings.clear();
        }
        let ranking = self.rankings.entry(kind).or_default();
        ranking.sync(cluster, self.max_score, |position, node| {
            if may_take(task, node) {
                score(position, node)
            } else {
                None
            }
        });
        let by_score = &ranking.by_score;
        ranking
            .occupied
            .descending()
            .flat_map(move |score| by_score[score].iter())
            .map(move |position| (position, &nodes[position]))
            .filter(move |(_, node)| feasible.admits(node))
    }
}

/// One kind's ranking of the nodes.
#[derive(Debug, Clone, Default)]
struct Ranking {
    /// The cluster's generation when last brought up to date (0: never).
    synced: u64,
    /// Per node position, its score, or [`UNRANKED`].
    scores: Vec<u8>,
    /// Per score (0..=the rankings' highest), the positions with it.
    by_score: Vec<Positions>,
    /// The scores some node has: a decision skips the rest.
    occupied: Scores,
}

/// The score of a node left out.
const UNRANKED: u8 = u8::MAX;

impl Ranking {
    /// Re-scores the nodes changed since the last sync.
    fn sync(
        &mut self,
        cluster: &ClusterState,
        max_score: u8,
        mut score: impl FnMut(usize, &ClusterNode) -> Option<i64>,
    ) {
        if self.by_score.is_empty() {
            self.by_score
                .resize_with(usize::from(max_score) + 1, Positions::default);
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
            if let Some(score) = score(position, node) {
                let score = score.clamp(0, i64::from(max_score)) as u8;
                self.scores[position] = score;
                self.by_score[usize::from(score)].insert(position);
                self.occupied.insert(score);
            }
        }
        self.synced = cluster.generation();
    }

    fn unrank(&mut self, position: usize) {
        let score = std::mem::replace(&mut self.scores[position], UNRANKED);
        if score != UNRANKED {
            let positions = &mut self.by_score[usize::from(score)];
            positions.remove(position);
            if positions.is_empty() {
                self.occupied.remove(score);
            }
        }
    }
}

/// Whether a task of `task`'s kind could be placed on `node` as far as its
/// CPU and GPU request tell (and the node is ready): what a ranking keeps.
/// Everything the feasibility stage admits passes this; the rest of the
/// stage (memory, rules, the policy's filter) is checked on the walk.
fn may_take(task: &TaskSpec, node: &ClusterNode) -> bool {
    node.state() == NodeState::Ready
        && node.free().cpu_milli >= task.request.cpu_milli
        && enough_gpus(node.gpu_free_milli(), task.gpu)
}

/// A set of scores (0..=254), iterated from the highest: a bit each.
#[derive(Debug, Clone, Copy, Default)]
struct Scores([u64; 4]);

impl Scores {
    fn insert(&mut self, score: u8) {
        self.0[usize::from(score / 64)] |= 1 << (score % 64);
    }

    fn remove(&mut self, score: u8) {
        self.0[usize::from(score / 64)] &= !(1 << (score % 64));
    }

    fn descending(self) -> impl Iterator<Item = usize> {
        (0..self.0.len()).rev().flat_map(move |index| {
            let mut rest = self.0[index];
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = 63 - rest.leading_zeros() as usize;
                    rest &= !(1 << bit);
                    index * 64 + bit
                })
            })
        })
    }
}

/// A set of node positions, iterated in ascending order: a bit per
/// position, and a bit per word of them marking the words in use.
#[derive(Debug, Clone, Default)]
struct Positions {
    words: Vec<u64>,
    summary: Vec<u64>,
    len: usize,
}

impl Positions {
    fn insert(&mut self, position: usize) {
        let word = position / 64;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
            self.summary.resize(word / 64 + 1, 0);
        }
        let bit = 1 << (position % 64);
        if self.words[word] & bit == 0 {
            self.len += 1;
        }
        self.words[word] |= bit;
        self.summary[word / 64] |= 1 << (word % 64);
    }

    fn remove(&mut self, position: usize) {
        let word = position / 64;
        let Some(bits) = self.words.get_mut(word) else {
            return;
        };
        let bit = 1 << (position % 64);
        if *bits & bit != 0 {
            self.len -= 1;
        }
        *bits &= !bit;
        if *bits == 0 {
            self.summary[word / 64] &= !(1 << (word % 64));
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
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
        set.remove(63);
        set.insert(3);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![0, 3, 64, 4_095, 70_001]
        );
        for p in [0, 3, 64, 4_095] {
            set.remove(p);
        }
        assert!(!set.is_empty());
        set.remove(70_001);
        assert!(set.is_empty());
    }

    #[test]
    fn scores_iterate_from_the_highest() {
        let mut scores = Scores::default();
        for score in [0, 63, 64, 100, 200, 254, 127, 128] {
            scores.insert(score);
        }
        scores.remove(100);
        scores.remove(99);
        let expected = vec![254, 200, 128, 127, 64, 63, 0];
        assert_eq!(scores.descending().collect::<Vec<_>>(), expected);
    }
}
