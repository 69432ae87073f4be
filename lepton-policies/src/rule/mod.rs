//! The `rule` policy: filters and weighted scorers read from a TOML or JSON
//! file, so an operator can change placement without writing Rust.
//!
//! The design, in short: a rules file is data, checked completely when it
//! is read (every error names its line, see [`config`]), then turned into a
//! flat list of [`Filter`]s and [`Scorer`]s that [`RulePolicy::select`]
//! walks for each node, as a built-in policy would. The filters are the
//! policy's [`Policy::filter`], so they live in one place and hold on every
//! path that places a task — placement, drains, preemption and the
//! rebalancer (see [`FeasibleNodes`](lepton_core::FeasibleNodes)) — on
//! top of the task's own constraints (resources, GPU model, node selector,
//! taints, anti-affinity), which the cluster always enforces. Scorers reuse the
//! computations of the built-in policies (`bestfit`, `spread`, `balanced`,
//! `packing`) and rate in whole percent, as kube-scheduler's score plugins
//! do, so a rules file with a single scorer decides as the policy it names
//! would with whole-percent scores (`balanced` and `packing` score so
//! already; `bestfit` and `spread` compare exact leftovers); weights are scaled
//! so the heaviest is 1, which keeps totals small whatever weights are
//! written. The format is documented on [`RulePolicy`].
//!
//! [`Filter`]: filter::Filter
//! [`Scorer`]: score::Scorer

mod config;
mod filter;
mod score;

use std::path::Path;
use std::sync::Arc;

use lepton_core::cluster::{ClusterNode, NodeFilter};
use lepton_core::{FeasibleNodes, Misfit, Placement, Policy, TaskSpec};

use self::config::Rules;
use self::filter::Filter;
use self::score::{Extremes, Scorer};
use crate::greedy::best_scoring;
use crate::Error;

