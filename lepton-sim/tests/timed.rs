//! Timed replay: hand-checked timelines, node failures, determinism, and the
//! real openb trace replayed end to end.
//!
//! The trace is the copy shipped in `data/alibaba-gpu-2023` (or
//! `LEPTON_TRACE_DIR`). A missing trace
//! fails these tests: it is never skipped.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lepton_core::fragmentation::TargetWorkload;
use lepton_core::model::GpuModel;
use lepton_core::policy::{Feedback, Outcome};
use lepton_core::scheduler::RetryPolicy;
use lepton_core::{
    FeasibleNodes, GpuRequest, Gpus, NodeId, NodeSpec, Placement, Policy, Resources, TaskId,
    TaskSpec,
};
use lepton_sim::Error;
use lepton_sim::*;
use support::{first_fit, trace_file};

/// First fit that counts, per task, how often it was told the task completed.
#[derive(Debug, Default)]
struct CountingFirstFit {
    completions: Arc<Mutex<BTreeMap<TaskId, u32>>>,
}

impl Policy for CountingFirstFit {
    fn name(&self) -> &str {
        "counting-first-fit"
    }
    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        nodes.first_fit().map(|node| Placement::on(node.id()))
    }
    /// Counts completions; runs cut short by a node failure report
    /// `Outcome::Failed` and are not counted.
    fn observe(&mut self, feedback: &Feedback<'_>) {
        if feedback.outcome == Outcome::Completed {
            let mut completions = self.completions.lock().expect("not poisoned");
            *completions.entry(feedback.task.id).or_insert(0) += 1;
        }
    }
}

fn gpu_task(id: u64, cpu_milli: u64, gpus: u32, arrival_s: u64, duration_s: u64) -> TimedTask {
    let spec = TaskSpec::new(TaskId(id), Resources::new(cpu_milli, 1_024))
        .with_gpu(GpuRequest::whole(gpus));
    TimedTask::new(spec, arrival_s, Some(duration_s))
}

fn one_gpu_node() -> Vec<NodeSpec> {
    vec![NodeSpec::new(NodeId(0), Resources::new(4_000, 8_192)).with_gpus(Gpus::new("T4", 2))]
}

fn config(sample_every_s: u64) -> TimedConfig {
    TimedConfig {
        sample_every_s,
        ..TimedConfig::default()
    }
}

/// Everything but the wall time, as text: equal iff the runs were identical.
fn fingerprint(result: &TimedResult) -> String {
    let mut result = result.clone();
    result.wall = Duration::ZERO;
    serde_json::to_string(&result).expect("serializable")
}

