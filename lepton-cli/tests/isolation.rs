//! What a task submitted to `lepton serve` can see and reach: started as
//! root with its token in the environment (as a user following the README
//! would), the service runs the task as `nobody` with a clean environment,
//! and keeps its data directory to itself.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use support::service::Service;

#[test]
fn a_task_runs_unprivileged_and_never_sees_the_service_s_token() {
    let mut service = Service::new("isolation", "");
    service.start_with(&[("LEPTON_TOKEN", "the-service-token")]);
    let script = service.dir.join("probe.sh");
    std::fs::write(&script, "id -u\nenv\n").unwrap();
    std::fs::set_permissions(&service.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let task = serde_json::json!({
        "id": 1,
        "request": {"cpu_milli": 100, "memory_mib": 32},
        "config": {"command": format!("sh {}", script.display()), "env.COLOUR": "blue"},
    });
    let answer = ureq::post(&format!("{}/v1/tasks", service.address))
        .set("Authorization", "Bearer the-service-token")
        .set("Content-Type", "application/json")
        .send_string(&task.to_string());
    assert_eq!(answer.map(|r| r.status()).unwrap_or(0), 202);
    let log = service.dir.join("data/local/logs/1-1.out");
    let started = Instant::now();
    let out = loop {
        let ledger = service.ledger();
        if ledger.contains("ended 1-1 ") {
            break std::fs::read_to_string(&log).unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{ledger}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !out.contains("the-service-token"),
        "the token leaked: {out}"
    );
    assert!(out.contains("COLOUR=blue\n"), "{out}");
    // `/proc/self` belongs to this process's user.
    let own = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    let expected = if own == 0 { 65534 } else { own };
    assert_eq!(out.lines().next().unwrap(), expected.to_string(), "{out}");
    assert!(service.log().contains("tasks run as"), "{}", service.log());
    let mode = std::fs::metadata(service.dir.join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let mode = std::fs::metadata(service.dir.join("data/state.redb"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
