//! Drives a `CoreScheduler` (heartbeat detection, preemption and the
//! rebalancer all on) with an arbitrary sequence of submissions, cycles,
//! reports naming current and stale runs, node failures, heartbeats, drains
//! and clock steps, and checks the scheduler's invariants after every one
//! (the same checker as `lepton-core/tests/scheduler_props.rs`).
//!
//! Half the inputs bound the cycles (`max_tasks_per_cycle` of 1 to 8).
//!
//! At the end every node comes back and the clock runs on while each placed
//! run completes: every task must then have ended, unless it asks for more
//! than any node offers. Nothing may be lost.

#![no_main]

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Arbitrary;
use lepton_core::clock::ManualClock;
use lepton_core::model::{Priority, TaskKind};
use lepton_core::scheduler::{RebalanceConfig, SchedulerConfig, TaskState};
use lepton_core::{
    CoreScheduler, Event, GpuRequest, Gpus, NodeId, NodeSpec, Resources, Run, Scheduler, TaskId,
    TaskSpec,
};
use lepton_test_support::invariants;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    policy: u8,
    /// Odd: cycles of at most `cycle_limit / 2 % 8 + 1` tasks.
    cycle_limit: u8,
    nodes: Vec<(u8, u8)>,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Submit {
        cpu: u8,
        gpu: u8,
        priority: u8,
        service: bool,
    },
    Schedule,
    Complete {
        task: u8,
        stale: bool,
    },
    Fail {
        task: u8,
        launch: bool,
    },
    Cancel {
        task: u8,
    },
    NodeDown {
        node: u8,
    },
    NodeUp {
        node: u8,
    },
    Cordon {
        node: u8,
    },
    Uncordon {
        node: u8,
    },
    Heartbeat {
        node: u8,
    },
    Drain {
        node: u8,
    },
    Advance {
        secs: u8,
    },
}

const POLICIES: [&str; 5] = ["bestfit", "firstfit", "spread", "random", "balanced"];

struct Harness {
    scheduler: CoreScheduler,
    clock: ManualClock,
    nodes: Vec<NodeId>,
    submitted: Vec<TaskId>,
}

impl Harness {
    fn task(&self, i: u8) -> TaskId {
        self.submitted
            .get(usize::from(i) % (self.submitted.len() + 1))
            .copied()
            .unwrap_or(TaskId(u64::MAX))
    }

    fn node(&self, i: u8) -> NodeId {
        self.nodes
            .get(usize::from(i) % (self.nodes.len() + 1))
            .copied()
            .unwrap_or(NodeId(u64::MAX))
    }

    fn run_of(&self, task: TaskId, stale: bool) -> Run {
        let current = self
            .scheduler
            .current_run(task)
            .unwrap_or(Run { task, attempt: 0 });
        Run {
            task,
            attempt: current.attempt.saturating_sub(u32::from(stale)),
        }
    }

    fn apply(&mut self, op: &Op) {
        // Results are checked through the invariants: a refused event must
        // change nothing they can see, an accepted one must keep them.
        match *op {
            Op::Submit {
                cpu,
                gpu,
                priority,
                service,
            } => {
                let id = TaskId(self.submitted.len() as u64);
                let request = Resources::new(u64::from(cpu) * 250, u64::from(cpu) * 512);
                let gpu = match gpu % 4 {
                    0 | 1 => GpuRequest::NONE,
                    2 => GpuRequest::shared(u32::from(gpu) * 4 % 1_001),
                    _ => GpuRequest::whole(u32::from(gpu % 3)),
                };
                let kind = if service {
                    TaskKind::Service
                } else {
                    TaskKind::Batch
                };
                let spec = TaskSpec::new(id, request)
                    .with_gpu(gpu)
                    .with_priority(Priority(priority))
                    .with_kind(kind);
                if self.scheduler.submit(&spec).is_ok() {
                    self.submitted.push(id);
                }
            }
            Op::Schedule => {
                // Nothing is launched here: the runs stay running until an op ends them.
                let _assigned = self.scheduler.schedule();
            }
            Op::Complete { task, stale } => {
                let run = self.run_of(self.task(task), stale);
                let _ = self.scheduler.complete(run);
            }
            Op::Fail { task, launch } => {
                let run = self.run_of(self.task(task), false);
                let event = if launch {
                    Event::LaunchFailed {
                        run,
                        reason: "fuzz".into(),
                    }
                } else {
                    Event::TaskFailed {
                        run,
                        reason: "fuzz".into(),
                    }
                };
                let _ = self.scheduler.handle(event);
            }
            Op::Cancel { task } => {
                let _ = self.scheduler.cancel(self.task(task));
            }
            Op::NodeDown { node } => {
                let _ = self.scheduler.handle(Event::NodeDown(self.node(node)));
            }
            Op::NodeUp { node } => {
                let _ = self.scheduler.handle(Event::NodeUp(self.node(node)));
            }
            Op::Cordon { node } => {
                let _ = self.scheduler.cordon(self.node(node));
            }
            Op::Uncordon { node } => {
                let _ = self.scheduler.uncordon(self.node(node));
            }
            Op::Heartbeat { node } => {
                let _ = self.scheduler.handle(Event::Heartbeat(self.node(node)));
            }
            Op::Drain { node } => {
                let _ = self.scheduler.drain(self.node(node));
            }
            Op::Advance { secs } => self.clock.advance(Duration::from_secs(u64::from(secs))),
        }
    }

