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
fn a_waiting_task_says_which_nodes_refuse_it_and_why() {
    let service = TestService::start("explain", |config| {
        config.local.nodes = 2;
        config.local.share = 0.5;
    });
    for node in 0..2 {
        let path = format!("/v1/nodes/{node}/cordon");
        let (status, body) = service.call("POST", &path, None, Some("{}"));
        assert_eq!(status, 200, "{body}");
    }
    let task = r#"[{"id": 5, "request": {"cpu_milli": 50}, "config": {"command": "sleep 60"}}]"#;
    assert_eq!(service.call("POST", "/v1/tasks", None, Some(task)).0, 202);
    eventually("task 5 is explained", || {
        let (_, body) = service.call("GET", "/v1/tasks/5", None, None);
        json(&body).get("pending_reasons").is_some()
    });
    let (_, body) = service.call("GET", "/v1/tasks/5", None, None);
    let waiting = json(&body);
    assert_eq!(waiting["state"], "queued", "{body}");
    assert_eq!(
        waiting["pending_reasons"],
        serde_json::json!([{"reason": "the node is cordoned, not ready", "nodes": 2}]),
        "{body}"
    );
    assert_eq!(waiting["available_nodes"], 0, "{body}");
    let summary = waiting["pending_summary"].as_str().unwrap();
    assert!(
        summary.starts_with("task 5 waits: 0/2 nodes are available: 2 the node is cordoned"),
        "{summary}"
    );

    let (status, _) = service.call("POST", "/v1/nodes/0/uncordon", None, Some("{}"));
    assert_eq!(status, 200);
    eventually("task 5 runs", || state(&service, 5) == "running");
    let (_, body) = service.call("GET", "/v1/tasks/5", None, None);
    assert!(json(&body).get("pending_reasons").is_none(), "{body}");
    let (status, _) = service.call("POST", "/v1/tasks/5/cancel", None, Some("{}"));
    assert_eq!(status, 200);
}

#[test]
fn a_plan_says_where_tasks_would_go_and_submits_nothing() {
    let service = TestService::start("plan", |config| {
        config.local.nodes = 2;
        config.local.share = 0.5;
    });
    let (status, body) = service.call("POST", "/v1/nodes/1/cordon", None, Some("{}"));
    assert_eq!(status, 200, "{body}");
    // Node 0 holds task 20 and then has too little CPU left for 21.
    let nodes = json(&service.call("GET", "/v1/nodes", None, None).1);
    let cpu = nodes["nodes"][0]["cpu_milli"].as_u64().unwrap();
    let tasks = format!(
        r#"[
        {{"id": 20, "request": {{"cpu_milli": {}}}, "config": {{"command": "true"}}}},
        {{"id": 21, "request": {{"cpu_milli": {}}}, "config": {{"command": "true"}}}}
    ]"#,
        cpu / 2,
        cpu * 3 / 4
    );
    let tasks = tasks.as_str();
    let (status, body) = service.call("POST", "/v1/plan", None, Some(tasks));
    assert_eq!(status, 200, "{body}");
    let plan = json(&body);
    assert_eq!(
        plan["placed"],
        serde_json::json!([{"task": 20, "node": 0, "gpus": [], "preempts": []}]),
        "{body}"
    );
    let waiting = &plan["waiting"][0];
    assert_eq!(waiting["task"], 21, "{body}");
    assert_eq!(waiting["available_nodes"], 0, "{body}");
    let reasons = waiting["reasons"].as_array().unwrap();
    let mut said: Vec<&str> = reasons
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    said.sort_unstable();
    assert_eq!(
        said,
        [
            "not enough free cpu_milli",
            "the node is cordoned, not ready"
        ],
        "{body}"
    );
    // Nothing was submitted: the ids are free, and no task exists.
    let (status, _) = service.call("GET", "/v1/tasks/20", None, None);
    assert_eq!(status, 404);
    let (status, body) = service.call("POST", "/v1/tasks", None, Some(tasks));
    assert_eq!(status, 202, "{body}");
    // Now they are known: planning them again is a conflict.
    let (status, body) = service.call("POST", "/v1/plan", None, Some(tasks));
    assert_eq!(status, 409, "{body}");
    for bad in [
        "[1]",
        r#"{"id": 30, "request": {"cpu_milli": 100000000}, "config": {"command": "true"}}"#,
    ] {
        let (status, body) = service.call("POST", "/v1/plan", None, Some(bad));
        assert_eq!(status, 400, "{bad}: {body}");
    }
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
        ("POST", "/v1/plan", "/v1/plan"),
        ("GET", "/v1/queues", "/v1/queues"),
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

