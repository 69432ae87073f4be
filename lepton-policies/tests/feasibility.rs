//! A rules file's filters hold wherever the scheduler places a task: normal
//! placement, drains, preemption and the rebalancer all go through the one
//! feasibility stage, so a rule that forbids a zone is never broken.
//!
//! - a property test: random runs (nodes in two zones, submissions at mixed
//!   priorities and QoS classes, completions, failures, cordons, drains,
//!   nodes going down and up, rebalancing, preemption on), with a rules file
//!   that allows zone `a` only; after every step no task runs in zone `b`
//!   (and, with a CPU cap in the rules, no node is used beyond it);
//! - a scripted run in the chaos checker's spirit: everything the scheduler
//!   handed out goes into a log, and a checker that reads only the log and
//!   the node specs finds every placement in a forbidden zone;
//! - preemption with a cap on use, which counts what eviction frees.

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::model::{Priority, QosClass};
use lepton_core::scheduler::{RebalanceConfig, SchedulerConfig, TaskState};
use lepton_core::{
    Assignment, CoreScheduler, Event, NodeId, NodeSpec, Policy, Resources, Run, Scheduler, TaskId,
    TaskSpec,
};
use lepton_policies::{FirstFit, RulePolicy};
use proptest::prelude::*;

/// Zone `a` only, first fit among its nodes.
const ZONE_A: &str = "[[filter]]\nzone = [\"a\"]\n";

/// Zone `a` only, CPU used at most 90 % once placed, spreading.
const ZONE_A_CAPPED: &str = "[[filter]]\nzone = [\"a\"]\nmax_cpu_utilization = 0.9\n\
                             [[score]]\nrule = \"spread\"\n";

fn rules(text: &str) -> Box<dyn Policy> {
    Box::new(RulePolicy::from_toml_str(text).unwrap())
}

fn node(id: u64, cores: u64, zone: &str) -> NodeSpec {
    NodeSpec::new(NodeId(id), Resources::new(cores * 1_000, 65_536)).with_zone(zone)
}

fn task(id: u64, cores: u64, priority: u8) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(cores * 1_000, 1_024))
        .with_priority(Priority(priority))
}

fn scheduler(policy: Box<dyn Policy>) -> (CoreScheduler, ManualClock) {
    let clock = ManualClock::new();
    let rebalance = RebalanceConfig::new(Duration::from_secs(10), 0.5, 0.6, 5).unwrap();
    let mut config = SchedulerConfig::default();
    config.rebalance = Some(rebalance);
    let scheduler = CoreScheduler::builder(policy)
        .clock(Arc::new(clock.clone()))
        .config(config)
        .build();
    (scheduler, clock)
}

#[derive(Debug, Clone)]
enum Op {
    AddNode { zone_b: bool, cores: u64 },
    Submit { cores: u64, priority: u8, qos: u8 },
    Schedule { secs: u64 },
    Complete(usize),
    Fail(usize),
    Cordon(usize),
    Uncordon(usize),
    Drain(usize),
    Down(usize),
    Up(usize),
    Rebalance,
}

fn op() -> impl Strategy<Value = Op> {
    let index = any::<usize>;
    prop_oneof![
        1 => (any::<bool>(), 2u64..=16).prop_map(|(zone_b, cores)| Op::AddNode { zone_b, cores }),
        8 => (1u64..=6, 0u8..4, 0u8..4).prop_map(|(cores, priority, qos)| Op::Submit {
            cores,
            priority: [10, 50, 100, 200][priority as usize],
            qos,
        }),
        5 => (0u64..20).prop_map(|secs| Op::Schedule { secs }),
        3 => index().prop_map(Op::Complete),
        1 => index().prop_map(Op::Fail),
        1 => index().prop_map(Op::Cordon),
        1 => index().prop_map(Op::Uncordon),
        1 => index().prop_map(Op::Drain),
        1 => index().prop_map(Op::Down),
        1 => index().prop_map(Op::Up),
        2 => Just(Op::Rebalance),
    ]
}

