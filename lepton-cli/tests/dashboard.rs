//! The service's dashboard in a real browser: `lepton serve` runs tasks,
//! headless Chromium loads `/`, runs its script against the API and takes a
//! screenshot. The check fails on a script error or a page without nodes or
//! tasks — and is shown to fail on a page that cannot reach the API. With
//! more tasks than a page holds, the page is loaded through a proxy that
//! records what it asked and was sent: failed tasks first, paged through
//! by the page's own links, each refresh one page and not the whole list.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
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

/// `GET /v1/tasks` until `done` says its answer is the one awaited.
fn wait_for_tasks(service: &Service, done: impl Fn(&serde_json::Value) -> bool) {
    let started = Instant::now();
    loop {
        let answer: serde_json::Value = ureq::get(&format!("{}/v1/tasks", service.address))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        if done(&answer) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_dashboard_shows_nodes_and_tasks_in_chromium() {
    let queue = "[[queue]]\nname = \"team\"\nmax = { cpu_milli = 500 }\n";
    let mut service = Service::new("dashboard", &format!("[local]\nshare = 0.5\n{queue}"));
    service.start();
    submit(
        &service,
        r#"[{"id": 1, "name": "done", "request": {"cpu_milli": 100}, "config": {"command": "true"}},
            {"id": 2, "name": "busy", "request": {"cpu_milli": 100}, "queue": "team", "config": {"command": "sleep 60"}}]"#,
    );
    wait_for_tasks(&service, |answer| {
        answer["counts"]["completed"] == 1 && answer["counts"]["running"] == 1
    });
    let url = format!("{}/", service.address);
    let (dom, log) = load(&url, None);
    assert_eq!(problems(&dom, &log), Vec::<String>::new(), "{log}\n{dom}");
    for shown in [
        "local-0",
        "busy",
        "done",
        "state-running",
        "bestfit",
        "<tr class=\"queue\"><td>team</td>",
        "20%",
    ] {
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

#[test]
fn the_dashboard_says_why_a_queued_task_waits() {
    let mut service = Service::new("dashboard-why", "[local]\nshare = 0.5\n");
    service.start();
    let nodes: serde_json::Value = ureq::get(&format!("{}/v1/nodes", service.address))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let nodes = nodes["nodes"].as_array().unwrap().len();
    for node in 0..nodes {
        let path = format!("{}/v1/nodes/{node}/cordon", service.address);
        let cordoned = ureq::post(&path)
            .set("Content-Type", "application/json")
            .send_string("{}");
        assert_eq!(cordoned.unwrap().status(), 200);
    }
    submit(
        &service,
        r#"[{"id": 5, "name": "waits", "request": {"cpu_milli": 100}, "config": {"command": "true"}}]"#,
    );
    wait_for_tasks(&service, |answer| answer["counts"]["queued"] == 1);
    let (dom, log) = load(&format!("{}/#state=queued&why=5", service.address), None);
    assert_eq!(problems(&dom, &log), Vec::<String>::new(), "{log}\n{dom}");
    let summary = format!("0/{nodes} nodes are available: {nodes} the node is cordoned, not ready");
    for shown in [
        summary.as_str(),
        &format!("{nodes} × the node is cordoned, not ready"),
        "class=\"why\"",
    ] {
        assert!(dom.contains(shown), "{shown} not on the page:\n{dom}");
    }
    // Without asking, the page says nothing of it.
    let (dom, _) = load(&format!("{}/#state=queued", service.address), None);
    assert!(!dom.contains(&summary), "{dom}");
    // Asked about a task that does not exist, it says so and shows the rest.
    let (dom, log) = load(&format!("{}/#state=queued&why=999", service.address), None);
    assert_eq!(problems(&dom, &log), Vec::<String>::new(), "{log}\n{dom}");
    assert!(dom.contains("/v1/tasks/999: HTTP 404"), "{dom}");
}

/// What went through a [`recording_proxy`]: each request's line and the
/// body of its answer.
type Exchanges = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A proxy on a free loopback port in front of `upstream` (`host:port`)
/// that records every exchange: what the page asked for and what it was
/// sent, without trusting the page to say so.
fn recording_proxy(upstream: &str) -> (String, Exchanges) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let exchanges = Exchanges::default();
    let (record, upstream) = (Arc::clone(&exchanges), upstream.to_owned());
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let (record, upstream) = (Arc::clone(&record), upstream.clone());
            std::thread::spawn(move || relay(client, &upstream, &record));
        }
    });
    (address, exchanges)
}

/// Passes a connection's requests on one at a time (browsers do not
/// pipeline), recording each with its answer.
fn relay(client: TcpStream, upstream: &str, record: &Exchanges) -> Option<()> {
    let server = TcpStream::connect(upstream).ok()?;
    let mut from_client = BufReader::new(client.try_clone().ok()?);
    let mut from_server = BufReader::new(server.try_clone().ok()?);
    let (mut to_client, mut to_server) = (client, server);
    loop {
        let (head, body) = message(&mut from_client, record)?;
        to_server
            .write_all(&[head.as_slice(), &body].concat())
            .ok()?;
        let (answer_head, answer_body) = message(&mut from_server, record)?;
        to_client
            .write_all(&[answer_head.as_slice(), &answer_body].concat())
            .ok()?;
        let line = String::from_utf8_lossy(&head);
        let line = line.lines().next().unwrap_or_default().to_owned();
        record.lock().unwrap().push((line, answer_body));
    }
}

