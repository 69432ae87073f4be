//! The fill experiment: a hand-checked small case, the inflation rule, and
//! determinism (same seed, same result; another seed, another result).

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

mod support;

use lepton::fragmentation::TargetWorkload;
use lepton::policies::{build, by_name};
use lepton::rng::SeededRng;
use lepton::sim::{fill_arrivals, run_fill, FillConfig};
use lepton::{GpuRequest, Gpus, NodeId, NodeSpec, Resources, TaskId, TaskSpec};
use support::{paper_cluster_and_pods, paper_context};

fn gpu_task(id: u64, gpu: GpuRequest) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(1_000, 1_024)).with_gpu(gpu)
}

/// Two nodes with 2 GPUs each: 4000 milli-GPUs of capacity.
fn small_cluster() -> Vec<NodeSpec> {
    (0..2)
        .map(|id| {
            NodeSpec::new(NodeId(id), Resources::new(8_000, 16_384)).with_gpus(Gpus::new("T4", 2))
        })
        .collect()
}

#[test]
fn a_small_fill_is_counted_by_hand() {
    // Three 1-GPU tasks fit; a 3-GPU task never does (2 GPUs per node).
    // 6000 milli-GPUs are requested of 4000 (150%), so tune 1.0 adds no
    // clone. Whatever the shuffle: 3 placed (75% allocated), 1 dropped.
    let tasks = vec![
        gpu_task(0, GpuRequest::whole(1)),
        gpu_task(1, GpuRequest::whole(1)),
        gpu_task(2, GpuRequest::whole(1)),
        gpu_task(3, GpuRequest::whole(3)),
    ];
    let workload = TargetWorkload::from_tasks(&tasks, 1.0);
    let config = FillConfig { seed: 7, tune: 1.0 };
    let result = run_fill(
        &small_cluster(),
        &tasks,
        &workload,
        by_name("bestfit").unwrap(),
        &config,
    )
    .unwrap();
    assert_eq!(result.tasks_arrived, 4);
    assert_eq!(result.tasks_dropped, 1);
    assert_eq!(result.tasks_placed, 3);
    let last = result.curve.last().unwrap();
    assert!((last.arrived_pct - 150.0).abs() < 1e-9);
    assert!((last.alloc_pct - 75.0).abs() < 1e-9);
}

#[test]
fn inflation_appends_clones_until_tune_times_capacity() {
    let tasks = vec![
        gpu_task(0, GpuRequest::shared(500)),
        gpu_task(1, GpuRequest::whole(1)),
    ];
    let mut rng = SeededRng::new(1);
    let arrivals = fill_arrivals(&tasks, 4_000, &FillConfig { seed: 1, tune: 1.3 }, &mut rng);
    let requested: u64 = arrivals.iter().map(|t| t.gpu.total_milli()).sum();
    assert!(requested >= 5_200, "{requested}");
    // The last clone is the one that crossed the target.
    let before_last = requested - arrivals.last().unwrap().gpu.total_milli();
    assert!(before_last < 5_200);
    // Clones get fresh ids after the trace's.
    let mut ids: Vec<u64> = arrivals.iter().map(|t| t.id.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), arrivals.len());
}

#[test]
fn bad_settings_are_typed_errors() {
    let tasks = vec![gpu_task(0, GpuRequest::whole(1))];
    let workload = TargetWorkload::from_tasks(&tasks, 1.0);
    // Below 1 arrivals never reach 100% of capacity; above 10 clones grow without bound.
    for tune in [0.0, 0.5, 0.999, 10.5, 1e9, -1.0, f64::NAN, f64::INFINITY] {
        let err = run_fill(
            &small_cluster(),
            &tasks,
            &workload,
            by_name("bestfit").unwrap(),
            &FillConfig { seed: 1, tune },
        )
        .unwrap_err();
        assert!(
            matches!(err, lepton::sim::Error::OutOfRange { name: "tune", .. }),
            "{err}"
        );
    }
    let cpu_only = vec![NodeSpec::new(NodeId(0), Resources::new(1_000, 1_000))];
    let err = run_fill(
        &cpu_only,
        &tasks,
        &workload,
        by_name("bestfit").unwrap(),
        &FillConfig::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cluster GPUs = 0 is out of range: at least one GPU in the cluster"
    );
}

#[test]
fn same_seed_same_result_on_the_real_trace() {
    let (nodes, tasks) = paper_cluster_and_pods("default");
    let (workload, context) = paper_context(&tasks);
    for name in ["random", "fgd"] {
        let run = |seed| {
            let config = FillConfig { seed, tune: 1.3 };
            run_fill(
                &nodes,
                &tasks,
                &workload,
                build(name, &context).unwrap(),
                &config,
            )
            .unwrap()
        };
        let (first, again, other) = (run(42), run(42), run(43));
        assert_eq!(first.curve, again.curve, "{name}");
        assert_eq!(first.alloc_pct_at_100, again.alloc_pct_at_100, "{name}");
        assert_eq!(first.frag_pct_at_100, again.frag_pct_at_100, "{name}");
        assert_ne!(
            first.curve, other.curve,
            "{name}: seeds 42 and 43 gave the same run"
        );
    }
}
