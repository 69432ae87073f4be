//! The data center on the DLRM trace (`datacenter-trace`): how a window
//! of days becomes a world (instances running when it opens, instances
//! outliving it, the pool), the density limits a run keeps, and the
//! comparison on the shipped trace with the independent checker's
//! 0 lost / 0 run twice / 0 over-committed for every strategy.

#![allow(clippy::unwrap_used)]

use lepton_policies::KubeResources;
use lepton_sim::scenario::{
    compare_trace, run_datacenter, DatacenterConfig, FleetWorld, Spare, Strategy, TraceWindow,
    DLRM_SHAPES, START_OBJECTIVE_MIN,
};
use lepton_sim::{dlrm_trace_path, parse_dlrm, read_dlrm};

const HEADER: &str = "instance_sn,role,app_name,cpu_request,cpu_limit,gpu_request,gpu_limit,rdma_request,rdma_limit,memory_request,memory_limit,disk_request,disk_limit,max_instance_per_node,creation_time,scheduled_time,deletion_time";

const DAY: u64 = 86_400;

fn world(rows: &[String], window: TraceWindow) -> FleetWorld {
    let text = format!("{HEADER}\n{}\n", rows.join("\n"));
    let instances = parse_dlrm(&text, "t.csv").unwrap();
    FleetWorld::from_dlrm(&instances, window, &DatacenterConfig::default()).unwrap()
}

/// A CPU-node instance of `app` with `limit` per node, alive from
/// `created` to `deleted` (seconds; `None`: before the start / after the end).
fn cn(name: &str, app: &str, limit: i64, created: Option<u64>, deleted: Option<u64>) -> String {
    let time = |t: Option<u64>| t.map_or(String::new(), |t| t.to_string());
    format!(
        "{name},CN,{app},8,8,0,0,1,1,40.0,40.0,100.0,100.0,{limit},{},{},{}",
        time(created),
        time(created),
        time(deleted)
    )
}

#[test]
fn a_window_cuts_the_trace_at_its_days() {
    let window = TraceWindow {
        first_day: 1,
        days: 1,
    };
    let rows = [
        // Before the trace, deleted inside the window: already running.
        cn("a", "x", -1, None, Some(DAY + 600)),
        // Created inside, outliving the window (and the trace's end
        // below): ends with the window.
        cn("b", "x", -1, Some(DAY + 3_600), None),
        // Gone before the window: not in it.
        cn("c", "x", -1, Some(10), Some(DAY - 1)),
        // Created after the window.
        cn("d", "x", -1, Some(2 * DAY + 5), Some(3 * DAY)),
        // Created inside, deleted inside, 90 s: two minutes at most.
        cn("e", "x", -1, Some(DAY + 7_200), Some(DAY + 7_290)),
    ];
    let world = world(&rows, window);
    let names: Vec<&str> = world
        .tasks
        .iter()
        .map(|t| t.spec.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "e"]);
    let [a, b, e] = [&world.tasks[0], &world.tasks[1], &world.tasks[2]];
    assert!(a.already_running && !b.already_running && !e.already_running);
    assert_eq!((a.arrival_min, a.duration_min), (0, 10));
    // b ends with the window: 24 h − 1 h.
    assert_eq!((b.arrival_min, b.duration_min), (60, 23 * 60));
    assert_eq!(e.arrival_min, 120);
    assert!((1..=2).contains(&e.duration_min), "{}", e.duration_min);
    // Every instance is a service with a start objective and no deadline.
    assert!(world
        .tasks
        .iter()
        .all(|t| t.start_within_min == Some(START_OBJECTIVE_MIN) && t.deadline_min == u64::MAX));
    assert_eq!(world.config.failure_rate, 0.0);
    // Ids are positions.
    for (index, task) in world.tasks.iter().enumerate() {
        assert_eq!(task.spec.id.0, index as u64);
    }
}

