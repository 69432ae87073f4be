//! The event log of a simulated world and the independent checker that
//! replays it (the chaos runs and the data-center scenario keep one).
//!
//! The log records what the simulated world did (runs started on nodes,
//! stopped, crashed with their node) and what the scheduler acknowledged (a
//! completion accepted, a task given up). The checker rebuilds every node's
//! load and every task's runs from the log alone — it never reads the
//! scheduler's counters — and counts violations.

use std::collections::{HashMap, HashSet};

use lepton_core::admission::QueueSpec;

use lepton_core::{NodeId, NodeSpec};
use lepton_core::{Run, TaskId, TaskSpec};

/// One entry of the log.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    /// A task was submitted.
    Submitted(TaskId),
    /// The world started `run` on `node`, holding these GPUs.
    Started {
        run: Run,
        node: NodeId,
        gpus: Vec<u32>,
    },
    /// The world stopped a run (evicted, or killed with its node).
    Stopped(Run),
    /// The world saw a run finish, and the scheduler accepted the completion.
    Completed(Run),
    /// The scheduler gave a task up: failed after its retries.
    GaveUp(TaskId),
    /// The run ended at its time limit with the task still held by the
    /// scheduler (queued, waiting to be retried, or running).
    Unfinished(TaskId),
    /// The scheduler placed `run` (its launch may still fail).
    Placed(Run),
    /// The scheduler let `run` go: it accepted a report of its end, or
    /// told the world to stop it.
    Released(Run),
    /// A scheduling cycle's placements were all launched (or failed).
    Cycle,
}

/// What the checker found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) completed: usize,
    pub(crate) failed_after_retries: usize,
    /// Tasks the run's end found still queued, retrying or running.
    pub(crate) unfinished: usize,
    /// Tasks that ended neither completed, failed nor unfinished: the
    /// scheduler no longer had them.
    pub(crate) lost: usize,
    /// Tasks that completed more than once, ran two runs at once, or
    /// completed a run that was not running.
    pub(crate) ran_twice: usize,
    /// Moments a node (or one of its GPUs) held more than its capacity.
    pub(crate) overcommitted: usize,
}

#[derive(Debug, Default)]
struct TaskLog {
    live_runs: u32,
    completions: u32,
    gave_up: bool,
    unfinished: bool,
    twice: bool,
}

#[derive(Debug)]
struct NodeLoad {
    cpu_milli: u64,
    memory_mib: u64,
    gpu_milli: Vec<u64>,
}