#[test]
fn third_task_waits_for_the_first_to_complete() {
    // One node with 2 GPUs and 4 cores. t1 and t2 take a GPU and half the
    // CPU each; t3 needs a GPU and waits until t1 ends at 100 s.
    let tasks = [
        gpu_task(1, 2_000, 1, 0, 100),
        gpu_task(2, 2_000, 1, 10, 200),
        gpu_task(3, 1_000, 1, 20, 30),
    ];
    // A target workload of two-GPU tasks: a node with one GPU free is all fragment.
    let two_gpus =
        TaskSpec::new(TaskId(0), Resources::new(1_000, 1)).with_gpu(GpuRequest::whole(2));
    let workload = TargetWorkload::from_tasks([&two_gpus], 1.0);
    let result = run_timed(&one_gpu_node(), &tasks, &workload, first_fit(), &config(50)).unwrap();

    assert_eq!(result.tasks_submitted, 3);
    assert_eq!(result.tasks_completed, 3);
    assert_eq!(result.tasks_placed, 3);
    assert_eq!(result.max_pending, 1);
    // Waits 0, 0 and 80 s: t3 arrives at 20 and starts when t1 ends at 100.
    assert_eq!(result.max_wait_s, 80.0);
    assert_eq!(result.p99_wait_s, 80.0);
    assert!((result.mean_wait_s - 80.0 / 3.0).abs() < 1e-9);
    // t3 runs 100..130, t2 10..210.
    assert_eq!(result.end_s, 210.0);
    assert_eq!(result.tasks_running_at_end, 0);
    assert_eq!(result.tasks_pending_at_end, 0);

    let timeline: Vec<(u64, f64, f64, f64, f64, usize, usize)> = result
        .samples
        .iter()
        .map(|s| {
            (
                s.time_s,
                s.gpu_alloc_pct,
                s.cpu_pct,
                s.memory_pct,
                s.frag_pct,
                s.pending,
                s.running,
            )
        })
        .collect();
    assert_eq!(
        timeline,
        vec![
            // t1 alone: one GPU of two busy, the other is a fragment for 2-GPU tasks.
            (0, 50.0, 50.0, 12.5, 50.0, 0, 1),
            // t1 and t2 run, t3 waits.
            (50, 100.0, 100.0, 25.0, 0.0, 1, 2),
            // The end of the instant 100 s: t1 done, t3 placed.
            (100, 100.0, 75.0, 25.0, 0.0, 0, 2),
            // t3 done at 130.
            (150, 50.0, 50.0, 12.5, 50.0, 0, 1),
            (200, 50.0, 50.0, 12.5, 50.0, 0, 1),
        ]
    );
    assert!(result.samples.iter().all(|s| s.nodes_down == 0));
    assert_eq!(result.samples[0].nodes_in_use, 1);

    // Each task's own times, in the order given.
    let times: Vec<_> = result
        .tasks
        .iter()
        .map(|t| {
            (
                t.task.0,
                t.arrival_s,
                t.start_s,
                t.end_s,
                t.wait_s(),
                t.state,
            )
        })
        .collect();
    assert_eq!(
        times,
        vec![
            (1, 0, Some(0.0), Some(100.0), Some(0.0), "completed"),
            (2, 10, Some(10.0), Some(210.0), Some(0.0), "completed"),
            (3, 20, Some(100.0), Some(130.0), Some(80.0), "completed"),
        ]
    );
    assert!(result
        .tasks
        .iter()
        .all(|t| t.node == Some(NodeId(0)) && t.placements == 1));
}

#[test]
fn a_waiting_task_starts_as_soon_as_a_completion_makes_room() {
    // The node holds one task at a time. t2 waits for t1 and starts at its
    // completion, at 10 s; t3 arrives at 12, finds no node, and waits with
    // no timer of its own until t2 ends at 20, where it starts (with the
    // scheduler's timed backoff it would have waited to 27).
    let full = |id, arrival_s| gpu_task(id, 4_000, 2, arrival_s, 10);
    let tasks = [full(1, 0), full(2, 0), full(3, 12)];
    let result = run_timed(
        &one_gpu_node(),
        &tasks,
        &TargetWorkload::default(),
        first_fit(),
        &config(1),
    )
    .unwrap();
    assert_eq!(result.tasks_completed, 3);
    assert_eq!(result.max_wait_s, 10.0);
    assert!((result.mean_wait_s - (0.0 + 10.0 + 8.0) / 3.0).abs() < 1e-9);
    assert_eq!(result.end_s, 30.0);
    assert_eq!(result.samples[19].pending, 1);
    assert_eq!(
        (result.samples[20].pending, result.samples[20].running),
        (0, 1)
    );
}