/// A random run and what the test itself knows of it: node zones and
/// capacities from the specs it made, task requests from the specs it
/// submitted — never the scheduler's own bookkeeping.
struct World {
    scheduler: CoreScheduler,
    clock: ManualClock,
    zones: HashMap<NodeId, String>,
    cpu_capacity: HashMap<NodeId, u64>,
    cpu_request: HashMap<TaskId, u64>,
    nodes: Vec<NodeId>,
    tasks: Vec<TaskId>,
    cpu_cap: Option<f64>,
}

impl World {
    fn new(capped: bool) -> Self {
        let (scheduler, clock) = scheduler(rules(if capped { ZONE_A_CAPPED } else { ZONE_A }));
        let mut world = World {
            scheduler,
            clock,
            zones: HashMap::new(),
            cpu_capacity: HashMap::new(),
            cpu_request: HashMap::new(),
            nodes: Vec::new(),
            tasks: Vec::new(),
            cpu_cap: capped.then_some(0.9),
        };
        for (zone_b, cores) in [(false, 4), (false, 4), (true, 8), (true, 8)] {
            world.add_node(zone_b, cores);
        }
        world
    }

    fn add_node(&mut self, zone_b: bool, cores: u64) {
        let id = NodeId(self.nodes.len() as u64 + 1);
        let zone = if zone_b { "b" } else { "a" };
        self.scheduler.add_node(&node(id.0, cores, zone)).unwrap();
        self.zones.insert(id, zone.to_owned());
        self.cpu_capacity.insert(id, cores * 1_000);
        self.nodes.push(id);
    }

    fn node_at(&self, index: usize) -> NodeId {
        self.nodes[index % self.nodes.len()]
    }

    fn running(&self) -> Vec<(TaskId, NodeId)> {
        self.tasks
            .iter()
            .filter_map(|&task| match self.scheduler.task_state(task) {
                Some(TaskState::Running { node }) => Some((task, *node)),
                _ => None,
            })
            .collect()
    }

    fn running_run(&self, index: usize) -> Option<Run> {
        let running = self.running();
        let (task, _) = running.get(index % running.len().max(1))?;
        self.scheduler.current_run(*task)
    }

    /// Every assignment handed out lands in zone `a`.
    fn take(&self, assignments: &[Assignment]) {
        for assignment in assignments {
            assert_eq!(
                self.zones[&assignment.node], "a",
                "{assignment:?} lands in a forbidden zone"
            );
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::AddNode { zone_b, cores } => self.add_node(zone_b, cores),
            Op::Submit {
                cores,
                priority,
                qos,
            } => {
                let id = TaskId(self.tasks.len() as u64 + 1);
                let qos = [
                    QosClass::BestEffort,
                    QosClass::Burstable,
                    QosClass::LatencySensitive,
                    QosClass::Guaranteed,
                ][qos as usize];
                let spec = task(id.0, cores, priority).with_qos(qos);
                self.scheduler.submit(&spec).unwrap();
                self.cpu_request.insert(id, cores * 1_000);
                self.tasks.push(id);
            }
            Op::Schedule { secs } => {
                self.clock.advance(Duration::from_secs(secs));
                let assignments = self.scheduler.schedule();
                self.take(&assignments);
            }
            Op::Complete(index) => {
                if let Some(run) = self.running_run(index) {
                    self.scheduler.complete(run).unwrap();
                }
            }
            Op::Fail(index) => {
                if let Some(run) = self.running_run(index) {
                    self.scheduler.fail(run, "crashed").unwrap();
                }
            }
            // A down node refuses these with a typed error; that is fine.
            Op::Cordon(index) => {
                let _ = self.scheduler.cordon(self.node_at(index));
            }
            Op::Uncordon(index) => {
                let _ = self.scheduler.uncordon(self.node_at(index));
            }
            Op::Drain(index) => {
                if let Ok(drained) = self.scheduler.drain(self.node_at(index)) {
                    self.take(&drained.moved);
                }
            }
            Op::Down(index) => {
                let _ = self.scheduler.handle(Event::NodeDown(self.node_at(index)));
            }
            Op::Up(index) => {
                let _ = self.scheduler.handle(Event::NodeUp(self.node_at(index)));
            }
            Op::Rebalance => {
                let moves = self.scheduler.rebalance();
                self.take(&moves);
            }
        }
    }

