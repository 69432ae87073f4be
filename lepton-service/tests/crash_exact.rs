//! Launches exact across crashes: a run whose launch a crash cut short is
//! launched again without spending the task's retry budget; what an ended
//! task's run left is removed at the next start, however many starts a
//! crash cut short before; a task no backend could ever run is refused at
//! submission, naming why. The crashed states are built on disk exactly
//! as a `kill -9` at that moment leaves them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lepton::adapters::local::{LocalBackend, LocalConfig};
use lepton::backend::{Backend, Handle, Launch, RunStatus};
use lepton::{NodeId, Resources, Run, TaskId, TaskSpec};
use lepton_service::{Change, EmbeddedStore, Finished, Store};
use serde_json::Value;
use support::{eventually, TestService};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lepton-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn task(id: u64, command: &str) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(50, 16)).with_config("command", command)
}

/// Stores what the service had acknowledged and decided before its crash.
fn store(dir: &Path, changes: Vec<Change>) {
    let store = EmbeddedStore::open(&dir.join("state.redb"), true).unwrap();
    store.apply(changes).unwrap();
}

fn ledger(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("local/ledger.log")).unwrap_or_default()
}

#[test]
fn a_launch_cut_short_by_a_crash_is_launched_again_without_spending_the_budget() {
    let dir = fresh_dir("unstarted");
    store(&dir, vec![Change::Accepted(Box::new(task(1, "true")))]);
    // The crash came between the run's record and its process: the
    // record claims run 1-1 and no process ever wrote its pid.
    let runs = dir.join("local/runs");
    std::fs::create_dir_all(&runs).unwrap();
    let record = runs.join("1-1.json");
    std::fs::write(
        &record,
        r#"{"task":1,"attempt":1,"node":0,"pid":0,"start_ticks":0,"argv":["true"]}"#,
    )
    .unwrap();
    let a_minute_ago = SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&record)
        .unwrap()
        .set_modified(a_minute_ago)
        .unwrap();

    // Without retries, a charged attempt would fail the task.
    let service = TestService::start_in(dir.clone(), |config| {
        config.retry.batch.max_retries = Some(0);
    });
    eventually("task 1 ends", || {
        let (_, body) = service.call("GET", "/v1/tasks/1", None, None);
        json(&body)["state"] != "queued" && json(&body)["state"] != "running"
    });
    let (_, body) = service.call("GET", "/v1/tasks/1", None, None);
    let view = json(&body);
    assert_eq!(view["state"], "completed", "{view}");
    assert_eq!(view["reasons"], serde_json::json!([]), "{view}");
    let ledger = ledger(&dir);
    assert!(!ledger.contains("started 1-1 "), "{ledger}");
    assert!(ledger.contains("ended 1-2 0"), "{ledger}");
    assert!(!record.exists(), "the unstarted run's record is removed");
}

/// The cgroup directories named after a run `name` (`<scope>-<name>`).
fn groups_of(name: &str) -> Vec<PathBuf> {
    let suffix = format!("-{name}");
    [
        "/sys/fs/cgroup/lepton",
        "/sys/fs/cgroup/memory/lepton",
        "/sys/fs/cgroup/cpu/lepton",
    ]
    .iter()
    .filter_map(|root| std::fs::read_dir(root).ok())
    .flatten()
    .filter_map(Result::ok)
    .map(|entry| entry.path())
    .filter(|path| path.to_string_lossy().ends_with(&suffix))
    .collect()
}

#[test]
fn what_an_ended_tasks_run_left_is_removed_at_the_next_start() {
    let dir = fresh_dir("leftovers");
    let spec = task(7, "true");
    let run = Run {
        task: TaskId(7),
        attempt: 1,
    };
    let groups_before = groups_of("7-1");
    // The run started and ended while the service was down; a restart
    // adopted it and stored its task as completed, then crashed before
    // removing the run.
    let handle: Handle = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let backend = LocalBackend::new(LocalConfig::new(dir.join("local"))).unwrap();
        let handle = backend
            .launch(&Launch {
                run,
                node: NodeId(0),
                task: spec.clone(),
                gpus: Default::default(),
            })
            .await
            .unwrap();
        for _ in 0..500 {
            if backend.status(&handle).await.unwrap() == (RunStatus::Exited { code: 0 }) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            backend.status(&handle).await.unwrap(),
            RunStatus::Exited { code: 0 }
        );
        handle
    });
    store(
        &dir,
        vec![
            Change::Accepted(Box::new(spec)),
            Change::Run(handle),
            Change::Finished(
                TaskId(7),
                Finished {
                    state: "completed".into(),
                    attempts: 1,
                    reasons: Vec::new(),
                },
            ),
        ],
    );
    let runs = dir.join("local/runs");
    let left = || -> Vec<String> {
        std::fs::read_dir(&runs)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(!left().is_empty(), "the run's files are there before");
    let new_groups: Vec<PathBuf> = groups_of("7-1")
        .into_iter()
        .filter(|g| !groups_before.contains(g))
        .collect();

    let service = TestService::start_in(dir.clone(), |_| {});
    let (_, body) = service.call("GET", "/v1/tasks/7", None, None);
    assert_eq!(json(&body)["state"], "completed", "{body}");
    eventually("the run's files are removed", || left().is_empty());
    for group in &new_groups {
        assert!(!group.exists(), "{} is left", group.display());
    }
    assert!(
        dir.join("local/ended/7-1.exit").exists(),
        "its exit code is kept"
    );
}

#[test]
fn a_task_no_backend_could_ever_run_is_refused_naming_why() {
    let service = TestService::start("never-runs", |_| {});
    for (body, why) in [
        (
            r#"{"id": 1, "request": {"cpu_milli": 1000000000}, "config": {"command": "true"}}"#,
            "more than a whole node",
        ),
        (
            r#"{"id": 2, "request": {"memory_mib": 18446744073709551615}, "config": {"command": "true"}}"#,
            "more than a whole node",
        ),
        (
            r#"{"id": 3, "request": {"cpu_milli": 10}, "gpu": {"count": 1, "milli_per_gpu": 1000}, "config": {"command": "true"}}"#,
            "GPU",
        ),
        (
            r#"{"id": 4, "request": {"cpu_milli": 10}, "config": {}}"#,
            "no `command`",
        ),
        (
            r#"{"id": 5, "request": {"cpu_milli": 10}, "config": {"command": "   "}}"#,
            "no `command`",
        ),
    ] {
        let (status, answer) = service.call("POST", "/v1/tasks", None, Some(body));
        assert_eq!(status, 400, "{body}: {answer}");
        let message = json(&answer)["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(why), "{body}: {answer}");
        assert!(message.starts_with("[0]"), "{answer}");
    }
    // Nothing refused was taken: the ids are free.
    let ok = r#"{"id": 1, "request": {"cpu_milli": 10}, "config": {"command": "true"}}"#;
    assert_eq!(service.call("POST", "/v1/tasks", None, Some(ok)).0, 202);
}