#[test]
fn a_window_past_the_trace_is_refused() {
    let text = format!("{HEADER}\n{}\n", cn("a", "x", -1, Some(5), Some(600)));
    let instances = parse_dlrm(&text, "t.csv").unwrap();
    let error = FleetWorld::from_dlrm(
        &instances,
        TraceWindow {
            first_day: 3,
            days: 2,
        },
        &DatacenterConfig::default(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("days 3–4"), "{error}");
    // Days beyond any trace (and u64 arithmetic) are refused the same way.
    let far = TraceWindow {
        first_day: u64::MAX - 1,
        days: u64::MAX,
    };
    let error = FleetWorld::from_dlrm(&instances, far, &DatacenterConfig::default()).unwrap_err();
    assert!(error.to_string().contains("holds nothing"), "{error}");
}

/// Four replicas alive through the window, each small enough to share
/// one node.
fn replicas(limit: i64) -> FleetWorld {
    let rows: Vec<String> = (0..4)
        .map(|i| cn(&format!("r{i}"), "svc", limit, None, None))
        .chain([cn("end", "other", -1, Some(5), Some(DAY))])
        .collect();
    world(
        &rows,
        TraceWindow {
            first_day: 0,
            days: 1,
        },
    )
}

fn binpack(world: &FleetWorld) -> lepton_sim::scenario::StrategyReport {
    let strategy = Strategy::releasing("binpack", Box::new(KubeResources::BINPACK), Spare::NONE);
    run_datacenter(world, strategy).unwrap()
}

#[test]
fn the_density_limit_spreads_replicas_and_the_pool_has_room_for_it() {
    let limited = replicas(1);
    // The pool holds the four replicas one per node (it has at least
    // three nodes of each shape).
    let cpu_nodes = limited.fleet.iter().filter(|(_, s)| *s == 0).count();
    assert_eq!(cpu_nodes, 4);
    let limited = binpack(&limited);
    let free = binpack(&replicas(-1));
    for report in [&limited, &free] {
        assert_eq!(
            (report.lost, report.ran_twice, report.overcommitted),
            (0, 0, 0)
        );
        assert_eq!(report.completed, 5);
    }
    // Midday, once idle VMs are released: four VMs for one replica
    // each, one VM for all of them without the limit.
    let at_noon = |r: &lepton_sim::scenario::StrategyReport| {
        r.timeline
            .iter()
            .find(|p| p.hour >= 12.0)
            .unwrap()
            .powered_vms
    };
    assert_eq!(at_noon(&limited), 4);
    assert_eq!(at_noon(&free), 1);
}

#[test]
fn instances_too_large_for_the_main_shapes_get_the_large_ones() {
    let big = "big,CN,a,192,192,0,0,1,1,960.0,960.0,100.0,100.0,-1,60,60,7200".to_owned();
    let world = world(
        &[big, cn("small", "b", -1, Some(60), Some(7_200))],
        TraceWindow {
            first_day: 0,
            days: 1,
        },
    );
    let report = binpack(&world);
    assert_eq!((report.lost, report.completed), (0, 2));
    // Only the large shape (r7i, 1,536 GiB) holds 960 GiB; it is tainted
    // so the small instance does not take it.
    let large = DLRM_SHAPES[1];
    assert!(large.memory_gib >= 960 && DLRM_SHAPES[0].memory_gib < 960);
    assert!(world.tasks[0]
        .spec
        .constraints
        .tolerations
        .iter()
        .any(|t| t.key == "large"));
    assert!(world.tasks[1].spec.constraints.tolerations.is_empty());
}

#[test]
fn the_shipped_trace_splits_into_tuning_and_report_days() {
    let instances = read_dlrm(&dlrm_trace_path()).unwrap();
    let rules = DatacenterConfig::default();
    // Counted independently from the CSV: alive when day 16 begins, and
    // created in days 16–30 (and in days 0–15).
    let report = FleetWorld::from_dlrm(&instances, TraceWindow::REPORT, &rules).unwrap();
    let running = report.tasks.iter().filter(|t| t.already_running).count();
    assert_eq!((running, report.tasks.len() - running), (7_784, 10_531));
    let tuning = FleetWorld::from_dlrm(&instances, TraceWindow::TUNING, &rules).unwrap();
    let running = tuning.tasks.iter().filter(|t| t.already_running).count();
    assert_eq!((running, tuning.tasks.len() - running), (7_280, 6_060));
}

#[test]
fn every_strategy_runs_the_report_days_losing_nothing() {
    let instances = read_dlrm(&dlrm_trace_path()).unwrap();
    let window = TraceWindow::REPORT;
    let world = FleetWorld::from_dlrm(&instances, window, &DatacenterConfig::default()).unwrap();
    let policy = Box::new(lepton_policies::BestFit);
    let comparison = compare_trace(&world, window, "bestfit", policy).unwrap();
    assert_eq!(comparison.scenario, "datacenter-trace");
    assert_eq!(comparison.size.window, Some(window));
    let bound = comparison.lower_bound_cost.unwrap();
    assert_eq!(comparison.strategies().count(), 7);
    for report in comparison.strategies() {
        let checked = (report.lost, report.ran_twice, report.overcommitted);
        assert_eq!(checked, (0, 0, 0), "{}", report.policy);
        assert_eq!(report.completed, world.tasks.len(), "{}", report.policy);
        assert!(
            report.cost > bound,
            "{}: {} ≤ {bound}",
            report.policy,
            report.cost
        );
    }
}