/// Replays `log` over the nodes and tasks the run started with.
pub(crate) fn check(nodes: &[NodeSpec], tasks: &[TaskSpec], log: &[Record]) -> Verdict {
    let capacity: HashMap<NodeId, &NodeSpec> = nodes.iter().map(|n| (n.id, n)).collect();
    let specs: HashMap<TaskId, &TaskSpec> = tasks.iter().map(|t| (t.id, t)).collect();
    let mut load: HashMap<NodeId, NodeLoad> = nodes
        .iter()
        .map(|n| {
            let gpus = vec![0; n.gpus.count as usize];
            let empty = NodeLoad {
                cpu_milli: 0,
                memory_mib: 0,
                gpu_milli: gpus,
            };
            (n.id, empty)
        })
        .collect();
    let mut runs: HashMap<Run, (NodeId, Vec<u32>)> = HashMap::new();
    let mut logs: HashMap<TaskId, TaskLog> = HashMap::new();
    let mut verdict = Verdict::default();

    for record in log {
        match record {
            Record::Submitted(task) => {
                logs.entry(*task).or_default();
            }
            Record::Started { run, node, gpus } => {
                let (Some(spec), Some(node_spec), Some(held)) =
                    (specs.get(&run.task), capacity.get(node), load.get_mut(node))
                else {
                    verdict.overcommitted += 1;
                    continue;
                };
                held.cpu_milli += spec.request.cpu_milli;
                held.memory_mib += spec.request.memory_mib;
                let mut gpu_over = gpus.len() != spec.gpu.count as usize;
                for &gpu in gpus {
                    match held.gpu_milli.get_mut(gpu as usize) {
                        Some(milli) => {
                            *milli += u64::from(spec.gpu.milli_per_gpu);
                            gpu_over |= *milli > 1_000;
                        }
                        None => gpu_over = true,
                    }
                }
                let cap = &node_spec.capacity;
                if gpu_over || held.cpu_milli > cap.cpu_milli || held.memory_mib > cap.memory_mib {
                    verdict.overcommitted += 1;
                }
                let task = logs.entry(run.task).or_default();
                task.live_runs += 1;
                task.twice |= task.live_runs > 1 || task.completions > 0;
                runs.insert(*run, (*node, gpus.clone()));
            }
            Record::Stopped(run) => end_run(*run, &mut runs, &mut load, &specs, &mut logs),
            Record::Completed(run) => {
                let was_running = runs.contains_key(run);
                end_run(*run, &mut runs, &mut load, &specs, &mut logs);
                let task = logs.entry(run.task).or_default();
                task.completions += 1;
                task.twice |= !was_running || task.completions > 1;
            }
            Record::GaveUp(task) => logs.entry(*task).or_default().gave_up = true,
            Record::Unfinished(task) => logs.entry(*task).or_default().unfinished = true,
            Record::Placed(_) | Record::Released(_) | Record::Cycle => {}
        }
    }
    for spec in tasks {
        let Some(task) = logs.get(&spec.id) else {
            verdict.lost += 1;
            continue;
        };
        match (task.completions > 0, task.gave_up, task.unfinished) {
            (true, false, false) => verdict.completed += 1,
            (false, true, false) => verdict.failed_after_retries += 1,
            (false, false, true) => verdict.unfinished += 1,
            // Two ends at once (done and failed, say), or none: it vanished.
            _ => verdict.lost += 1,
        }
        verdict.ran_twice += usize::from(task.twice);
    }
    verdict
}

/// What the tenancy check found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TenancyVerdict {
    /// Cycles that placed members of a gang without leaving, by the
    /// scheduler's own placements, at least its `min_available` placed
    /// (a gang none of whose members had completed): gangs partly started.
    pub(crate) gangs_partly_started: usize,
    /// Cycle ends at which a queue's running tasks (and those of the
    /// queues below it) held more CPU or memory than its maximum.
    pub(crate) queues_over_maximum: usize,
}