    /// No task runs in zone `b`, and no node is used beyond the cap.
    fn check(&self) {
        let mut cpu_used: HashMap<NodeId, u64> = HashMap::new();
        for (task, node) in self.running() {
            assert_eq!(self.zones[&node], "a", "{task} runs on {node}, in zone b");
            *cpu_used.entry(node).or_default() += self.cpu_request[&task];
        }
        if let Some(cap) = self.cpu_cap {
            for (node, used) in cpu_used {
                let share = used as f64 / self.cpu_capacity[&node] as f64;
                assert!(share <= cap, "{node} is {share:.3} used, above {cap}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_path_places_a_task_where_the_rules_forbid(
        capped in any::<bool>(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut world = World::new(capped);
        for op in &ops {
            world.apply(op);
            world.check();
        }
    }
}

/// One entry of the scripted run's log.
#[derive(Debug, Clone)]
enum Record {
    /// The rule policy took over: every later start must obey it.
    RulesInstalled,
    /// The scheduler handed out a start of `run` on `node`.
    Started { run: Run, node: NodeId },
    /// A run was stopped: evicted, moved, completed, failed.
    Stopped(Run),
    /// A node went down with every run on it.
    NodeDown(NodeId),
}

/// What the checker rebuilt from the log.
#[derive(Debug, Default)]
struct Verdict {
    /// Starts after the rules were installed on a node of another zone.
    forbidden: Vec<(Run, NodeId)>,
    /// The runs live at the end, and where.
    live: BTreeMap<Run, NodeId>,
}

/// Replays `log` over the node specs alone.
fn check(nodes: &[NodeSpec], allowed_zones: &[&str], log: &[Record]) -> Verdict {
    let zone: HashMap<NodeId, Option<&str>> =
        nodes.iter().map(|n| (n.id, n.zone.as_deref())).collect();
    let mut verdict = Verdict::default();
    let mut enforced = false;
    for record in log {
        match *record {
            Record::RulesInstalled => enforced = true,
            Record::Started { run, node } => {
                let allowed = zone[&node].is_some_and(|z| allowed_zones.contains(&z));
                if enforced && !allowed {
                    verdict.forbidden.push((run, node));
                }
                verdict.live.insert(run, node);
            }
            Record::Stopped(run) => {
                verdict.live.remove(&run);
            }
            Record::NodeDown(node) => verdict.live.retain(|_, n| *n != node),
        }
    }
    verdict
}

/// The scripted run: the scheduler, its clock and the log.
struct Script {
    scheduler: CoreScheduler,
    clock: ManualClock,
    log: Vec<Record>,
}

impl Script {
    fn record(&mut self, assignments: &[Assignment]) {
        for assignment in assignments {
            for &run in &assignment.evicts {
                self.log.push(Record::Stopped(run));
            }
            self.log.push(Record::Started {
                run: assignment.run(),
                node: assignment.node,
            });
        }
    }

    fn schedule_at(&mut self, secs: u64) {
        self.clock.set(Timestamp::from_secs(secs));
        let assignments = self.scheduler.schedule();
        self.record(&assignments);
    }

    fn submit(&mut self, specs: impl IntoIterator<Item = TaskSpec>) {
        for spec in specs {
            self.scheduler.submit(&spec).unwrap();
        }
    }

    fn complete(&mut self, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            let run = self.scheduler.current_run(TaskId(id)).unwrap();
            self.scheduler.complete(run).unwrap();
            self.log.push(Record::Stopped(run));
        }
    }

    fn cordon(&mut self, ids: &[u64], cordoned: bool) {
        for &id in ids {
            if cordoned {
                self.scheduler.cordon(NodeId(id)).unwrap();
            } else {
                self.scheduler.uncordon(NodeId(id)).unwrap();
            }
        }
    }
}

#[test]
fn a_scripted_run_never_places_anything_in_the_forbidden_zone() {
    // Zone a: nodes 1 and 2; zone b: nodes 3 and 4; 4 cores each.
    let nodes = [
        node(1, 4, "a"),
        node(2, 4, "a"),
        node(3, 4, "b"),
        node(4, 4, "b"),
    ];
    let (mut scheduler, clock) = scheduler(Box::new(FirstFit));
    for spec in &nodes {
        scheduler.add_node(spec).unwrap();
    }
    let mut script = Script {
        scheduler,
        clock,
        log: Vec::new(),
    };
    // Before the rules: one-core tasks fill zone a, two-core tasks zone b.
    script.cordon(&[3, 4], true);
    script.submit((1..=8).map(|id| task(id, 1, 10)));
    script.schedule_at(0);
    script.cordon(&[3, 4], false);
    script.cordon(&[1, 2], true);
    script.submit((9..=12).map(|id| task(id, 2, 10)));
    script.schedule_at(0);
    script.cordon(&[1, 2], false);

    // Zone b is retired: from now on only zone a may take work.
    script.scheduler.set_policy(rules(ZONE_A));
    script.log.push(Record::RulesInstalled);
    // Preemption: one victim would do in zone b, two are needed in zone a.
    script.submit([task(20, 2, 200)]);
    script.schedule_at(0);
    // Node 4 (zone b) empties and node 2 cools to 25 %; the evicted tasks
    // come back in between.
    script.complete([11, 12, 5, 6, 7]);
    script.schedule_at(30);
    script.complete([8, 1]);
    // The rebalancer moves work off node 1 (full): node 4 is the coldest,
    // node 2 the coldest it may use.
    script.schedule_at(60);
    // A drain, then a node failure and recovery.
    let drained = script.scheduler.drain(NodeId(1)).unwrap();
    script.record(&drained.moved);
    for run in drained.requeued {
        script.log.push(Record::Stopped(run));
    }
    script.scheduler.handle(Event::NodeDown(NodeId(2))).unwrap();
    script.log.push(Record::NodeDown(NodeId(2)));
    script.schedule_at(70);
    script.scheduler.handle(Event::NodeUp(NodeId(2))).unwrap();
    script.cordon(&[1], false);
    script.schedule_at(100);

    let report = script.scheduler.report();
    assert!(report.preemptions >= 1, "{report:?}");
    assert!(report.moves >= 2, "a rebalance and a drain: {report:?}");
    let verdict = check(&nodes, &["a"], &script.log);
    assert_eq!(verdict.forbidden, [], "placements in zone b");
    // The log is complete: it agrees with the scheduler on what runs where.
    let running: BTreeMap<Run, NodeId> = (1..=20)
        .filter_map(|id| match script.scheduler.task_state(TaskId(id))? {
            TaskState::Running { node } => Some((script.scheduler.current_run(TaskId(id))?, *node)),
            _ => None,
        })
        .collect();
    assert_eq!(verdict.live, running);
}

#[test]
fn preemption_meets_a_cap_on_use_once_the_victims_are_gone() {
    // Node 1 (10 cores) runs two tasks of 4 cores placed before the rules.
    let (mut scheduler, _clock) = scheduler(Box::new(FirstFit));
    scheduler.add_node(&node(1, 10, "a")).unwrap();
    scheduler.submit(&task(1, 4, 10)).unwrap();
    scheduler.submit(&task(2, 4, 10)).unwrap();
    assert_eq!(scheduler.schedule().len(), 2);
    let runs = [1, 2].map(|id| scheduler.current_run(TaskId(id)).unwrap());

    // At most 70 % CPU once placed. Evicting one task makes room for 4
    // cores, but leaves the node 80 % used: both must go.
    scheduler.set_policy(rules("[[filter]]\nmax_cpu_utilization = 0.7\n"));
    scheduler.submit(&task(9, 4, 200)).unwrap();
    let assignments = scheduler.schedule();
    assert_eq!(assignments[0].task, TaskId(9));
    assert_eq!(assignments[0].evicts, runs);
    let node = scheduler.cluster().node(NodeId(1)).unwrap();
    assert!(node.utilization().cpu <= 0.7, "{:?}", node.utilization());
}