/// A policy whose filters and weighted scorers come from a rules file.
///
/// Read one with [`from_toml_str`](RulePolicy::from_toml_str),
/// [`from_json_str`](RulePolicy::from_json_str) or
/// [`from_path`](RulePolicy::from_path); the registry builds it under the
/// name `rule` from [`PolicyContext::rules`](crate::PolicyContext::rules).
///
/// # How it decides
/// A node is a candidate when the task fits there and it passes **every**
/// filter. The filters are this policy's [`filter`](Policy::filter), so the
/// scheduler holds preemption, drains and the rebalancer to them too: a
/// task is never preempted onto, or moved to, a node they refuse (for a cap
/// on use, judged once the victims are gone). Each scorer rates each candidate from 0 to 100 (a fraction in
/// 0..=1, in whole percent as kube-scheduler scores); the candidate with the
/// highest weighted sum of ratings wins, ties to the earliest node in
/// cluster order. With no scorer, the first candidate wins (first fit).
///
/// # The format
/// Two lists of tables, both optional: `filter` and `score`. In TOML:
///
/// ```toml
/// # Production nodes only, never one under maintenance.
/// [[filter]]
/// require_label = { tier = "production" }
/// forbid_label = { maintenance = "true" }
///
/// # Keep 20% CPU and 10% memory headroom after placement.
/// [[filter]]
/// max_cpu_utilization = 0.8
/// max_memory_utilization = 0.9
///
/// # VMs or physical servers, in either zone.
/// [[filter]]
/// node_kind = ["server", "vm"]
/// zone = ["eu-west-1a", "eu-west-1b"]
///
/// # Pack tightly, and prefer cheap nodes half as much.
/// [[score]]
/// rule = "bestfit"
/// weight = 2.0
///
/// [[score]]
/// rule = "cheapest"   # weight defaults to 1
/// ```
///
/// and the same in JSON:
///
/// ```json
/// {
///   "filter": [
///     { "require_label": { "tier": "production" },
///       "forbid_label": { "maintenance": "true" } },
///     { "max_cpu_utilization": 0.8, "max_memory_utilization": 0.9 },
///     { "node_kind": ["server", "vm"], "zone": ["eu-west-1a", "eu-west-1b"] }
///   ],
///   "score": [
///     { "rule": "bestfit", "weight": 2.0 },
///     { "rule": "cheapest" }
///   ]
/// }
/// ```
///
/// A `filter` table holds one or more of these keys, each one filter:
///
/// | key | value | a node passes when |
/// |---|---|---|
/// | `require_label` | table of strings | it has every `key = value` |
/// | `forbid_label` | table of strings | it has none of the `key = value` pairs |
/// | `max_cpu_utilization` | fraction, 0..=1 | its CPU in use once the task is placed, (capacity − free + request) / capacity, is at most this |
/// | `max_memory_utilization` | fraction, 0..=1 | the same for memory |
/// | `max_gpu_utilization` | fraction, 0..=1 | the same for milli-GPUs over all its GPUs; a node without GPUs passes |
/// | `node_kind` | `"server"`, `"vm"`, `"container_host"`, or a list | its kind is one of these |
/// | `zone` | a string or a list | its zone is one of these; a node without a zone fails |
///
/// A `score` table has a `rule` and an optional `weight` (a finite number
/// above 0, default 1):
///
/// | rule | rates a node higher when | rating |
/// |---|---|---|
/// | `bestfit` | less CPU and GPU is left over, as the `bestfit` policy | 1 − leftover |
/// | `spread` | more is left over, as the `spread` policy | leftover |
/// | `balanced` | its resources are more evenly used, as the `balanced` policy | 1 − std. deviation of the fractions in use |
/// | `cheapest` | its `price_per_hour` is lower | 1 − price / the cluster's highest price (1 when every node is free) |
/// | `least_tasks` | it runs fewer tasks | 1 − tasks / the most tasks on any node (1 when no node runs any) |
/// | `gpu_packing` | the task fits on partly used GPUs, as the `packing` policy | that policy's score / 100 |
///
/// "Leftover" is ½ · CPU left / the largest node's CPU + ½ · GPU left / the
/// largest node's GPU. "The cluster" is every node, candidate or not.
///
/// # Errors in rules
/// Every mistake is an [`Error::RuleConfig`] naming the file (or `<toml>`,
/// `<json>` for text), the 1-based line, and the offending value: syntax
/// errors, unknown keys, unknown filter, scorer or node kind names (listing
/// the valid ones), weights that are zero, negative, NaN or infinite, and
/// utilization caps outside 0..=1. The line is the offending value's; for a
/// problem with a whole table (empty, or missing `rule`) it is the table's
/// first line in TOML and its last line in JSON.
///
/// ```
/// use lepton_policies::RulePolicy;
///
/// let error = RulePolicy::from_toml_str("[[score]]\nrule = \"bestfitt\"\n").unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "<toml>:2: unknown scorer \"bestfitt\"; valid scorers: \
///      bestfit, spread, balanced, cheapest, least_tasks, gpu_packing"
/// );
/// let error = RulePolicy::from_json_str("{\"score\": [\n  {\"rule\": \"spread\", \"weight\": 0}\n]}")
///     .unwrap_err();
/// assert_eq!(error.to_string(), "<json>:2: weight must be a finite number above 0, got 0");
/// ```
///
/// # Example
/// ```
/// use lepton_core::{
///     ClusterState, NodeId, NodeSpec, Placement, Policy, Resources, TaskId, TaskSpec,
/// };
/// use lepton_policies::RulePolicy;
///
/// let mut policy = RulePolicy::from_toml_str(
///     r#"
///     [[filter]]
///     require_label = { zone = "a" }
///     [[score]]
///     rule = "cheapest"
///     "#,
/// )?;
/// let mut cluster = ClusterState::new();
/// let node = |id, zone, price| {
///     NodeSpec::new(NodeId(id), Resources::new(8_000, 8_192))
///         .with_label("zone", zone)
///         .with_price_per_hour(price)
/// };
/// cluster.add_node(node(1, "b", 0.5))?; // cheapest, but in zone b
/// cluster.add_node(node(2, "a", 3.0))?;
/// cluster.add_node(node(3, "a", 1.0))?;
/// let task = TaskSpec::new(TaskId(1), Resources::new(1_000, 1_024));
/// assert_eq!(policy.decide(&task, &cluster), Some(Placement::on(NodeId(3))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulePolicy {
    filters: Arc<Filters>,
    /// Weights scaled so the heaviest is 1.
    scorers: Vec<Scorer>,
}

