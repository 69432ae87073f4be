//! Bad requests and intruders: each gets the right 4xx with a JSON error
//! naming what is wrong, and none changes the state.

#![allow(clippy::unwrap_used)]

mod support;

use support::TestService;

const TOKEN: &str = "s3cret-token";

fn task(id: u64) -> String {
    format!(
        r#"{{"id": {id}, "request": {{"cpu_milli": 10, "memory_mib": 8}}, "config": {{"command": "true"}}}}"#
    )
}

/// The ids of the tasks the service holds.
fn task_ids(service: &TestService) -> Vec<u64> {
    let (status, body) = service.call("GET", "/v1/tasks", Some(TOKEN), None);
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn requests_without_the_token_are_refused_and_change_nothing() {
    let service = TestService::start("auth", |config| {
        config.token = Some(TOKEN.into());
        config.local.share = 0.5;
    });
    // Health needs no token.
    assert_eq!(service.call("GET", "/healthz", None, None).0, 200);
    for token in [None, Some("wrong-token"), Some("s3cret-tokenX"), Some("")] {
        let (status, body) = service.call("POST", "/v1/tasks", token, Some(&task(1)));
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(body.contains("\"error\""), "{body}");
        for (method, path) in [
            ("GET", "/v1/tasks"),
            ("GET", "/v1/nodes"),
            ("POST", "/v1/nodes/0/cordon"),
            ("PUT", "/v1/policy"),
            ("GET", "/metrics"),
            // Nothing, not even which routes exist, without the token.
            ("GET", "/v2/tasks"),
            ("DELETE", "/v1/tasks"),
        ] {
            let (status, _) = service.call(method, path, token, Some("{}"));
            assert_eq!(status, 401, "{method} {path} with {token:?}");
        }
    }
    assert!(task_ids(&service).is_empty());
    let (status, body) = service.call("POST", "/v1/tasks", Some(TOKEN), Some(&task(1)));
    assert_eq!(status, 202, "{body}");
    assert_eq!(task_ids(&service), [1]);
    // The node was never cordoned by the refused requests.
    let (_, nodes) = service.call("GET", "/v1/nodes", Some(TOKEN), None);
    assert!(nodes.contains("\"state\":\"ready\""), "{nodes}");
}

#[test]
fn malformed_oversized_and_unknown_requests_get_4xx_naming_the_field() {
    let service = TestService::start("bad", |config| {
        config.token = Some(TOKEN.into());
        config.max_body_bytes = 4_096;
        config.max_tasks_per_request = 20;
    });
    let big = format!("[{}]", vec![task(7); 100].join(","));
    let many = format!("[{}]", (100..130).map(task).collect::<Vec<_>>().join(","));
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "POST",
            "/v1/tasks".into(),
            "{not json".into(),
            400,
            "\"field\":\"body\"",
        ),
        (
            "POST",
            "/v1/tasks".into(),
            "[]".into(),
            400,
            "an empty array",
        ),
        ("POST", "/v1/tasks".into(), "42".into(), 400, "got a number"),
        ("POST", "/v1/tasks".into(), big, 413, "body"),
        (
            "POST",
            "/v1/tasks".into(),
            many,
            400,
            "30 tasks in one request; at most 20",
        ),
        (
            "POST",
            "/v1/tasks".into(),
            r#"{"id": 2, "request": {"cpu_milli": 1}, "gpus": 1}"#.into(),
            400,
            "unknown field `gpus`",
        ),
        (
            "POST",
            "/v1/tasks".into(),
            r#"{"id": 2, "request": {}}"#.into(),
            400,
            "requests nothing",
        ),
        (
            "POST",
            "/v1/tasks".into(),
            r#"{"id": 2, "request": {"cpu_milli": 18446744073709551616}}"#.into(),
            400,
            "\"field\":\"[0]\"",
        ),
        (
            "POST",
            "/v1/tasks".into(),
            r#"{"id": -2, "request": {"cpu_milli": 1}}"#.into(),
            400,
            "\"field\":\"[0]\"",
        ),
        (
            "POST",
            "/v1/tasks".into(),
            format!("[{}, {}]", task(3), task(3)),
            409,
            "task id 3 is already submitted",
        ),
        (
            "GET",
            "/v1/tasks/..%2F..%2Fetc%2Fpasswd".into(),
            String::new(),
            400,
            "is not a task id",
        ),
        (
            "GET",
            "/v1/tasks/../../etc/passwd".into(),
            String::new(),
            404,
            "\"error\"",
        ),
        (
            "GET",
            "/v1/tasks/99".into(),
            String::new(),
            404,
            "no task 99",
        ),
        (
            "POST",
            "/v1/tasks/99/cancel".into(),
            String::new(),
            404,
            "no task 99",
        ),
        (
            "POST",
            "/v1/nodes/7/drain".into(),
            String::new(),
            404,
            "no node 7",
        ),
        (
            "POST",
            "/v1/nodes/-1/cordon".into(),
            String::new(),
            400,
            "is not a node id",
        ),
        (
            "GET",
            "/v1/tasks?state=sleeping".into(),
            String::new(),
            400,
            "is not a state (queued",
        ),
        (
            "GET",
            "/v1/tasks?color=red".into(),
            String::new(),
            400,
            "\"field\":\"query\"",
        ),
        (
            "PUT",
            "/v1/policy".into(),
            r#"{"name": "fastest"}"#.into(),
            400,
            "fastest",
        ),
        (
            "PUT",
            "/v1/policy".into(),
            r#"{"name": "spread", "x": 1}"#.into(),
            400,
            "unknown field `x`",
        ),
        (
            "GET",
            "/v2/tasks".into(),
            String::new(),
            404,
            "no such route",
        ),
        (
            "DELETE",
            "/v1/tasks".into(),
            String::new(),
            405,
            "DELETE /v1/tasks: not a method of this route",
        ),
    ];
    for (method, path, body, status, names) in cases {
        let body = (!body.is_empty()).then_some(body.as_str());
        let (got, answer) = service.call(method, &path, Some(TOKEN), body);
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert!(answer.contains(names), "{method} {path}: {answer}");
        if status != 404 || answer.starts_with('{') {
            let json: serde_json::Value = serde_json::from_str(&answer)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {answer}"));
            assert!(json["error"].is_string(), "{answer}");
        }
    }
    assert!(
        task_ids(&service).is_empty(),
        "a refused request stored a task"
    );
    // A task accepted once is refused a second time, alone or in a batch.
    assert_eq!(
        service
            .call("POST", "/v1/tasks", Some(TOKEN), Some(&task(5)))
            .0,
        202
    );
    let again = format!("[{}, {}]", task(6), task(5));
    let (status, body) = service.call("POST", "/v1/tasks", Some(TOKEN), Some(&again));
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        task_ids(&service),
        [5],
        "all or nothing: task 6 was not accepted"
    );
}