/// Replays `log` for the gangs and queues of `tasks`: at the end of each
/// cycle, every gang a cycle placed members of has at least its
/// `min_available` placed and not let go, and no queue of `queues` has
/// running tasks above its maximum. Placements are counted from what the
/// scheduler decided and let go (`Placed`, `Released`, `Completed`), the
/// queues from what really ran (`Started`, `Stopped`, `Completed`).
pub(crate) fn check_tenancy(
    tasks: &[TaskSpec],
    queues: &[QueueSpec],
    log: &[Record],
) -> TenancyVerdict {
    let specs: HashMap<TaskId, &TaskSpec> = tasks.iter().map(|t| (t.id, t)).collect();
    let gang_of = |task: &TaskId| specs.get(task).and_then(|s| s.gang.as_ref());
    let min: HashMap<&str, usize> = tasks
        .iter()
        .filter_map(|t| t.gang.as_ref())
        .map(|g| (g.name.as_str(), g.min_available as usize))
        .collect();
    // The declared queues each task counts in: its own and those above.
    let counted_in = |spec: &TaskSpec| -> Vec<usize> {
        let Some(queue) = spec.queue.as_deref() else {
            return Vec::new();
        };
        (0..queues.len())
            .filter(|&i| {
                let name = &queues[i].name;
                queue == name || queue.starts_with(&format!("{name}/"))
            })
            .collect()
    };
    let mut usage = vec![(0u64, 0u64); queues.len()];
    let mut running: HashSet<Run> = HashSet::new();
    let mut placed: HashMap<&str, HashSet<Run>> = HashMap::new();
    let mut placed_now: HashSet<&str> = HashSet::new();
    let mut finishing: HashSet<&str> = HashSet::new();
    let mut verdict = TenancyVerdict::default();
    let stop = |run: &Run, running: &mut HashSet<Run>, usage: &mut Vec<(u64, u64)>| {
        if running.remove(run) {
            if let Some(spec) = specs.get(&run.task) {
                for i in counted_in(spec) {
                    usage[i].0 -= spec.request.cpu_milli;
                    usage[i].1 -= spec.request.memory_mib;
                }
            }
        }
    };
    for record in log {
        match record {
            Record::Placed(run) => {
                if let Some(gang) = gang_of(&run.task) {
                    placed.entry(&gang.name).or_default().insert(*run);
                    placed_now.insert(&gang.name);
                }
            }
            Record::Released(run) => {
                if let Some(gang) = gang_of(&run.task) {
                    placed.entry(&gang.name).or_default().remove(run);
                }
            }
            Record::Started { run, .. } => {
                let Some(spec) = specs.get(&run.task) else {
                    continue;
                };
                if running.insert(*run) {
                    for i in counted_in(spec) {
                        usage[i].0 += spec.request.cpu_milli;
                        usage[i].1 += spec.request.memory_mib;
                    }
                }
            }
            Record::Stopped(run) => stop(run, &mut running, &mut usage),
            Record::Completed(run) => {
                stop(run, &mut running, &mut usage);
                if let Some(gang) = gang_of(&run.task) {
                    placed.entry(&gang.name).or_default().remove(run);
                    finishing.insert(&gang.name);
                }
            }
            Record::Cycle => {
                for gang in placed_now.drain() {
                    let held = placed.get(gang).map_or(0, HashSet::len);
                    let needed = min.get(gang).copied().unwrap_or(0);
                    if held < needed && !finishing.contains(gang) {
                        verdict.gangs_partly_started += 1;
                    }
                }
                for (queue, &(cpu, memory)) in queues.iter().zip(&usage) {
                    let over_cpu = queue.max.cpu_milli.is_some_and(|max| cpu > max);
                    let over_memory = queue.max.memory_mib.is_some_and(|max| memory > max);
                    if over_cpu || over_memory {
                        verdict.queues_over_maximum += 1;
                    }
                }
            }
            _ => {}
        }
    }
    verdict
}

