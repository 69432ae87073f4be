//! The client commands (`lepton tasks`, `submit`, …) reach a service in
//! each of its modes: HTTPS with its own CA (`--ca-cert`), plain HTTP by a
//! bare host:port, and refuse an address or a CA file they cannot use with
//! a message naming it.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::service::Service;

/// `lepton ARGS` with `LEPTON_*` cleared: success, stdout, stderr.
fn lepton(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_lepton"))
        .args(args)
        .env_remove("LEPTON_ADDR")
        .env_remove("LEPTON_TOKEN")
        .env_remove("LEPTON_CA_CERT")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_client_speaks_https_to_a_service_with_its_own_certificate() {
    let mut service = Service::new("client-tls", "token = \"s3cret\"\n");
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (service.dir.join("cert.pem"), service.dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let config = service.dir.join("lepton.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    ));
    std::fs::write(&config, text).unwrap();
    let port = service.address.rsplit(':').next().unwrap().to_owned();
    service.address = format!("https://localhost:{port}");
    service.start();
    assert!(
        service.log().contains("listening on https://"),
        "{}",
        service.log()
    );

    let https = service.address.clone();
    let ca = cert_path.to_str().unwrap();
    let (ok, out, err) = lepton(&[
        "nodes",
        "--addr",
        &https,
        "--token",
        "s3cret",
        "--ca-cert",
        ca,
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("ready"), "{out}");
    let task = service.dir.join("task.json");
    std::fs::write(
        &task,
        r#"{"id": 4, "request": {"cpu_milli": 10, "memory_mib": 8}, "config": {"command": "true"}}"#,
    )
    .unwrap();
    let (ok, out, err) = lepton(&[
        "submit",
        task.to_str().unwrap(),
        "--addr",
        &https,
        "--token",
        "s3cret",
        "--ca-cert",
        ca,
    ]);
    assert!(ok, "{out}{err}");

    // Not trusted without its CA: said so, naming the address.
    let (ok, _, err) = lepton(&["nodes", "--addr", &https, "--token", "s3cret"]);
    assert!(!ok);
    assert!(
        err.contains(&https) && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    // Plain HTTP to it gets no answer it could mistake for one.
    let (ok, _, err) = lepton(&[
        "nodes",
        "--addr",
        &format!("http://127.0.0.1:{port}"),
        "--token",
        "s3cret",
    ]);
    assert!(!ok, "{err}");
    // A CA file that is not one is refused before anything is sent.
    let (ok, _, err) = lepton(&[
        "nodes",
        "--addr",
        &https,
        "--ca-cert",
        key_path.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("--ca-cert") && err.contains("key.pem"),
        "{err}"
    );
    let (ok, _, err) = lepton(&[
        "nodes",
        "--addr",
        &https,
        "--ca-cert",
        "/nonexistent/ca.pem",
    ]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn a_bare_host_and_port_is_plain_http_and_a_bad_address_is_named() {
    let mut service = Service::new("client-bare", "");
    service.start();
    let bare = service.address.trim_start_matches("http://").to_owned();
    let (ok, out, err) = lepton(&["tasks", "--addr", &bare]);
    assert!(ok, "{out}{err}");
    for bad in ["ftp://127.0.0.1:7700", "http://", "127.0.0.1:7700/v1 x"] {
        let (ok, _, err) = lepton(&["tasks", "--addr", bad]);
        assert!(!ok, "{bad}");
        assert!(
            err.contains("--addr") && err.contains("HOST:PORT"),
            "{bad}: {err}"
        );
    }
}

/// `lepton ARGS --addr ADDR`, which must succeed: its stdout.
fn succeeds(args: &[&str], addr: &str) -> String {
    let mut all = args.to_vec();
    all.extend(["--addr", addr]);
    let (ok, out, err) = lepton(&all);
    assert!(ok, "{args:?}: {out}{err}");
    out
}

#[test]
fn explain_says_why_a_task_waits_and_plan_what_would_happen() {
    let mut service = Service::new("client-explain", "");
    service.start();
    let addr = service.address.clone();
    let run = |args: &[&str]| succeeds(args, &addr);
    // Every node drained (so cordoned): nothing can take the task.
    let nodes: serde_json::Value = serde_json::from_str(&run(&["nodes", "-o", "json"])).unwrap();
    let ids: Vec<String> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["id"].to_string())
        .collect();
    for id in &ids {
        run(&["drain", id]);
    }
    let file = service.dir.join("task.json");
    let task = r#"[{"id": 3, "request": {"cpu_milli": 50}, "config": {"command": "true"}}]"#;
    std::fs::write(&file, task).unwrap();
    run(&["submit", file.to_str().unwrap()]);

    let count = ids.len();
    let expected = format!(
        "task 3 waits: 0/{count} nodes are available: {count} the node is cordoned, not ready"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = run(&["explain", "3"]);
        if out.starts_with(&expected) {
            let line = format!("{count:>8}  the node is cordoned, not ready");
            assert!(out.lines().any(|l| l == line), "{out}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (ok, _, err) = lepton(&["explain", "99", "--addr", &addr]);
    assert!(!ok);
    assert!(err.contains("no task 99"), "{err}");

    // A plan of another task: it would wait for the same reason, and
    // nothing is submitted.
    let other = service.dir.join("other.json");
    let task = r#"{"id": 4, "request": {"cpu_milli": 50}, "config": {"command": "true"}}"#;
    std::fs::write(&other, task).unwrap();
    let out = run(&["plan", other.to_str().unwrap()]);
    assert!(
        out.starts_with(&expected.replace("task 3", "task 4")),
        "{out}"
    );
    let (ok, _, err) = lepton(&["explain", "4", "--addr", &addr]);
    assert!(!ok && err.contains("no task 4"), "{err}");
}

#[test]
fn queues_lists_the_tenant_queues_and_explain_says_what_holds_a_task() {
    let queue = "[[queue]]\nname = \"team\"\nmax = { cpu_milli = 100 }\n";
    let mut service = Service::new("client-queues", queue);
    service.start();
    let addr = service.address.clone();
    let run = |args: &[&str]| succeeds(args, &addr);
    let file = service.dir.join("tasks.json");
    let tasks = r#"[
        {"id": 1, "request": {"cpu_milli": 100}, "queue": "team", "config": {"command": "sleep 30"}},
        {"id": 2, "request": {"cpu_milli": 100}, "queue": "team", "config": {"command": "sleep 30"}}
    ]"#;
    std::fs::write(&file, tasks).unwrap();
    run(&["submit", file.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = run(&["queues"]);
        let row = out.lines().find(|l| l.starts_with("team")).unwrap_or("");
        let cells: Vec<&str> = row.split_whitespace().collect();
        if cells.get(3) == Some(&"100/100") {
            // The share is of this machine's cores: not compared.
            let share: f64 = cells[2].parse().unwrap();
            assert!(share > 0.0 && share <= 1.0, "{out}");
            assert_eq!(cells[..2], ["team", "1"], "{out}");
            assert_eq!(cells[3..], ["100/100", "0/-", "1"], "{out}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = run(&["explain", "2"]);
    assert!(
        out.starts_with(
            "task 2 waits for admission: queue team is at its maximum: \
             cpu_milli 200 with this task > 100"
        ),
        "{out}"
    );
    for id in ["1", "2"] {
        let cancel = format!("{addr}/v1/tasks/{id}/cancel");
        ureq::post(&cancel)
            .set("Content-Type", "application/json")
            .send_string("{}")
            .unwrap();
    }
}