impl RulePolicy {
    /// Reads rules written in TOML.
    ///
    /// # Errors
    /// [`Error::RuleConfig`] with origin `<toml>`, naming the line at fault.
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        config::from_toml(text, "<toml>").map(RulePolicy::new)
    }

    /// Reads rules written in JSON.
    ///
    /// # Errors
    /// [`Error::RuleConfig`] with origin `<json>`, naming the line at fault.
    pub fn from_json_str(text: &str) -> Result<Self, Error> {
        config::from_json(text, "<json>").map(RulePolicy::new)
    }

    /// Reads a rules file, TOML or JSON by its extension (`.toml` or
    /// `.json`, in any case).
    ///
    /// # Errors
    /// [`Error::RulesFileExtension`] for any other extension,
    /// [`Error::RulesFileUnreadable`] when it cannot be read as UTF-8 text,
    /// [`Error::RuleConfig`] with the path as origin when its rules are wrong.
    pub fn from_path(path: &Path) -> Result<Self, Error> {
        let origin = path.display().to_string();
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        let parse = match extension.as_deref() {
            Some("toml") => config::from_toml,
            Some("json") => config::from_json,
            _ => return Err(Error::RulesFileExtension { path: origin }),
        };
        let text = crate::files::read_bounded(path, crate::files::MAX_RULES_BYTES)
            .and_then(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
            .map_err(|error| Error::RulesFileUnreadable {
                path: origin.clone(),
                reason: error.to_string(),
            })?;
        parse(&text, &origin).map(RulePolicy::new)
    }

    fn new(rules: Rules) -> Self {
        let Rules {
            filters,
            mut scorers,
        } = rules;
        // Only the ratio of weights matters; scaling the heaviest to 1 keeps
        // every total within 100 × the number of scorers.
        let heaviest = scorers.iter().map(|s| s.weight).fold(0.0, f64::max);
        for scorer in &mut scorers {
            scorer.weight /= heaviest;
        }
        RulePolicy {
            filters: Arc::new(Filters(filters)),
            scorers,
        }
    }
}

/// A rules file's filters: every one must admit the node.
#[derive(Debug, Clone, Default, PartialEq)]
struct Filters(Vec<Filter>);

impl NodeFilter for Filters {
    /// The first filter that refuses `node`, naming it.
    fn check(&self, task: &TaskSpec, node: &ClusterNode) -> Result<(), Misfit> {
        self.0
            .iter()
            .try_for_each(|filter| filter.check(task, node))
    }
}

impl RulePolicy {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "rule";
}