/// One HTTP/1.1 message: its head, through the blank line, and its body
/// (`Content-Length` bytes; a chunked one is recorded as a failure).
fn message(reader: &mut impl BufRead, record: &Exchanges) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut head = Vec::new();
    let mut length = 0;
    loop {
        let start = head.len();
        if reader.read_until(b'\n', &mut head).ok()? == 0 {
            return None;
        }
        let line = String::from_utf8_lossy(&head[start..]).to_ascii_lowercase();
        if let Some(value) = line.strip_prefix("content-length:") {
            length = value.trim().parse().ok()?;
        }
        if line.starts_with("transfer-encoding:") {
            let failure = ("the proxy reads no chunked message".to_owned(), Vec::new());
            record.lock().unwrap().push(failure);
            return None;
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// The rows of the tasks table: each one's id and state.
fn task_rows(dom: &str) -> Vec<(u64, String)> {
    dom.split("<tr class=\"task\"")
        .skip(1)
        .map(|row| {
            let attribute = |name: &str| {
                let start = row.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                row[start..].split('"').next().unwrap().to_owned()
            };
            (
                attribute("data-id").parse().unwrap(),
                attribute("data-state"),
            )
        })
        .collect()
}

/// The fragment a pager link (`older`, `newer`) leads to; `None` while it
/// is hidden.
fn link(dom: &str, id: &str) -> Option<String> {
    let start = dom.find(&format!("<a id=\"{id}\""))?;
    let tag = dom[start..].split('>').next().unwrap();
    if tag.contains(" hidden") {
        return None;
    }
    let href = tag
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    Some(href.replace("&amp;", "&"))
}

#[test]
fn the_dashboard_shows_failed_tasks_first_and_pages_one_page_per_refresh() {
    let mut service = Service::new(
        "dashboard-pages",
        "[local]\nshare = 0.5\n\n[retry.batch]\nmax_retries = 0\ndelay_ms = 10\nmax_delay_ms = 10\n",
    );
    service.start();
    // 150 tasks, more than the page's 50; the 60 odd ones up to 119 fail,
    // most of them older than the newest 50 tasks.
    let fails = |id: u64| id % 2 == 1 && id < 120;
    let tasks: Vec<String> = (1..=150)
        .map(|id| {
            let command = if fails(id) { "false" } else { "true" };
            format!(r#"{{"id": {id}, "request": {{"cpu_milli": 10}}, "config": {{"command": "{command}"}}}}"#)
        })
        .collect();
    submit(&service, &format!("[{}]", tasks.join(",")));
    wait_for_tasks(&service, |answer| {
        answer["counts"]["failed"] == 60 && answer["counts"]["completed"] == 90
    });
    let whole_list = ureq::get(&format!("{}/v1/tasks", service.address))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
        .len();
    let upstream = service.address.strip_prefix("http://").unwrap();
    let (proxy, exchanges) = recording_proxy(upstream);

    // Failures first: the failed tab, newest first, one page of them.
    let (dom, log) = load(&format!("{proxy}/"), None);
    assert_eq!(problems(&dom, &log), Vec::<String>::new(), "{log}\n{dom}");
    assert!(dom.contains("class=\"state-failed selected\""), "{dom}");
    for count in [
        "failed: 60",
        "completed: 90",
        "queued: 0",
        "running: 0",
        "cancelled: 0",
        "all: 150",
    ] {
        assert!(dom.contains(count), "{count} not on the page:\n{dom}");
    }
    let newest: Vec<(u64, String)> = (21..120)
        .rev()
        .step_by(2)
        .map(|id| (id, "failed".to_owned()))
        .collect();
    assert_eq!(task_rows(&dom), newest);
    assert_eq!(link(&dom, "newer"), None);
    let older = link(&dom, "older").expect("a link to older failures");

    // Each refresh asked for one page and was sent one page: the proxy
    // saw it, whatever the page says of itself.
    let seen = exchanges.lock().unwrap().clone();
    let lists: Vec<&(String, Vec<u8>)> = seen
        .iter()
        .filter(|(line, _)| line.starts_with("GET /v1/tasks"))
        .collect();
    assert!(lists.len() >= 2, "fewer than two refreshes: {seen:?}");
    assert!(
        !seen.iter().any(|(line, _)| line.contains("chunked")),
        "{seen:?}"
    );
    for (line, body) in &lists {
        assert!(
            line.contains("limit=50"),
            "a refresh asked for more than a page: {line}"
        );
        let answer: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(
            answer["tasks"].as_array().unwrap().len() <= 50,
            "{line}: {answer}"
        );
        assert!(
            body.len() * 2 < whole_list,
            "{line}: {} bytes, the whole list is {whole_list}",
            body.len()
        );
    }

    // Older: the oldest failures, which a page of the newest 50 never showed.
    let (dom, log) = load(&format!("{proxy}/{older}"), None);
    assert_eq!(problems(&dom, &log), Vec::<String>::new(), "{log}\n{dom}");
    let oldest: Vec<u64> = task_rows(&dom).into_iter().map(|(id, _)| id).collect();
    assert_eq!(oldest, vec![19, 17, 15, 13, 11, 9, 7, 5, 3, 1], "{older}");
    assert_eq!(link(&dom, "older"), None);
    let newer = link(&dom, "newer").expect("a link back to newer failures");

    // And back: the first page again.
    let (dom, _) = load(&format!("{proxy}/{newer}"), None);
    assert_eq!(task_rows(&dom), newest, "{newer}");
    assert_eq!(link(&dom, "older").as_deref(), Some(older.as_str()));
}