#[test]
fn tasks_without_duration_run_to_the_end_and_misfits_wait_to_the_end() {
    let forever = TimedTask::new(TaskSpec::new(TaskId(1), Resources::new(1_000, 1)), 5, None);
    // No node has an A100: this one can never run.
    let misfit = TimedTask::new(
        TaskSpec::new(TaskId(2), Resources::new(1_000, 1))
            .with_gpu(GpuRequest::whole(1))
            .with_gpu_models([GpuModel::new("A100")]),
        5,
        Some(10),
    );
    let tasks = [forever, misfit];
    let nodes = one_gpu_node();
    let none = TargetWorkload::default();
    // Without a horizon the run stops when nothing can change any more.
    let result = run_timed(&nodes, &tasks, &none, first_fit(), &config(1)).unwrap();
    assert_eq!(result.end_s, 5.0);
    assert_eq!(result.tasks_running_at_end, 1);
    assert_eq!(result.tasks_pending_at_end, 1);
    assert_eq!(result.tasks_completed, 0);
    assert_eq!(result.samples.len(), 6);

    // With a horizon it goes on, sampling, until the horizon.
    let horizon = TimedConfig {
        horizon_s: Some(100),
        sample_every_s: 10,
        ..TimedConfig::default()
    };
    let result = run_timed(&nodes, &tasks, &none, first_fit(), &horizon).unwrap();
    assert_eq!(result.end_s, 100.0);
    assert_eq!(result.samples.len(), 11);
    assert!(result.samples[1..]
        .iter()
        .all(|s| s.running == 1 && s.pending == 1));
}

fn failure_scenario() -> (Vec<NodeSpec>, Vec<TimedTask>) {
    let nodes = (0..4)
        .map(|i| {
            NodeSpec::new(NodeId(i), Resources::new(8_000, 16_384)).with_gpus(Gpus::new("T4", 4))
        })
        .collect();
    let tasks = (0..200)
        .map(|i| {
            let spec = TaskSpec::new(TaskId(i), Resources::new(1_000 + (i % 4) * 500, 1_024))
                .with_gpu(if i.is_multiple_of(3) {
                    GpuRequest::shared(250 + (i as u32 % 5) * 100)
                } else {
                    GpuRequest::whole(1 + (i as u32 % 2))
                });
            TimedTask::new(spec, i * 60, Some(600 + (i * 37) % 3_000))
        })
        .collect();
    (nodes, tasks)
}

fn failing(seed: u64) -> TimedConfig {
    TimedConfig {
        seed,
        node_failure_rate_per_hour: 0.2,
        node_recovery_s: 900,
        sample_every_s: 300,
        ..TimedConfig::default()
    }
}

#[test]
fn failed_nodes_requeue_their_tasks_and_every_task_completes_once() {
    let (nodes, tasks) = failure_scenario();
    let policy = CountingFirstFit::default();
    let completions = Arc::clone(&policy.completions);
    let workload = TargetWorkload::from_tasks(tasks.iter().map(|t| &t.spec), 0.95);
    let result = run_timed(&nodes, &tasks, &workload, Box::new(policy), &failing(7)).unwrap();

    assert!(result.node_failures > 0, "{result:?}");
    assert!(result.evictions > 0, "{result:?}");
    assert!(result.samples.iter().any(|s| s.nodes_down > 0));
    assert_eq!(result.tasks_completed, tasks.len());
    assert_eq!(result.tasks_pending_at_end + result.tasks_running_at_end, 0);
    // Every eviction is followed by exactly one new placement.
    assert_eq!(result.placements, tasks.len() + result.evictions);
    let completions = completions.lock().unwrap();
    assert_eq!(completions.len(), tasks.len());
    assert!(completions.values().all(|&count| count == 1));
    // A node's down time shows in the samples but the run still ends.
    assert!(result.end_s >= (199 * 60 + 600) as f64);
}

#[test]
fn failures_stop_with_the_workload_so_the_run_ends() {
    // With 4 nodes each down an hour after failing five times an hour, all
    // four are rarely up at once: were failures drawn after the last task,
    // the recoveries they make would keep the run going for ever.
    let nodes: Vec<NodeSpec> = (0..4)
        .map(|i| NodeSpec::new(NodeId(i), Resources::new(4_000, 4_096)))
        .collect();
    let tasks: Vec<TimedTask> = (0..20)
        .map(|i| {
            TimedTask::new(
                TaskSpec::new(TaskId(i), Resources::new(1_000, 1)),
                i * 30,
                Some(60),
            )
        })
        .collect();
    let config = TimedConfig {
        seed: 3,
        node_failure_rate_per_hour: 5.0,
        node_recovery_s: 3_600,
        sample_every_s: 60,
        ..TimedConfig::default()
    };
    let result = run_timed(
        &nodes,
        &tasks,
        &TargetWorkload::default(),
        first_fit(),
        &config,
    )
    .unwrap();
    assert_eq!(result.tasks_completed, 20);
    assert!(result.node_failures > 0);
    // The last failure comes before the last completion; its node is back
    // an hour later at most.
    let last_busy = result
        .samples
        .iter()
        .rev()
        .find(|s| s.running + s.pending > 0)
        .map_or(0, |s| s.time_s);
    assert!(
        result.end_s <= (last_busy + 60 + 3_600) as f64,
        "{result:?}"
    );
    assert_eq!(
        result.samples.len() as f64,
        (result.end_s / 60.0).floor() + 1.0
    );
}