impl Policy for RulePolicy {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn filter(&self) -> Option<Arc<dyn NodeFilter>> {
        let filters: Arc<dyn NodeFilter> = self.filters.clone();
        (!self.filters.0.is_empty()).then_some(filters)
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        if self.scorers.is_empty() {
            return nodes.first_fit().map(|node| Placement::on(node.id()));
        }
        let extremes = Extremes::of(nodes.cluster());
        best_scoring(nodes, |node| {
            let total: f64 = self
                .scorers
                .iter()
                .map(|s| s.weight * s.kind.rate(node, nodes, &extremes) as f64)
                .sum();
            // Compared in millionths: totals equal with the weights as
            // written stay equal despite float rounding (see the ties test).
            Some(((total * 1e6).round() as i64, ()))
        })
        .map(|(node, ())| Placement::on(node.id()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use lepton_core::model::NodeKind;
    use lepton_core::rng::SeededRng;
    use lepton_core::{GpuRequest, Gpus, NodeId, NodeSpec, Resources, TaskId};
    use proptest::prelude::*;

    use super::*;
    use crate::{Balanced, BestFit, GpuPacking, Spread};
    use lepton_core::{ClusterState, TaskSpec};

    /// n1: 16 cores, production, $4/h, 8 cores and 1 GiB in use.
    /// n2: 32 cores (the largest), a production VM, $1/h, idle.
    /// n3: 16 cores, dev, $0.5/h. n4: 32 cores, production but under
    /// maintenance, $0.25/h. No GPUs anywhere, so leftovers are CPU only.
    fn cluster() -> ClusterState {
        let mut cluster = ClusterState::new();
        let node = |id, cores: u64, tier, price| {
            NodeSpec::new(NodeId(id), Resources::new(cores * 1_000, cores * 1_024))
                .with_label("tier", tier)
                .with_price_per_hour(price)
        };
        cluster.add_node(node(1, 16, "production", 4.0)).unwrap();
        cluster
            .add_node(node(2, 32, "production", 1.0).with_kind(NodeKind::Vm))
            .unwrap();
        cluster.add_node(node(3, 16, "dev", 0.5)).unwrap();
        cluster
            .add_node(node(4, 32, "production", 0.25).with_label("maintenance", "true"))
            .unwrap();
        let busy = TaskSpec::new(TaskId(100), Resources::new(8_000, 1_024));
        cluster.reserve(&busy, &Placement::on(NodeId(1))).unwrap();
        cluster
    }

    fn task(cpu_milli: u64) -> TaskSpec {
        TaskSpec::new(TaskId(1), Resources::new(cpu_milli, 1_024))
    }

    fn select(rules: &str, task: &TaskSpec, cluster: &ClusterState) -> Option<NodeId> {
        let mut policy = RulePolicy::from_toml_str(rules).unwrap();
        policy.decide(task, cluster).map(|p| p.node)
    }

    const FILTERS: &str = r#"
        [[filter]]
        require_label = { tier = "production" }
        forbid_label = { maintenance = "true" }
        [[filter]]
        max_cpu_utilization = 0.75
    "#;

    #[test]
    fn without_scorers_the_first_admitted_node_wins() {
        let cluster = cluster();
        // n1 would be at (8 + 4) / 16 = 0.75 of its CPU: allowed.
        assert_eq!(select(FILTERS, &task(4_000), &cluster), Some(NodeId(1)));
        // 5 cores: (8 + 5) / 16 = 0.8125 on n1, too much.
        assert_eq!(select(FILTERS, &task(5_000), &cluster), Some(NodeId(2)));
        // 20 cores fit only on n2 and n4; n4 is under maintenance.
        assert_eq!(select(FILTERS, &task(20_000), &cluster), Some(NodeId(2)));
        // 30 cores: n2 would be at 30 / 32 = 0.94.
        assert_eq!(select(FILTERS, &task(30_000), &cluster), None);
        let nowhere = "[[filter]]\nzone = \"nowhere\"\n";
        assert_eq!(select(nowhere, &task(4_000), &cluster), None);
    }

    #[test]
    fn weighted_scorers_combine_as_computed_by_hand() {
        let cluster = cluster();
        // 4 cores. bestfit: n1 leaves 4/32 → ½·0.125 → 93; n2 leaves 28/32 →
        // ½·0.875 → 56. cheapest, against $4: n1 0, n2 75.
        // Weights 2 : 1 → n1 93 + 0 / 2 = 93, n2 56 + 75 / 2 = 93.5: n2.
        let packing_then_price = format!(
            "{FILTERS}[[score]]\nrule = \"bestfit\"\nweight = 2\n\
             [[score]]\nrule = \"cheapest\"\nweight = 1\n"
        );
        assert_eq!(
            select(&packing_then_price, &task(4_000), &cluster),
            Some(NodeId(2))
        );
        // Weights 3 : 1 → n1 93, n2 56 + 75 / 3 = 81: n1.
        let more_packing = packing_then_price.replace("weight = 2", "weight = 3");
        assert_eq!(
            select(&more_packing, &task(4_000), &cluster),
            Some(NodeId(1))
        );
        // Only the ratio counts.
        let scaled = packing_then_price
            .replace("weight = 2", "weight = 0.02")
            .replace("weight = 1", "weight = 0.01");
        assert_eq!(select(&scaled, &task(4_000), &cluster), Some(NodeId(2)));
        // Without the filters, n3 (dev: bestfit 81, cheapest 87 → 124.5)
        // beats n4 (maintenance: 56 + 93 / 2 = 102.5) and n2 (93.5).
        let unfiltered = packing_then_price.replace(FILTERS, "");
        assert_eq!(select(&unfiltered, &task(4_000), &cluster), Some(NodeId(3)));
    }

    #[test]
    fn equal_totals_go_to_the_earliest_node() {
        // Weights 0.1 : 0.3 scale to 0.33333333333333337 : 1. Node 1 rates
        // cheapest 0 (the highest price), least_tasks 10 (9 tasks of 10):
        // total 10. Node 2 rates cheapest 30 ($0.7 of $1), least_tasks 0:
        // total 30 × 0.33333333333333337 = 10.000000000000002 in floating
        // point, a tie in the weights as written. The tie goes to node 1.
        let mut cluster = ClusterState::new();
        for (id, price) in [(1, 1.0), (2, 0.7)] {
            let node = NodeSpec::new(NodeId(id), Resources::new(64_000, 65_536))
                .with_price_per_hour(price);
            cluster.add_node(node).unwrap();
        }
        for id in 0..19 {
            let busy = TaskSpec::new(TaskId(100 + id), Resources::new(100, 1));
            let node = if id < 9 { NodeId(1) } else { NodeId(2) };
            cluster.reserve(&busy, &Placement::on(node)).unwrap();
        }
        let rules = "[[score]]\nrule = \"cheapest\"\nweight = 0.1\n\
                     [[score]]\nrule = \"least_tasks\"\nweight = 0.3\n";
        assert_eq!(select(rules, &task(1_000), &cluster), Some(NodeId(1)));
        // Identical nodes tie too.
        let mut same = ClusterState::new();
        for id in [5, 2, 9] {
            let node = NodeSpec::new(NodeId(id), Resources::new(8_000, 8_192));
            same.add_node(node).unwrap();
        }
        assert_eq!(select(rules, &task(1_000), &same), Some(NodeId(5)));
    }

    /// A cluster with GPUs of several sizes, and a stream of mixed tasks.
    fn gpu_cluster() -> ClusterState {
        let mut cluster = ClusterState::new();
        for id in 1..=12u64 {
            let gpus = [0, 2, 4, 8][(id % 4) as usize];
            let cores = [16, 32, 64, 96][(id % 3) as usize];
            let mut node = NodeSpec::new(NodeId(id), Resources::new(cores * 1_000, cores * 4_096))
                .with_price_per_hour(id as f64 % 5.0);
            if gpus > 0 {
                node = node.with_gpus(Gpus::new("T4", gpus));
            }
            cluster.add_node(node).unwrap();
        }
        cluster
    }

    fn random_task(id: u64, rng: &mut SeededRng) -> TaskSpec {
        let gpu = match rng.below(4) {
            0 => GpuRequest::NONE,
            1 => GpuRequest::shared(100 * (1 + rng.below(9) as u32)),
            2 => GpuRequest::whole(1),
            _ => GpuRequest::whole(1 + rng.below(4) as u32),
        };
        let cpu_milli = 500 * (1 + rng.below(16));
        let memory_mib = 1_024 * (1 + rng.below(32));
        TaskSpec::new(TaskId(id), Resources::new(cpu_milli, memory_mib)).with_gpu(gpu)
    }

    /// Places a stream of tasks with `reference`, asking `policy` each time
    /// too; returns at which task they first disagreed.
    fn first_disagreement(mut reference: impl Policy, mut policy: impl Policy) -> Option<u64> {
        let mut cluster = gpu_cluster();
        let mut rng = SeededRng::new(7);
        for id in 1..=300 {
            let task = random_task(id, &mut rng);
            let chosen = reference.decide(&task, &cluster);
            if policy.decide(&task, &cluster) != chosen {
                return Some(id);
            }
            if let Some(placement) = chosen {
                cluster.reserve(&task, &placement).unwrap();
            }
        }
        None
    }

    /// Best fit (or spread, `sign` −1) rated in whole percent, ties to the
    /// earliest node: what a single `bestfit` (`spread`) scorer does.
    fn leftover_in_whole_percent(sign: f64) -> impl Policy {
        lepton_core::policy_fn("leftover-percent", move |nodes: &FeasibleNodes<'_>| {
            best_scoring(nodes, |node| {
                let leftover = nodes.leftover_share(node);
                Some((
                    crate::greedy::percent(0.5 - 0.5 * sign + sign * leftover),
                    (),
                ))
            })
            .map(|(node, ())| Placement::on(node.id()))
        })
    }

    #[test]
    fn a_single_scorer_decides_as_the_policy_it_names() {
        let single = |rule: &str| {
            RulePolicy::from_toml_str(&format!("[[score]]\nrule = \"{rule}\"\nweight = 0.7\n"))
                .unwrap()
        };
        assert_eq!(
            first_disagreement(leftover_in_whole_percent(-1.0), single("bestfit")),
            None
        );
        assert_eq!(
            first_disagreement(leftover_in_whole_percent(1.0), single("spread")),
            None
        );
        assert_eq!(first_disagreement(Balanced, single("balanced")), None);
        assert_eq!(
            first_disagreement(GpuPacking::default(), single("gpu_packing")),
            None
        );
        // And the stream does tell policies apart, whole percent or not.
        assert!(first_disagreement(BestFit, single("spread")).is_some());
        assert!(first_disagreement(Spread, single("bestfit")).is_some());
    }

    const PARITY_TOML: &str = r#"
        [[filter]]
        forbid_label = { maintenance = "true" }
        max_cpu_utilization = 0.9
        max_gpu_utilization = 0.95
        [[filter]]
        node_kind = ["server", "vm"]
        [[score]]
        rule = "bestfit"
        weight = 2.5
        [[score]]
        rule = "cheapest"
        [[score]]
        rule = "least_tasks"
        weight = 0.5
        [[score]]
        rule = "gpu_packing"
        weight = 1.5
    "#;

    const PARITY_JSON: &str = r#"{
        "filter": [
            { "forbid_label": { "maintenance": "true" },
              "max_cpu_utilization": 0.9,
              "max_gpu_utilization": 0.95 },
            { "node_kind": ["server", "vm"] }
        ],
        "score": [
            { "rule": "bestfit", "weight": 2.5 },
            { "rule": "cheapest" },
            { "rule": "least_tasks", "weight": 0.5 },
            { "rule": "gpu_packing", "weight": 1.5 }
        ]
    }"#;

