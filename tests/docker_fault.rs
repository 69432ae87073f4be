//! The Docker API server is stopped in the middle of a run of 50 tasks and
//! started again: every task ends completed exactly once, none lost, none
//! started twice. Needs `bash scripts/backends.sh start docker` (the test
//! itself stops and restarts the server with the same script).

#![cfg(feature = "docker")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lepton::adapters::docker::DockerBackend;
use lepton::backend::{Backend, RunStatus};
use lepton::policies::by_name;
use lepton::{Controller, ControllerConfig, CoreScheduler, Resources, Scheduler, TaskId, TaskSpec};

fn backends_script(action: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/backends.sh");
    let status = Command::new("bash")
        .args([script, action, "docker"])
        .status()
        .unwrap();
    assert!(status.success(), "backends.sh {action} docker failed");
}

#[tokio::test]
async fn the_docker_server_restarting_mid_run_loses_and_duplicates_nothing() {
    let socket = support::server_env("LEPTON_DOCKER_SOCKET", "docker");
    let backend: Arc<dyn Backend> = Arc::new(DockerBackend::connect_unix(&socket).unwrap());
    let config = ControllerConfig {
        tick: Duration::from_millis(100),
        ..ControllerConfig::default()
    };
    let scheduler = CoreScheduler::new(by_name("bestfit").unwrap());
    let mut controller = Controller::new(scheduler, vec![Arc::clone(&backend)], config)
        .await
        .unwrap();
    let tasks: Vec<TaskId> = (0..50u64)
        .map(|i| {
            // Up to 20 at once on the 2-core host; each sleeps 2 to 4 s.
            let task = TaskSpec::new(TaskId(700_000 + i), Resources::new(100, 16))
                .with_config("image", "localhost/busybox:latest")
                .with_config("command", format!("sleep {}", 2 + i % 3));
            controller.submit(&task).unwrap()
        })
        .collect();

    let mut ended: HashMap<TaskId, Vec<RunStatus>> = HashMap::new();
    let mut launched: HashMap<TaskId, usize> = HashMap::new();
    let mut outage_steps = 0;
    let mut restarted = false;
    let started = Instant::now();
    let mut stopped_at = None;
    loop {
        let report = controller.step().await;
        for handle in &report.launched {
            *launched.entry(handle.run.task).or_default() += 1;
        }
        for (handle, status) in report.ended {
            ended.entry(handle.run.task).or_default().push(status);
        }
        if report.unreachable_backends > 0 {
            outage_steps += 1;
        }
        // The server goes away once a fifth of the tasks are done, while
        // others run and more wait to be launched; it is back 8 s later.
        if stopped_at.is_none() && ended.len() >= 10 {
            backends_script("stop");
            stopped_at = Some(Instant::now());
        }
        if let Some(at) = stopped_at {
            if !restarted && at.elapsed() > Duration::from_secs(8) {
                backends_script("start");
                restarted = true;
            }
        }
        let counts = controller.scheduler().task_counts();
        if restarted && counts.queued + counts.backing_off + counts.running == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not done: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(outage_steps > 0, "the outage was never seen");
    let report = controller.scheduler().report();
    assert_eq!(
        (report.tasks.completed, report.tasks.failed),
        (50, 0),
        "{report:?}"
    );
    for task in &tasks {
        assert_eq!(
            ended.get(task).map(Vec::as_slice),
            Some(&[RunStatus::Exited { code: 0 }][..]),
            "{task}"
        );
        assert_eq!(
            launched.get(task),
            Some(&1),
            "{task} launched more than once"
        );
        assert!(controller.scheduler().failures(*task).is_empty(), "{task}");
        assert_eq!(
            controller.scheduler().current_run(*task).map(|r| r.attempt),
            Some(1)
        );
    }
    // Nothing of these tasks is left on the server.
    let left = backend.running().await.unwrap();
    assert!(
        left.iter().all(|h| !tasks.contains(&h.run.task)),
        "{left:?}"
    );
}
