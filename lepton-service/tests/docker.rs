//! `lepton serve` on a Docker Engine API host (podman, started by
//! `bash scripts/backends.sh start docker`; its socket in
//! `LEPTON_DOCKER_SOCKET`): tasks run as containers, and a restart adopts
//! the container still running instead of starting another. A missing
//! server fails the test.

#![cfg(feature = "docker")]
#![allow(clippy::unwrap_used)]

mod support;

use lepton_service::DockerSection;
use support::{eventually, TestService};

fn socket() -> String {
    std::env::var("LEPTON_DOCKER_SOCKET").unwrap_or_else(|_| {
        panic!(
            "LEPTON_DOCKER_SOCKET is not set: run `bash scripts/backends.sh start docker` and \
             `eval \"$(bash scripts/backends.sh env)\"` first"
        )
    })
}

fn task(service: &TestService, id: u64) -> serde_json::Value {
    let (status, body) = service.call("GET", &format!("/v1/tasks/{id}"), None, None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn tasks_run_as_containers_and_a_restart_adopts_them() {
    let configure = |config: &mut lepton_service::ServiceConfig| {
        config.local.enabled = false;
        config.docker = vec![DockerSection {
            socket: Some(socket().into()),
            url: None,
            node: 700,
            image: Some("localhost/busybox:latest".into()),
        }];
    };
    let service = TestService::start("docker", configure);
    let tasks = r#"[
        {"id": 7001, "request": {"cpu_milli": 100, "memory_mib": 32}, "config": {"command": "true"}},
        {"id": 7002, "request": {"cpu_milli": 100, "memory_mib": 32}, "config": {"command": "sleep 600"}}
    ]"#;
    let (status, body) = service.call("POST", "/v1/tasks", None, Some(tasks));
    assert_eq!(status, 202, "{body}");
    eventually("task 7001 completes in a container", || {
        task(&service, 7001)["state"] == "completed"
    });
    eventually("task 7002 runs", || {
        task(&service, 7002)["state"] == "running"
    });
    assert_eq!(task(&service, 7002)["node"], 700);

    let dir = service.dir.clone();
    drop(service);
    let service = TestService::start_in(dir, configure);
    let adopted = task(&service, 7002);
    assert_eq!(
        (adopted["state"].as_str(), adopted["attempts"].as_u64()),
        (Some("running"), Some(1)),
        "{adopted}"
    );
    // Still its first run a few steps later: the container was adopted.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(task(&service, 7002)["attempts"], 1);
    let (status, _) = service.call("POST", "/v1/tasks/7002/cancel", None, Some("{}"));
    assert_eq!(status, 200);
}

#[test]
fn a_docker_section_needs_one_address() {
    let text = "[[docker]]\nnode = 1\n";
    let config = lepton_service::ServiceConfig::from_toml(text, "lepton.toml").unwrap();
    let error = lepton_service::start(
        lepton_service::ServiceConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: std::env::temp_dir()
                .join(format!("lepton-service-docker-bad-{}", std::process::id())),
            ..config
        },
        1,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("give one of `socket` and `url`"),
        "{error}"
    );
}