    #[test]
    fn toml_and_json_rules_decide_alike() {
        let from_toml = RulePolicy::from_toml_str(PARITY_TOML).unwrap();
        let from_json = RulePolicy::from_json_str(PARITY_JSON).unwrap();
        assert_eq!(from_toml.filters.0.len(), 4);
        assert_eq!(from_toml.scorers, from_json.scorers);
        for filter in &from_json.filters.0 {
            assert!(from_toml.filters.0.contains(filter), "{filter:?}");
        }
        assert_eq!(first_disagreement(from_toml, from_json), None);
    }

    #[test]
    fn the_example_rules_file_parses_and_decides() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules.toml");
        let mut policy = RulePolicy::from_path(&path).unwrap();
        assert_eq!((policy.filters.0.len(), policy.scorers.len()), (5, 3));
        // 4 cores, weights 1 : ½ : ¼ (bestfit, cheapest, balanced).
        // n1: 93 + 0 + ¼·68 (CPU 0.75, memory 0.125) = 110.
        // n2: 56 + ½·75 + ¼·95 (CPU 0.125, memory 0.03125) = 117.25.
        assert_eq!(
            policy.decide(&task(4_000), &cluster()).map(|p| p.node),
            Some(NodeId(2))
        );
    }

    /// A file in the temporary directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("lepton-rules-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn from_path_reads_by_extension() {
        let toml = TempFile::new("ok.toml", PARITY_TOML);
        let json = TempFile::new("ok.JSON", PARITY_JSON);
        assert_eq!(
            RulePolicy::from_path(&toml.0).unwrap(),
            RulePolicy::from_toml_str(PARITY_TOML).unwrap()
        );
        assert_eq!(
            RulePolicy::from_path(&json.0).unwrap(),
            RulePolicy::from_json_str(PARITY_JSON).unwrap()
        );
        // TOML in a .json file is read as JSON, and fails on its line 2.
        let swapped = TempFile::new("swapped.json", PARITY_TOML);
        let error = RulePolicy::from_path(&swapped.0).unwrap_err();
        assert!(
            matches!(&error, Error::RuleConfig { origin, line: 2, .. } if *origin == swapped.0.display().to_string()),
            "{error}"
        );
        let bad = TempFile::new("bad.toml", "[[score]]\nrule = \"cheapest\"\nweight = -2\n");
        assert_eq!(
            RulePolicy::from_path(&bad.0).unwrap_err().to_string(),
            format!(
                "{}:3: weight must be a finite number above 0, got -2",
                bad.0.display()
            )
        );
    }

    #[test]
    fn from_path_rejects_other_extensions_and_missing_files() {
        for name in ["rules.yaml", "rules", "rules.toml.bak"] {
            let path = PathBuf::from(name);
            assert_eq!(
                RulePolicy::from_path(&path).unwrap_err().to_string(),
                format!("rules file {name:?} must end in .toml or .json")
            );
        }
        let missing = std::env::temp_dir().join("lepton-no-such-rules.toml");
        let error = RulePolicy::from_path(&missing).unwrap_err();
        assert!(
            matches!(&error, Error::RulesFileUnreadable { path, .. } if *path == missing.display().to_string()),
            "{error}"
        );
        assert!(error.to_string().starts_with(&format!(
            "cannot read rules file {:?}: ",
            missing.display().to_string()
        )));
        let binary = TempFile::new("binary.toml", "");
        std::fs::write(&binary.0, [0xff, 0xfe, b'\n']).unwrap();
        assert!(matches!(
            RulePolicy::from_path(&binary.0),
            Err(Error::RulesFileUnreadable { .. })
        ));
    }

    /// Pieces of rules files, good and bad, for the no-panic property.
    const PIECES: &[&str] = &[
        "[[filter]]",
        "[[score]]",
        "[filter]",
        "\n",
        " ",
        "=",
        ":",
        ",",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "rule",
        "weight",
        "\"bestfit\"",
        "\"cheapest\"",
        "\"nope\"",
        "require_label",
        "forbid_label",
        "max_cpu_utilization",
        "max_gpu_utilization",
        "node_kind",
        "zone",
        "\"vm\"",
        "\"a\"",
        "0.5",
        "1.5",
        "-1",
        "0",
        "nan",
        "inf",
        "1e999",
        "true",
        "#",
        "\"filter\"",
        "\"score\"",
        "\"rule\"",
        "\"weight\"",
        "é",
        "\u{0}",
        "\\",
    ];

    proptest! {
        #[test]
        fn no_input_panics_and_every_error_line_exists(
            pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..60)
        ) {
            let text = pieces.concat();
            let lines = text.lines().count().max(1);
            for result in [RulePolicy::from_toml_str(&text), RulePolicy::from_json_str(&text)] {
                if let Err(Error::RuleConfig { line, .. }) = result {
                    prop_assert!((1..=lines).contains(&line), "line {line} of {lines}: {text:?}");
                }
            }
        }

        #[test]
        fn no_text_at_all_panics(text in ".*") {
            let _ = RulePolicy::from_toml_str(&text);
            let _ = RulePolicy::from_json_str(&text);
        }
    }
}