fn end_run(
    run: Run,
    runs: &mut HashMap<Run, (NodeId, Vec<u32>)>,
    load: &mut HashMap<NodeId, NodeLoad>,
    specs: &HashMap<TaskId, &TaskSpec>,
    logs: &mut HashMap<TaskId, TaskLog>,
) {
    let Some((node, gpus)) = runs.remove(&run) else {
        return;
    };
    if let (Some(spec), Some(held)) = (specs.get(&run.task), load.get_mut(&node)) {
        held.cpu_milli -= spec.request.cpu_milli;
        held.memory_mib -= spec.request.memory_mib;
        for gpu in gpus {
            if let Some(milli) = held.gpu_milli.get_mut(gpu as usize) {
                *milli -= u64::from(spec.gpu.milli_per_gpu);
            }
        }
    }
    if let Some(task) = logs.get_mut(&run.task) {
        task.live_runs -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lepton_core::Resources;

    fn setup() -> (Vec<NodeSpec>, Vec<TaskSpec>) {
        let nodes = vec![NodeSpec::new(NodeId(1), Resources::new(4_000, 4_096))];
        let tasks = (1..=2)
            .map(|id| TaskSpec::new(TaskId(id), Resources::new(3_000, 1_024)))
            .collect();
        (nodes, tasks)
    }

    fn started(task: u64, attempt: u32) -> Record {
        Record::Started {
            run: Run::new(TaskId(task), attempt),
            node: NodeId(1),
            gpus: Vec::new(),
        }
    }

    #[test]
    fn a_clean_log_passes() {
        let (nodes, tasks) = setup();
        let log = [
            Record::Submitted(TaskId(1)),
            Record::Submitted(TaskId(2)),
            started(1, 1),
            Record::Stopped(Run::new(TaskId(1), 1)),
            started(2, 1),
            Record::Completed(Run::new(TaskId(2), 1)),
            started(1, 2),
            Record::Completed(Run::new(TaskId(1), 2)),
        ];
        let verdict = check(&nodes, &tasks, &log);
        assert_eq!(verdict.completed, 2);
        assert_eq!(
            (verdict.lost, verdict.ran_twice, verdict.overcommitted),
            (0, 0, 0)
        );
    }

    #[test]
    fn each_violation_is_caught() {
        let (nodes, tasks) = setup();
        // Two tasks of 3 000 on a node of 4 000 at once: over-committed.
        let log = [started(1, 1), started(2, 1)];
        assert_eq!(check(&nodes, &tasks, &log).overcommitted, 1);
        // Two completions of one task.
        let log = [
            started(1, 1),
            Record::Completed(Run::new(TaskId(1), 1)),
            started(1, 2),
            Record::Completed(Run::new(TaskId(1), 2)),
        ];
        assert_eq!(check(&nodes, &tasks, &log).ran_twice, 1);
        // A completion of a run that was stopped.
        let log = [
            started(1, 1),
            Record::Stopped(Run::new(TaskId(1), 1)),
            Record::Completed(Run::new(TaskId(1), 1)),
        ];
        assert_eq!(check(&nodes, &tasks, &log).ran_twice, 1);
        // Task 2 never ends: lost. Task 1 both completed and gave up: lost.
        let log = [
            started(1, 1),
            Record::Completed(Run::new(TaskId(1), 1)),
            Record::GaveUp(TaskId(1)),
        ];
        assert_eq!(check(&nodes, &tasks, &log).lost, 2);
    }

    #[test]
    fn a_partly_started_gang_and_a_queue_over_its_maximum_are_caught() {
        use lepton_core::admission::Limits;
        use lepton_core::model::Gang;
        let gang = Gang::new("g", 2);
        let tasks: Vec<TaskSpec> = (1..=3)
            .map(|id| {
                TaskSpec::new(TaskId(id), Resources::new(1_000, 64))
                    .with_gang(gang.clone())
                    .with_queue("org/a")
            })
            .collect();
        let queues = [QueueSpec::new("org").with_max(Limits::cpu_milli(2_000))];
        let run = |id| Run::new(TaskId(id), 1);
        // Two members placed in one cycle: whole. Then one fails and is
        // placed again alone while the other still runs: whole again.
        let whole = [
            Record::Placed(run(1)),
            Record::Placed(run(2)),
            Record::Cycle,
            Record::Released(run(1)),
            Record::Placed(Run::new(TaskId(1), 2)),
            Record::Cycle,
        ];
        assert_eq!(
            check_tenancy(&tasks, &queues, &whole),
            TenancyVerdict::default()
        );
        // One member alone: partly started.
        let part = [Record::Placed(run(1)), Record::Cycle];
        assert_eq!(
            check_tenancy(&tasks, &queues, &part).gangs_partly_started,
            1
        );
        // Three of 1,000 running under a maximum of 2,000 in `org`.
        let started = |id| Record::Started {
            run: run(id),
            node: NodeId(1),
            gpus: Vec::new(),
        };
        let over = [
            started(1),
            started(2),
            Record::Cycle,
            started(3),
            Record::Cycle,
        ];
        assert_eq!(check_tenancy(&tasks, &queues, &over).queues_over_maximum, 1);
    }

    #[test]
    fn a_task_still_held_at_the_end_is_unfinished_not_lost() {
        let (nodes, tasks) = setup();
        let log = [
            Record::Submitted(TaskId(1)),
            Record::Submitted(TaskId(2)),
            started(1, 1),
            Record::Stopped(Run::new(TaskId(1), 1)),
            Record::Unfinished(TaskId(1)),
            // Reported unfinished and completed: two ends, so lost.
            started(2, 1),
            Record::Completed(Run::new(TaskId(2), 1)),
            Record::Unfinished(TaskId(2)),
        ];
        let verdict = check(&nodes, &tasks, &log);
        assert_eq!((verdict.unfinished, verdict.lost), (1, 1));
    }
}