#[test]
fn a_task_that_failures_keep_restarting_stops_at_the_default_horizon() {
    // A 100-day task on a node that fails about once an hour never runs
    // 100 days in one piece: without a bound the run would never end.
    let day = 86_400;
    let tasks = [gpu_task(1, 1_000, 1, 0, 100 * day)];
    let config = TimedConfig {
        node_failure_rate_per_hour: 1.0,
        sample_every_s: day,
        ..TimedConfig::default()
    };
    let result = run_timed(
        &one_gpu_node(),
        &tasks,
        &TargetWorkload::default(),
        first_fit(),
        &config,
    )
    .unwrap();
    // Twice (its 100 days, plus its 100 GPU-days of work on the node's two
    // GPUs).
    assert_eq!(default_horizon_s(&one_gpu_node(), &tasks), 300 * day);
    assert_eq!(result.horizon_s, 300 * day);
    assert!(result.stopped_at_horizon);
    assert_eq!(result.end_s, (300 * day) as f64);
    assert_eq!(result.tasks_completed, 0);
    assert_eq!(result.tasks_running_at_end + result.tasks_pending_at_end, 1);
    assert!(result.node_failures > 1_000, "{}", result.node_failures);
    let task = &result.tasks[0];
    assert!(matches!(task.state, "running" | "pending"), "{task:?}");
    assert!(task.placements > 100 && task.end_s.is_none(), "{task:?}");

    // Without failures the same task ends by itself, well before the bound.
    let calm = run_timed(
        &one_gpu_node(),
        &tasks,
        &TargetWorkload::default(),
        first_fit(),
        &TimedConfig {
            sample_every_s: day,
            ..TimedConfig::default()
        },
    )
    .unwrap();
    assert!(!calm.stopped_at_horizon);
    assert_eq!((calm.tasks_completed, calm.end_s), (1, (100 * day) as f64));
}

#[test]
fn the_same_seed_replays_identically_and_another_seed_differs() {
    let (nodes, tasks) = failure_scenario();
    let workload = TargetWorkload::from_tasks(tasks.iter().map(|t| &t.spec), 0.95);
    let run = |seed| run_timed(&nodes, &tasks, &workload, first_fit(), &failing(seed)).unwrap();
    let (a, b, other) = (run(7), run(7), run(8));
    assert_eq!(fingerprint(&a), fingerprint(&b));
    assert_eq!(a.samples, b.samples);
    assert_ne!(fingerprint(&a), fingerprint(&other));
    assert_eq!(other.seed, 8);
}