/// Every page of `GET /v1/tasks?{query}` from the first, following `next`:
/// the ids on each page, and the counts each answered.
fn walk(service: &TestService, query: &str) -> (Vec<Vec<u64>>, Vec<Value>) {
    let (mut pages, mut counts) = (Vec::new(), Vec::new());
    let mut after: Option<u64> = None;
    loop {
        let cursor = after.map_or(String::new(), |id| format!("&after={id}"));
        let (status, body) = service.call("GET", &format!("/v1/tasks?{query}{cursor}"), None, None);
        assert_eq!(status, 200, "{query}{cursor}: {body}");
        let answer = json(&body);
        let ids = answer["tasks"].as_array().unwrap().iter();
        pages.push(ids.map(|t| t["id"].as_u64().unwrap()).collect());
        counts.push(answer["counts"].clone());
        match answer["next"].as_u64() {
            Some(next) => after = Some(next),
            None => {
                assert!(answer["next"].is_null(), "{answer}");
                return (pages, counts);
            }
        }
        assert!(pages.len() < 100, "{query}: the walk does not end");
    }
}

#[test]
fn the_task_list_pages_through_every_task_once_by_state_and_order() {
    let service = TestService::start("paging", |_| {});
    // Nothing runs: the tasks stay queued, but for those cancelled.
    assert_eq!(
        service.call("POST", "/v1/nodes/0/cordon", None, None).0,
        200
    );
    let ids: Vec<u64> = (0..250).map(|i| 3 * i + 1).collect();
    let tasks: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(
                r#"{{"id": {id}, "request": {{"cpu_milli": 10}}, "config": {{"command": "true"}}}}"#
            )
        })
        .collect();
    let (status, body) = service.call(
        "POST",
        "/v1/tasks",
        None,
        Some(&format!("[{}]", tasks.join(","))),
    );
    assert_eq!(status, 202, "{body}");
    let cancelled: Vec<u64> = ids.iter().copied().filter(|id| id % 7 == 0).collect();
    for id in &cancelled {
        let (status, body) = service.call("POST", &format!("/v1/tasks/{id}/cancel"), None, None);
        assert_eq!(status, 200, "{body}");
    }
    let queued: Vec<u64> = ids.iter().copied().filter(|id| id % 7 != 0).collect();
    let expected_counts = serde_json::json!({
        "queued": queued.len(), "running": 0, "completed": 0,
        "failed": 0, "cancelled": cancelled.len(),
    });

    // Oldest first, 100 a page: each task exactly once, in id order, and
    // every page counts every task.
    let (pages, counts) = walk(&service, "limit=100");
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [100, 100, 50]
    );
    assert_eq!(pages.concat(), ids);
    assert!(counts.iter().all(|c| *c == expected_counts), "{counts:?}");
    // Newest first.
    let (pages, _) = walk(&service, "order=desc&limit=64");
    let newest_first: Vec<u64> = ids.iter().rev().copied().collect();
    assert_eq!(pages.concat(), newest_first);
    assert_eq!(pages.len(), 4);
    // One state: the page holds only its tasks, and walks all of them.
    let (pages, _) = walk(&service, "state=cancelled&limit=10");
    assert_eq!(pages.concat(), cancelled);
    assert!(pages.iter().all(|page| page.len() <= 10));
    let (pages, _) = walk(&service, "state=queued&order=desc&limit=1000");
    assert_eq!(pages, [queued.iter().rev().copied().collect::<Vec<_>>()]);
    let (pages, counts) = walk(&service, "state=failed&limit=5");
    assert_eq!(
        (pages, counts),
        (vec![vec![]], vec![expected_counts.clone()])
    );
    // A cursor between ids, and past the last one.
    let (_, body) = service.call("GET", "/v1/tasks?after=5&limit=2", None, None);
    let answer = json(&body);
    assert_eq!(answer["tasks"][0]["id"], 7, "{answer}");
    assert_eq!(
        (answer["tasks"][1]["id"].as_u64(), answer["next"].as_u64()),
        (Some(10), Some(10))
    );
    let (pages, _) = walk(&service, "after=100000");
    assert_eq!(pages, [Vec::<u64>::new()]);
    // Only the counts; and without a limit, every task at once.
    let (pages, counts) = walk(&service, "limit=0");
    assert_eq!((pages, counts), (vec![vec![]], vec![expected_counts]));
    let (pages, _) = walk(&service, "");
    assert_eq!(pages, [ids]);

    // Bad values: a 400 naming the field and the value.
    for (query, field, named) in [
        ("limit=1001", "limit", "1001 is more than 1000"),
        (
            "limit=18446744073709551616",
            "limit",
            "\"18446744073709551616\" is not a whole number",
        ),
        ("limit=-1", "limit", "\"-1\""),
        ("limit=ten", "limit", "\"ten\""),
        ("after=-1", "after", "\"-1\" is not a task id"),
        ("after=7.5", "after", "\"7.5\""),
        ("order=sideways", "order", "\"sideways\" is not an order"),
        ("state=lost", "state", "\"lost\" is not a state"),
    ] {
        let (status, body) = service.call("GET", &format!("/v1/tasks?{query}"), None, None);
        assert_eq!(status, 400, "{query}: {body}");
        let error = json(&body);
        assert_eq!(error["field"], field, "{query}: {body}");
        assert!(
            error["error"].as_str().unwrap().contains(named),
            "{query}: {body}"
        );
    }
}

