//! The service's dashboard in a real browser: `lepton serve` runs tasks,
//! headless Chromium loads `/`, runs its script against the API and takes a
//! screenshot. The check fails on a script error or a page without nodes or
//! tasks — and is shown to fail on a page that cannot reach the API.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::browser::{load, scratch};
use support::service::Service;

/// What is wrong with the rendered dashboard, if anything.
fn problems(dom: &str, log: &str) -> Vec<String> {
    let mut found = Vec::new();
    if log.contains("Uncaught") {
        found.push("a script error".to_owned());
    }
    if !dom.contains("data-loaded=\"yes\"") {
        found.push("the script never loaded the API's answers".to_owned());
    }
    if !dom.contains("class=\"node\"") {
        found.push("no node is shown".to_owned());
    }
    if !dom.contains("class=\"task\"") {
        found.push("no task is shown".to_owned());
    }
    found
}

fn submit(service: &Service, body: &str) {
    let response = ureq::post(&format!("{}/v1/tasks", service.address))
        .set("Content-Type", "application/json")
        .send_string(body)
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[test]
fn the_dashboard_shows_nodes_and_tasks_in_chromium() {
    let mut service = Service::new("dashboard", "[local]\nshare = 0.5\n");
    service.start();
    submit(
        &service,
        r#"[{"id": 1, "name": "done", "request": {"cpu_milli": 100}, "config": {"command": "true"}},
            {"id": 2, "name": "busy", "request": {"cpu_milli": 100}, "config": {"command": "sleep 60"}}]"#,
    );
    let started = Instant::now();
    loop {
        let answer: serde_json::Value = ureq::get(&format!("{}/v1/tasks", service.address))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        if answer["counts"]["completed"] == 1 && answer["counts"]["running"] == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("{}/", service.address);
    let (dom, log) = load(&url, None);
    assert_eq!(problems(&dom, &log), Vec::<String>::new(), "{log}\n{dom}");
    for shown in ["local-0", "busy", "done", "state-running", "bestfit"] {
        assert!(dom.contains(shown), "{shown} not on the page:\n{dom}");
    }
    let png = scratch("dashboard").join("dashboard.png");
    load(&url, Some(&png));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    assert!(bytes.len() > 10_000, "screenshot of {} bytes", bytes.len());
    // The long task is not left running.
    let cancelled = ureq::post(&format!("{}/v1/tasks/2/cancel", service.address)).call();
    assert_eq!(cancelled.unwrap().status(), 200);

    // The same page against a service that wants a token it does not
    // have: the check sees an empty page.
    let mut locked = Service::new("dashboard-locked", "token = \"s3cret\"\n");
    locked.start();
    let (dom, log) = load(&format!("{}/", locked.address), None);
    let found = problems(&dom, &log);
    assert!(
        found.iter().any(|p| p.contains("never loaded"))
            && found.iter().any(|p| p.contains("no node")),
        "{found:?}"
    );
}