#[test]
fn bad_configs_and_tasks_are_typed_errors() {
    let nodes = one_gpu_node();
    let tasks = [gpu_task(1, 1_000, 1, 0, 10)];
    let none = TargetWorkload::default();
    let run = |config: TimedConfig, tasks: &[TimedTask]| {
        run_timed(&nodes, tasks, &none, first_fit(), &config).unwrap_err()
    };
    for rate in [f64::NAN, -0.5, f64::INFINITY] {
        let config = TimedConfig {
            node_failure_rate_per_hour: rate,
            ..TimedConfig::default()
        };
        assert!(
            matches!(
                run(config, &tasks),
                Error::OutOfRange {
                    name: "node_failure_rate_per_hour",
                    ..
                }
            ),
            "{rate}"
        );
    }
    assert_eq!(
        run(config(0), &tasks).to_string(),
        "sample_every_s = 0 is out of range: at least 1 second"
    );
    let past_the_end = TimedConfig {
        horizon_s: Some(MAX_TIME_S + 1),
        ..TimedConfig::default()
    };
    assert!(matches!(
        run(past_the_end, &tasks),
        Error::OutOfRange {
            name: "horizon_s",
            ..
        }
    ));
    // Ten million samples is too many.
    let long = [TimedTask::new(tasks[0].spec.clone(), 0, Some(10_000_000))];
    assert!(matches!(
        run(config(1), &long),
        Error::OutOfRange {
            name: "sample_every_s",
            ..
        }
    ));
    let twice = [tasks[0].clone(), tasks[0].clone()];
    assert_eq!(
        run(config(1), &twice),
        Error::Scheduler(lepton_core::Error::DuplicateTask { task: TaskId(1) })
    );
    let share = [TimedTask::new(
        tasks[0].spec.clone().with_gpu(GpuRequest::shared(1_500)),
        0,
        None,
    )];
    assert!(matches!(
        run(config(1), &share),
        Error::Scheduler(lepton_core::Error::GpuShareTooLarge { milli: 1_500, .. })
    ));
}

#[test]
fn trace_pods_become_timed_tasks() {
    let pod = |created, scheduled, deleted| TracePod {
        spec: TaskSpec::new(TaskId(0), Resources::new(1_000, 1)),
        creation_time_s: created,
        deletion_time_s: deleted,
        scheduled_time_s: scheduled,
    };
    let ran = TimedTask::from_trace(&pod(Some(100), Some(130), Some(200))).unwrap();
    assert_eq!((ran.arrival_s, ran.duration_s), (100, Some(70)));
    // Stayed pending in the trace: replayed for its whole life.
    let pending = TimedTask::from_trace(&pod(Some(100), None, Some(200))).unwrap();
    assert_eq!(pending.duration_s, Some(100));
    let never_deleted = TimedTask::from_trace(&pod(Some(100), Some(100), None)).unwrap();
    assert_eq!(never_deleted.duration_s, None);
    assert!(TimedTask::from_trace(&pod(None, None, None)).is_none());

    let shifted =
        TimedTask::from_trace_pods(&[pod(Some(500), None, Some(600)), pod(Some(400), None, None)])
            .unwrap();
    assert_eq!(
        shifted.iter().map(|t| t.arrival_s).collect::<Vec<_>>(),
        vec![100, 0]
    );
    assert!(
        TimedTask::from_trace_pods(&[pod(Some(1), None, None), pod(None, None, None)]).is_none()
    );
}

#[test]
fn the_default_trace_replays_to_completion_with_first_fit() {
    let nodes = read_openb_nodes(&trace_file("openb_node_list_gpu_node.csv")).unwrap();
    let pods = read_openb_pods(&trace_file("openb_pod_list_default.csv")).unwrap();
    let tasks = TimedTask::from_trace_pods(&pods).expect("the default trace has times");
    let workload = TargetWorkload::from_tasks(tasks.iter().map(|t| &t.spec), 0.95);
    let started = Instant::now();
    let result = run_timed(&nodes, &tasks, &workload, first_fit(), &config(600)).unwrap();
    eprintln!(
        "default trace, first fit: {} tasks, {} samples, end {} s, mean wait {:.3} s, \
         peak GPU allocation {:.2}%, peak running {}, run {:.2?} (test {:.2?})",
        result.tasks_completed,
        result.samples.len(),
        result.end_s,
        result.mean_wait_s,
        result
            .samples
            .iter()
            .map(|s| s.gpu_alloc_pct)
            .fold(0.0, f64::max),
        result.samples.iter().map(|s| s.running).max().unwrap_or(0),
        result.wall,
        started.elapsed()
    );
    assert_eq!(result.tasks_submitted, 8152);
    assert_eq!(result.tasks_placed, 8152);
    assert_eq!(result.tasks_completed, 8152);
    assert_eq!(result.tasks_pending_at_end + result.tasks_running_at_end, 0);
    // The last pod is deleted at 12,902,960 s; samples cover the whole run.
    assert!(result.end_s >= 12_902_960.0);
    assert_eq!(
        result.samples.len() as f64,
        (result.end_s / 600.0).floor() + 1.0
    );
    assert!(result.samples.iter().all(|s| s.gpu_alloc_pct <= 100.0));
    assert!(result.samples.iter().any(|s| s.running > 0));

    // The multi-GPU file has no times: it replays in fill mode only.
    let multi = read_openb_pods(&trace_file("openb_pod_list_multigpu20.csv")).unwrap();
    assert!(TimedTask::from_trace_pods(&multi).is_none());
}