/// A service whose queue `team` holds at most 200 milli-cores.
fn with_queue(config: &mut lepton_service::ServiceConfig) {
    let max = lepton::admission::Limits::cpu_milli(200);
    config.queue = vec![lepton::admission::QueueSpec::new("team").with_max(max)];
}

#[test]
fn a_tenant_queue_admits_by_its_maximum_and_keeps_its_share_over_a_restart() {
    let service = TestService::start("queues", with_queue);
    let task = |id: u64, cpu: u64, queue: &str| {
        format!(
            r#"{{"id": {id}, "request": {{"cpu_milli": {cpu}}}, "queue": "{queue}", "config": {{"command": "sleep 60"}}}}"#
        )
    };
    let (status, body) = service.call("POST", "/v1/tasks", None, Some(&task(9, 100, "nope")));
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["field"], "[0].queue", "{body}");
    assert!(
        body.contains("\\\"nope\\\", which is not declared"),
        "{body}"
    );
    let (status, body) = service.call("POST", "/v1/tasks", None, Some(&task(9, 300, "team")));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("more than queue team allows at most (200)"),
        "{body}"
    );

    let three = format!(
        "[{}, {}, {}]",
        task(1, 100, "team"),
        task(2, 100, "team"),
        task(3, 100, "team")
    );
    assert_eq!(service.call("POST", "/v1/tasks", None, Some(&three)).0, 202);
    eventually("tasks 1 and 2 run", || {
        state(&service, 1) == "running" && state(&service, 2) == "running"
    });
    let held = |service: &TestService| {
        let (_, body) = service.call("GET", "/v1/tasks/3", None, None);
        let task = json(&body);
        assert_eq!(task["state"], "queued", "{body}");
        assert_eq!(task["queue"], "team", "{body}");
        assert_eq!(
            task["waiting_for_admission"],
            "queue team is at its maximum: cpu_milli 300 with this task > 200",
            "{body}"
        );
        let summary = task["pending_summary"].as_str().unwrap().to_owned();
        assert!(
            summary.starts_with("task 3 waits for admission"),
            "{summary}"
        );
        let (_, body) = service.call("GET", "/v1/queues", None, None);
        let queue = json(&body)["queues"][0].clone();
        assert_eq!(queue["name"], "team", "{body}");
        assert_eq!(queue["usage"]["cpu_milli"], 200, "{body}");
        assert_eq!(queue["waiting"], 1, "{body}");
        assert_eq!(queue["max"]["cpu_milli"], 200, "{body}");
    };
    eventually("the view shows task 3 held", || {
        let (_, body) = service.call("GET", "/v1/queues", None, None);
        json(&body)["queues"][0]["waiting"] == 1
    });
    held(&service);

    // The running tasks are adopted and counted in their queue again; the
    // third still waits.
    let dir = service.dir.clone();
    drop(service);
    let service = TestService::start_in(dir, with_queue);
    assert_eq!(state(&service, 1), "running");
    std::thread::sleep(std::time::Duration::from_millis(200));
    held(&service);

    // A configuration without the queue its waiting task names is refused
    // at start, not a task lost.
    let dir = service.dir.clone();
    drop(service);
    let config = lepton_service::ServiceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.clone(),
        ..lepton_service::ServiceConfig::default()
    };
    let error = lepton_service::start(config, 1).err().unwrap().to_string();
    assert!(
        error.contains("a stored task that has not ended: task t-1 names queue \"team\""),
        "{error}"
    );
    let service = TestService::start_in(dir, with_queue);
    let (status, _) = service.call("POST", "/v1/tasks/1/cancel", None, Some("{}"));
    assert_eq!(status, 200);
    eventually("task 3 is admitted and runs", || {
        state(&service, 3) == "running"
    });
    for id in [2, 3] {
        let path = format!("/v1/tasks/{id}/cancel");
        assert_eq!(service.call("POST", &path, None, Some("{}")).0, 200);
    }
}