#[test]
fn metrics_can_be_made_public_and_nothing_else_is() {
    let service = TestService::start("public-metrics", |config| {
        config.token = Some(TOKEN.into());
        config.public_metrics = true;
    });
    let (status, metrics) = service.call("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("lepton_accepted_tasks_total 0"),
        "{metrics}"
    );
    assert_eq!(service.call("GET", "/v1/tasks", None, None).0, 401);
}

#[test]
fn without_a_token_the_service_refuses_to_listen_beyond_loopback() {
    let config = lepton_service::ServiceConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        data_dir: std::env::temp_dir().join(format!("lepton-service-open-{}", std::process::id())),
        ..lepton_service::ServiceConfig::default()
    };
    let error = lepton_service::start(config, 1).unwrap_err();
    assert!(error.to_string().contains("loopback only"), "{error}");
}

/// Sends `head` (a request line and headers, without the blank line) and
/// `body` as bytes written by hand, so that `Host`, `Origin` and
/// `Content-Type` are exactly what a browser would send; the status and
/// the body of the answer.
fn raw(service: &TestService, head: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(service.address).unwrap();
    let request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[test]
fn without_a_token_what_a_web_page_can_send_is_refused_and_changes_nothing() {
    let service = TestService::start("browser", |config| config.local.share = 0.5);
    let port = service.address.port();
    let here = format!("127.0.0.1:{port}");
    let body = task(1);
    let cases = [
        // fetch(…, {mode: "no-cors", method: "POST", headers:
        // {"Content-Type": "text/plain"}}) from a page on another port.
        (
            format!("POST /v1/tasks HTTP/1.1\r\nHost: {here}\r\nOrigin: http://127.0.0.1:8000\r\nContent-Type: text/plain;charset=UTF-8"),
            body.as_str(),
            403,
            "origin \\\"http://127.0.0.1:8000\\\"",
        ),
        // A form posted from a page on the internet.
        (
            format!("POST /v1/nodes/0/cordon HTTP/1.1\r\nHost: {here}\r\nOrigin: https://attacker.example\r\nContent-Type: application/x-www-form-urlencoded"),
            "",
            403,
            "attacker.example",
        ),
        // DNS rebinding: the page's own name now points at loopback, so
        // its requests are same-origin and name that host.
        (
            format!("POST /v1/tasks HTTP/1.1\r\nHost: attacker.example:{port}\r\nOrigin: http://attacker.example:{port}\r\nContent-Type: application/json"),
            body.as_str(),
            403,
            "is not this machine's loopback",
        ),
        (
            format!("GET /v1/tasks HTTP/1.1\r\nHost: attacker.example:{port}"),
            "",
            403,
            "is not this machine's loopback",
        ),
        // Without a browser's Origin, bodies must still say they are JSON.
        (
            format!("POST /v1/tasks HTTP/1.1\r\nHost: {here}\r\nContent-Type: text/plain"),
            body.as_str(),
            415,
            "text/plain",
        ),
        (
            format!("POST /v1/tasks HTTP/1.1\r\nHost: {here}"),
            body.as_str(),
            415,
            "without a Content-Type",
        ),
        (
            format!("PUT /v1/policy HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: multipart/form-data; boundary=x"),
            r#"{"name": "spread"}"#,
            415,
            "multipart/form-data",
        ),
    ];
    for (head, body, status, names) in &cases {
        let (got, answer) = raw(&service, head, body);
        assert_eq!(got, *status, "{head}: {answer}");
        assert!(answer.contains(names), "{head}: {answer}");
        let json: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(json["error"].is_string(), "{answer}");
    }
    assert!(
        task_ids(&service).is_empty(),
        "a refused request stored a task"
    );
    let (_, nodes) = service.call("GET", "/v1/nodes", None, None);
    assert!(nodes.contains("\"state\":\"ready\""), "cordoned: {nodes}");
    let (_, policy) = service.call("GET", "/v1/policy", None, None);
    assert!(policy.contains("\"name\":\"bestfit\""), "{policy}");

    // What the CLI, curl with `-H 'Content-Type: application/json'` and the
    // service's own page send is answered, under each loopback name.
    for host in [
        here.clone(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (got, answer) = raw(
            &service,
            &format!("GET /v1/tasks HTTP/1.1\r\nHost: {host}"),
            "",
        );
        assert_eq!(got, 200, "{host}: {answer}");
    }
    let (got, answer) = raw(
        &service,
        &format!("POST /v1/tasks HTTP/1.1\r\nHost: {here}\r\nOrigin: http://{here}\r\nContent-Type: application/json; charset=utf-8"),
        &body,
    );
    assert_eq!(got, 202, "{answer}");
    let (got, answer) = raw(
        &service,
        &format!("POST /v1/tasks/1/cancel HTTP/1.1\r\nHost: {here}"),
        "",
    );
    assert_eq!(got, 200, "{answer}");
    assert_eq!(task_ids(&service), [1]);
}

#[test]
fn with_a_token_another_origin_still_cannot_write() {
    let service = TestService::start("browser-token", |config| {
        config.token = Some(TOKEN.into());
    });
    let port = service.address.port();
    // Any name reaches a service with a token (a load balancer's, say)…
    let (got, answer) = raw(
        &service,
        &format!("GET /v1/tasks HTTP/1.1\r\nHost: lepton.internal:{port}\r\nAuthorization: Bearer {TOKEN}"),
        "",
    );
    assert_eq!(got, 200, "{answer}");
    // …but a write from another origin is refused, token or not.
    let (got, answer) = raw(
        &service,
        &format!("POST /v1/tasks HTTP/1.1\r\nHost: lepton.internal:{port}\r\nOrigin: https://attacker.example\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json"),
        &task(1),
    );
    assert_eq!(got, 403, "{answer}");
    assert!(task_ids(&service).is_empty());
    // The scheme's case does not matter (RFC 7235).
    let (got, answer) = raw(
        &service,
        &format!("GET /v1/tasks HTTP/1.1\r\nHost: lepton.internal:{port}\r\nAuthorization: bearer {TOKEN}"),
        "",
    );
    assert_eq!(got, 200, "{answer}");
}
