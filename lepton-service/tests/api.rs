//! The API end to end on the local backend: tasks run and end, states and
//! attempts are reported, cancel stops a run, nodes are cordoned and
//! drained, the policy is swapped, metrics count it all, and a restart
//! keeps every decision.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{eventually, TestService};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn state(service: &TestService, id: u64) -> String {
    let (status, body) = service.call("GET", &format!("/v1/tasks/{id}"), None, None);
    assert_eq!(status, 200, "{body}");
    json(&body)["state"].as_str().unwrap().to_owned()
}

#[test]
fn tasks_run_end_and_are_cancelled_and_a_restart_keeps_it_all() {
    let service = TestService::start("api", |config| config.local.share = 0.5);
    let tasks = r#"[
        {"id": 1, "name": "ok", "request": {"cpu_milli": 100, "memory_mib": 16}, "config": {"command": "echo hello"}},
        {"id": 2, "name": "fails", "request": {"cpu_milli": 100}, "config": {"command": "false"}, "kind": "batch"},
        {"id": 3, "name": "long", "request": {"cpu_milli": 100}, "config": {"command": "sleep 60"}}
    ]"#;
    let (status, body) = service.call("POST", "/v1/tasks", None, Some(tasks));
    assert_eq!(status, 202, "{body}");
    assert_eq!(json(&body)["accepted"], serde_json::json!([1, 2, 3]));

    eventually("task 1 completes", || state(&service, 1) == "completed");
    eventually("task 3 runs", || state(&service, 3) == "running");
    // The running task says how its limits are applied (cgroups, or none).
    let (_, body) = service.call("GET", "/v1/tasks/3", None, None);
    let limits = json(&body)["limits"].as_str().unwrap().to_owned();
    assert!(["v1", "v2", "none"].contains(&limits.as_str()), "{body}");
    let (_, body) = service.call("GET", "/v1/tasks/1", None, None);
    let one = json(&body);
    assert_eq!(
        (one["attempts"].as_u64(), one["name"].as_str()),
        (Some(1), Some("ok"))
    );
    let out = service.dir.join("local/logs/1-1.out");
    assert_eq!(std::fs::read_to_string(out).unwrap(), "hello\n");

    // Cancel stops the run.
    let (status, body) = service.call("POST", "/v1/tasks/3/cancel", None, Some("{}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(state(&service, 3), "cancelled");
    let (status, body) = service.call("POST", "/v1/tasks/3/cancel", None, Some("{}"));
    assert_eq!(status, 409, "an ended task cannot be cancelled: {body}");
    eventually("the cancelled run's process is gone", || {
        let runs = std::fs::read_dir(service.dir.join("local/runs")).unwrap();
        !runs
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("3-"))
    });

    // A batch task failing every run ends failed, with its reasons.
    eventually("task 2 fails for good", || state(&service, 2) == "failed");
    let (_, body) = service.call("GET", "/v1/tasks/2", None, None);
    let two = json(&body);
    assert_eq!(two["attempts"].as_u64(), Some(4), "{two}");
    assert!(
        two["reasons"][0].as_str().unwrap().contains("exit code 1"),
        "{two}"
    );

    // Listing by state.
    let (_, body) = service.call("GET", "/v1/tasks?state=completed", None, None);
    let listed = json(&body);
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(listed["counts"]["failed"], 1);

    // Nodes: cordon, then new tasks wait; uncordon, and they run.
    let (status, _) = service.call("POST", "/v1/nodes/0/cordon", None, Some("{}"));
    assert_eq!(status, 200);
    let waiting = r#"{"id": 4, "request": {"cpu_milli": 100}, "config": {"command": "true"}}"#;
    assert_eq!(
        service.call("POST", "/v1/tasks", None, Some(waiting)).0,
        202
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(state(&service, 4), "queued");
    let (_, nodes) = service.call("GET", "/v1/nodes", None, None);
    assert_eq!(json(&nodes)["nodes"][0]["state"], "cordoned");

    // The policy is swapped at run time.
    let (status, body) = service.call("PUT", "/v1/policy", None, Some(r#"{"name": "spread"}"#));
    assert_eq!(status, 200, "{body}");
    let (_, body) = service.call("GET", "/v1/policy", None, None);
    assert_eq!(json(&body)["name"], "spread");

    // Metrics count what happened.
    let (status, metrics) = service.call("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    for line in [
        "lepton_tasks{state=\"completed\"} 1",
        "lepton_tasks{state=\"failed\"} 1",
        "lepton_tasks{state=\"cancelled\"} 1",
        "lepton_accepted_tasks_total 4",
        "lepton_queue_length{priority=\"128\"} 1",
        "lepton_run_failures_total 4",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    assert!(
        metrics.contains("lepton_decision_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lepton_utilization_ratio{resource=\"cpu\"}"),
        "{metrics}"
    );

    // A restart keeps every task's state, the cordon and the policy.
    let dir = service.dir.clone();
    drop(service);
    let service = TestService::start_in(dir, |config| config.local.share = 0.5);
    assert_eq!(state(&service, 1), "completed");
    assert_eq!(state(&service, 2), "failed");
    assert_eq!(state(&service, 3), "cancelled");
    assert_eq!(state(&service, 4), "queued");
    let (_, body) = service.call("GET", "/v1/policy", None, None);
    assert_eq!(json(&body)["name"], "spread");
    let (status, _) = service.call("POST", "/v1/nodes/0/uncordon", None, Some("{}"));
    assert_eq!(status, 200);
    eventually("task 4 runs once the node is uncordoned", || {
        state(&service, 4) == "completed"
    });
    // Ids stay taken across the restart.
    assert_eq!(
        service.call("POST", "/v1/tasks", None, Some(waiting)).0,
        409
    );
}

#[test]
fn a_drain_moves_work_off_a_node_and_keeps_it_cordoned() {
    let service = TestService::start("drain", |config| {
        config.local.nodes = 2;
        config.local.share = 0.5;
    });
    let long = r#"[{"id": 1, "request": {"cpu_milli": 50}, "config": {"command": "sleep 60"}}]"#;
    assert_eq!(service.call("POST", "/v1/tasks", None, Some(long)).0, 202);
    eventually("task 1 runs", || state(&service, 1) == "running");
    let (_, body) = service.call("GET", "/v1/tasks/1", None, None);
    let node = json(&body)["node"].as_u64().unwrap();
    let (status, body) = service.call("POST", &format!("/v1/nodes/{node}/drain"), None, Some("{}"));
    assert_eq!(status, 200, "{body}");
    eventually("task 1 runs on the other node", || {
        let (_, body) = service.call("GET", "/v1/tasks/1", None, None);
        let task = json(&body);
        task["state"] == "running" && task["node"].as_u64() != Some(node)
    });
    let (_, nodes) = service.call("GET", "/v1/nodes", None, None);
    let nodes = json(&nodes);
    let drained = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"].as_u64() == Some(node))
        .unwrap()
        .clone();
    assert_eq!(drained["state"], "cordoned", "{drained}");
    let (status, _) = service.call("POST", "/v1/tasks/1/cancel", None, Some("{}"));
    assert_eq!(status, 200);
}

#[test]
fn the_openapi_description_names_every_route_the_service_answers() {
    let service = TestService::start("openapi", |_| {});
    let (status, body) = service.call("GET", "/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    let description = json(&body);
    assert_eq!(description["openapi"], "3.0.3");
    let paths = description["paths"].as_object().unwrap();
    // Each documented route answers (not the router's 404), and each
    // route the service has is documented.
    let routes = [
        ("GET", "/healthz", "/healthz"),
        ("GET", "/", "/"),
        ("GET", "/metrics", "/metrics"),
        ("GET", "/v1/openapi.json", "/v1/openapi.json"),
        ("GET", "/v1/tasks", "/v1/tasks"),
        ("GET", "/v1/tasks/1", "/v1/tasks/{id}"),
        ("POST", "/v1/tasks/1/cancel", "/v1/tasks/{id}/cancel"),
        ("GET", "/v1/nodes", "/v1/nodes"),
        ("POST", "/v1/nodes/9/cordon", "/v1/nodes/{id}/cordon"),
        ("POST", "/v1/nodes/9/uncordon", "/v1/nodes/{id}/uncordon"),
        ("POST", "/v1/nodes/9/drain", "/v1/nodes/{id}/drain"),
        ("GET", "/v1/policy", "/v1/policy"),
        ("GET", "/v1/leader", "/v1/leader"),
    ];
    assert_eq!(paths.len(), routes.len(), "{:?}", paths.keys());
    for (method, path) in [("post", "/v1/tasks"), ("put", "/v1/policy")] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    for (method, path, documented) in routes {
        assert!(
            paths.contains_key(documented),
            "{documented} is not documented"
        );
        let operation = &paths[documented][method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {documented} is not documented"
        );
        let (status, body) = service.call(method, path, None, Some("{}"));
        assert!(
            !body.contains("no such route"),
            "{method} {path}: {status} {body}"
        );
    }
}

#[test]
fn the_rule_policy_retries_and_heartbeats_come_from_the_configuration() {
    let dir = std::env::temp_dir().join(format!("lepton-rules-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, "[[score]]\nrule = \"spread\"\n").unwrap();
    let text = format!(
        "policy = \"rule\"\nrules = \"{}\"\nheartbeat_timeout_s = 30\n\n[retry.batch]\nmax_retries = 0\ndelay_ms = 10\nmax_delay_ms = 10\n",
        rules.display()
    );
    let from_file = lepton_service::ServiceConfig::from_toml(&text, "lepton.toml").unwrap();
    let service = TestService::start("rules", |config| {
        config.policy = from_file.policy.clone();
        config.rules = from_file.rules.clone();
        config.heartbeat_timeout_s = from_file.heartbeat_timeout_s;
        config.retry = from_file.retry.clone();
    });
    let (_, body) = service.call("GET", "/v1/policy", None, None);
    assert_eq!(json(&body)["name"], "rule");
    // No retry for batch tasks: the first failure is final.
    let failing = r#"{"id": 1, "kind": "batch", "request": {"cpu_milli": 10}, "config": {"command": "false"}}"#;
    assert_eq!(
        service.call("POST", "/v1/tasks", None, Some(failing)).0,
        202
    );
    eventually("task 1 fails for good", || state(&service, 1) == "failed");
    let (_, body) = service.call("GET", "/v1/tasks/1", None, None);
    assert_eq!(json(&body)["attempts"], 1);
    // Swapping back to `rule` at run time uses the same rules.
    assert_eq!(
        service
            .call("PUT", "/v1/policy", None, Some(r#"{"name": "spread"}"#))
            .0,
        200
    );
    assert_eq!(
        service
            .call("PUT", "/v1/policy", None, Some(r#"{"name": "rule"}"#))
            .0,
        200
    );

    let without_rules =
        lepton_service::ServiceConfig::from_toml("policy = \"rule\"\n", "lepton.toml")
            .unwrap_err()
            .to_string();
    assert!(without_rules.contains("needs its rules"), "{without_rules}");
}