    /// Every node back and beating, cycles until nothing more can end.
    fn settle(&mut self) {
        for &node in &self.nodes {
            let _ = self.scheduler.handle(Event::NodeUp(node));
            let _ = self.scheduler.uncordon(node);
        }
        for &task in &self.submitted {
            if let Some(TaskState::Running { .. }) = self.scheduler.task_state(task) {
                let run = self.run_of(task, false);
                self.scheduler
                    .complete(run)
                    .expect("the current run completes");
            }
        }
        for _ in 0..200 {
            self.clock.advance(Duration::from_secs(600));
            for &node in &self.nodes {
                let _ = self.scheduler.handle(Event::Heartbeat(node));
            }
            loop {
                for assignment in self.scheduler.schedule() {
                    self.scheduler
                        .complete(assignment.run())
                        .expect("a run just placed completes");
                }
                invariants::check_invariants(&self.scheduler, &self.submitted);
                if !self.scheduler.cycle_cut_short() {
                    break;
                }
            }
        }
        let cluster = self.scheduler.cluster();
        for &task in &self.submitted {
            let state = self.scheduler.task_state(task).expect("never lost");
            if state.is_terminal() {
                continue;
            }
            let spec = self.scheduler.task(task).expect("never lost");
            let fits_somewhere = cluster.nodes().iter().any(|node| {
                let capacity = &node.spec().capacity;
                capacity.fits(&spec.request) && node.spec().gpus.count >= spec.gpu.count
            });
            assert!(
                !fits_somewhere,
                "{task} is {state:?} though an empty node would take it"
            );
        }
    }
}

fuzz_target!(|input: Input| {
    let clock = ManualClock::new();
    let mut config = SchedulerConfig::default();
    config.heartbeat_timeout = Some(Duration::from_secs(30));
    config.rebalance = RebalanceConfig::new(Duration::from_secs(60), 0.3, 0.7, 3).ok();
    config.max_tasks_per_cycle = NonZeroUsize::new(usize::from(input.cycle_limit / 2 % 8) + 1)
        .filter(|_| input.cycle_limit % 2 == 1);
    let name = POLICIES[usize::from(input.policy) % POLICIES.len()];
    let Ok(policy) = lepton_policies::by_name(name) else {
        return;
    };
    let scheduler = CoreScheduler::builder(policy)
        .clock(Arc::new(clock.clone()))
        .config(config)
        .build();
    let mut harness = Harness {
        scheduler,
        clock,
        nodes: Vec::new(),
        submitted: Vec::new(),
    };
    for (i, &(cpu, gpus)) in input.nodes.iter().take(8).enumerate() {
        let id = NodeId(i as u64);
        let cores = u64::from(cpu % 16 + 1);
        let mut spec = NodeSpec::new(id, Resources::new(cores * 1_000, cores * 2_048));
        if gpus % 9 > 0 {
            spec = spec.with_gpus(Gpus::new("V100", u32::from(gpus % 9)));
        }
        if harness.scheduler.add_node(&spec).is_ok() {
            harness.nodes.push(id);
        }
    }
    for op in input.ops.iter().take(300) {
        harness.apply(op);
        invariants::check_invariants(&harness.scheduler, &harness.submitted);
    }
    harness.settle();
});