/// A timed run of `tasks` on [`one_gpu_node`] with first fit.
fn on_one_node(tasks: &[TimedTask], config: &TimedConfig) -> Result<TimedResult, Error> {
    run_timed(
        &one_gpu_node(),
        tasks,
        &TargetWorkload::default(),
        first_fit(),
        config,
    )
}

#[test]
fn runs_past_their_timeout_are_ended_and_retried_within_the_budget() {
    let timed = |id, arrival_s, duration_s, timeout_ms| {
        let spec =
            TaskSpec::new(TaskId(id), Resources::new(1_000, 1_024)).with_timeout_ms(timeout_ms);
        TimedTask::new(spec, arrival_s, Some(duration_s))
    };
    // Task 1 runs 100 s but times out after 30 s: three runs (two retries,
    // at once), then it fails. Task 2 ends well within its timeout.
    let tasks = [timed(1, 0, 100, 30_000), timed(2, 0, 10, 30_000)];
    let config = TimedConfig {
        retry: RetryPolicy {
            max_retries: Some(2),
            ..RetryPolicy::IMMEDIATE
        },
        ..config(10)
    };
    let result = on_one_node(&tasks, &config).unwrap();
    assert_eq!(result.timeouts, 3);
    assert_eq!(result.tasks_failed, 1);
    assert_eq!(result.tasks_completed, 1);
    assert_eq!(result.tasks_pending_at_end, 0);
    assert_eq!(result.tasks_running_at_end, 0);
    assert_eq!(result.placements, 4);
    // The third run started at 60 s and was ended at 90 s.
    assert_eq!(result.end_s, 90.0);
}

#[test]
fn a_task_that_would_time_out_forever_is_refused_without_a_budget_or_horizon() {
    let spec = TaskSpec::new(TaskId(7), Resources::new(1_000, 1_024)).with_timeout_ms(5_000);
    let tasks = [TimedTask::new(spec, 0, Some(60))];
    let error = on_one_node(&tasks, &config(10)).unwrap_err();
    assert!(
        matches!(
            error,
            Error::EndlessRetries {
                task: TaskId(7),
                duration_s: 60,
                timeout_ms: 5_000
            }
        ),
        "{error}"
    );
    // With a horizon it runs, timing out every 5 s until then.
    let bounded = TimedConfig {
        horizon_s: Some(60),
        ..config(10)
    };
    let result = on_one_node(&tasks, &bounded).unwrap();
    assert_eq!(result.timeouts, 12);
    assert_eq!(result.tasks_completed, 0);
    // A 1 ms timeout over a day's horizon would be 86 million runs: refused
    // before the run, not run until memory runs out.
    let mut spec = tasks[0].spec.clone();
    spec.timeout_ms = Some(1);
    let tiny = [TimedTask::new(spec, 0, Some(60))];
    let day = TimedConfig {
        horizon_s: Some(86_400),
        ..config(10)
    };
    let error = on_one_node(&tiny, &day).unwrap_err();
    assert!(
        matches!(
            error,
            Error::TooManyRetries {
                task: TaskId(7),
                timeout_ms: 1,
                horizon_s: 86_400,
                runs: 86_400_000
            }
        ),
        "{error}"
    );
}