#[test]
fn a_gang_submitted_in_parts_starts_once_it_is_whole() {
    let service = TestService::start("gang", |config| config.local.share = 0.5);
    let member = |id: u64| {
        format!(
            r#"{{"id": {id}, "request": {{"cpu_milli": 50}}, "gang": {{"name": "train", "min_available": 2}}, "config": {{"command": "sleep 30"}}}}"#
        )
    };
    assert_eq!(
        service.call("POST", "/v1/tasks", None, Some(&member(1))).0,
        202
    );
    eventually("task 1 waits for its gang", || {
        let (_, body) = service.call("GET", "/v1/tasks/1", None, None);
        json(&body)["waiting_for_gang"]
            == "gang train needs 2 members placed together; 1 are waiting"
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(state(&service, 1), "queued");
    let (status, body) = service.call(
        "POST",
        "/v1/tasks",
        None,
        Some(r#"{"id": 2, "request": {"cpu_milli": 50}, "gang": {"name": "train", "min_available": 3}, "config": {"command": "true"}}"#),
    );
    assert_eq!(status, 202, "{body}");
    // A member declaring the gang otherwise fails, saying so.
    eventually("task 2 fails", || state(&service, 2) == "failed");
    let (_, body) = service.call("GET", "/v1/tasks/2", None, None);
    assert!(
        json(&body)["reasons"][0]
            .as_str()
            .unwrap()
            .contains("its members declare min_available 2"),
        "{body}"
    );
    assert_eq!(
        service.call("POST", "/v1/tasks", None, Some(&member(3))).0,
        202
    );
    eventually("tasks 1 and 3 run", || {
        state(&service, 1) == "running" && state(&service, 3) == "running"
    });
    // The failure without a run was stored: a restart keeps it.
    let dir = service.dir.clone();
    drop(service);
    let service = TestService::start_in(dir, |config| config.local.share = 0.5);
    assert_eq!(state(&service, 2), "failed");
    assert_eq!(state(&service, 1), "running");
    // Cancelling one member leaves too few to make the gang: the other
    // fails, saying why, and its run is stopped.
    let (status, _) = service.call("POST", "/v1/tasks/1/cancel", None, Some("{}"));
    assert_eq!(status, 200);
    eventually("task 3 fails with its gang", || {
        state(&service, 3) == "failed"
    });
    let (_, body) = service.call("GET", "/v1/tasks/3", None, None);
    assert_eq!(
        json(&body)["reasons"][0],
        "gang train cannot reach its 2 members: member t-1 cancelled",
        "{body}"
    );
}
