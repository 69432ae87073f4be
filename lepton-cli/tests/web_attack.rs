//! A web page the user merely visits tries to drive a token-less `lepton
//! serve` (the README's way of starting it) in a real browser: headless
//! Chromium opens a hostile page from another origin, which sends the
//! requests a page can send without asking (`fetch` in `no-cors` mode:
//! a `text/plain` body, a body without a type, a body-less `POST`); and a
//! page whose name is rebound to loopback opens the service as its own
//! origin. The service must refuse all of it and change nothing. The page
//! also sends each request to a witness on another origin, which proves
//! the browser really sent them.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use support::browser::{load, load_with};
use support::service::{task_ids, Service};

/// The hostile page: it writes to the witness and to the service, then
/// marks itself done.
fn page(service: &str, witness: &str) -> String {
    format!(
        r#"<!doctype html><html><body><p id="status">running</p><script>
const targets = ["{witness}", "{service}"];
const task = (id) => JSON.stringify({{id, request: {{cpu_milli: 10, memory_mib: 8}},
  config: {{command: "touch /tmp/lepton-pwned"}}}});
async function send(base, path, init) {{
  try {{
    await fetch(base + path, Object.assign({{mode: "no-cors", method: "POST"}}, init));
    return "sent";
  }} catch (e) {{ return "error: " + e; }}
}}
(async () => {{
  const results = [];
  for (const base of targets) {{
    results.push(await send(base, "/v1/tasks",
      {{headers: {{"Content-Type": "text/plain"}}, body: task(1)}}));
    results.push(await send(base, "/v1/tasks", {{body: new Blob([task(2)])}}));
    results.push(await send(base, "/v1/nodes/0/cordon", {{}}));
  }}
  document.getElementById("status").textContent = "done: " + results.join(", ");
  document.body.dataset.done = "yes";
}})();
</script></body></html>"#
    )
}

/// A plain HTTP server on a free loopback port: `GET /` answers `page`
/// (given the server's port), any `POST` is recorded (`path body`). Runs
/// until the test process ends.
fn attacker(
    page: impl Fn(u16) -> String + Send + Sync + 'static,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&received);
    let page = Arc::new(page);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            // A connection each: the browser opens some it never uses.
            let (page, record) = (Arc::clone(&page), Arc::clone(&record));
            std::thread::spawn(move || answer(stream, port, &*page, &record));
        }
    });
    (port, received)
}

/// Reads one request from `stream` and answers it (see [`attacker`]).
fn answer(
    mut stream: std::net::TcpStream,
    port: u16,
    page: &dyn Fn(u16) -> String,
    record: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (kind, answer) = if method == "GET" && path == "/" {
        ("text/html", page(port))
    } else {
        if method == "POST" {
            record
                .lock()
                .unwrap()
                .push(format!("{path} {}", String::from_utf8_lossy(&body)));
        }
        ("text/plain", "ok".to_owned())
    };
    let length = answer.len();
    let head = format!("Content-Type: {kind}\r\nContent-Length: {length}\r\nConnection: close");
    let _ = write!(stream, "HTTP/1.1 200 OK\r\n{head}\r\n\r\n{answer}");
}

#[test]
fn a_web_page_cannot_drive_a_service_without_a_token() {
    let mut service = Service::new("web-attack", "[local]\nshare = 0.5\n");
    service.start();
    let target = service.address.clone();
    // The page is served as 127.0.0.1:PORT; its witness is localhost:PORT,
    // another origin, as the service is.
    let (port, witnessed) =
        attacker(move |port| page(&target, &format!("http://localhost:{port}")));
    let (dom, log) = load(&format!("http://127.0.0.1:{port}/"), None);
    assert!(
        dom.contains("data-done=\"yes\""),
        "the page did not finish:\n{dom}\n{log}"
    );

    // The browser sent every request, cross-origin, without asking.
    let witnessed = witnessed.lock().unwrap().clone();
    assert_eq!(witnessed.len(), 3, "{witnessed:?}");
    assert!(
        witnessed[0].starts_with("/v1/tasks {\"id\":1"),
        "{witnessed:?}"
    );
    assert!(
        witnessed[1].starts_with("/v1/tasks {\"id\":2"),
        "{witnessed:?}"
    );
    assert_eq!(witnessed[2], "/v1/nodes/0/cordon ");

    // The service refused them all: no task, the node not cordoned.
    let answer: serde_json::Value = ureq::get(&format!("{}/v1/tasks", service.address))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert!(
        task_ids(&answer).is_empty(),
        "a page submitted tasks: {answer}"
    );
    let nodes = ureq::get(&format!("{}/v1/nodes", service.address))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        nodes.contains("\"state\":\"ready\""),
        "a page cordoned the node: {nodes}"
    );
    assert!(
        !service.ledger().contains("started"),
        "a run was started:\n{}",
        service.ledger()
    );

    // DNS rebinding: a page whose name now resolves to loopback opens the
    // service as its own origin. It gets the refusal, not the dashboard.
    let rebound = format!(
        "http://attacker.example:{}/",
        service.address.rsplit(':').next().unwrap()
    );
    let (dom, _) = load_with(
        &rebound,
        None,
        &["--host-resolver-rules=MAP attacker.example 127.0.0.1".to_owned()],
    );
    assert!(dom.contains("is not this machine's loopback"), "{dom}");
    assert!(!dom.contains("data-loaded"), "the dashboard loaded:\n{dom}");
}
