//! Clients that hold connections: a slow sender (slowloris) is cut off at
//! the headers' or the body's deadline, and beyond the connection cap new
//! clients wait instead of exhausting the service.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::TestService;

/// Whether the service closed `stream` by `deadline` (reads return end of
/// stream or a reset), answering at most once.
fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buffer = [0u8; 4_096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// The answer to a plain `GET /healthz` on a new connection.
fn health(service: &TestService) -> u16 {
    service.call("GET", "/healthz", None, None).0
}

#[test]
fn clients_trickling_headers_are_cut_off_and_others_are_served() {
    let service = TestService::start("slowloris", |config| config.header_timeout_s = 1);
    // 300 connections, each a request head that never ends; a byte of it
    // every 200 ms keeps an idle-timeout-only server holding them forever.
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut stream = TcpStream::connect(service.address).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(600) {
        for stream in &mut slow {
            let _ = stream.write_all(b"X");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Meanwhile the service answers.
    assert_eq!(health(&service), 200);
    let deadline = Instant::now() + Duration::from_secs(4);
    let held = slow
        .iter_mut()
        .map(|stream| closed_by(stream, deadline))
        .filter(|closed| !closed)
        .count();
    assert_eq!(held, 0, "connections still held past the headers' deadline");
}

#[test]
fn an_idle_kept_alive_connection_is_closed_at_the_headers_deadline() {
    let service = TestService::start("idle", |config| config.header_timeout_s = 1);
    let mut stream = TcpStream::connect(service.address).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    assert!(closed_by(
        &mut stream,
        Instant::now() + Duration::from_secs(4)
    ));
}

#[test]
fn a_body_that_does_not_arrive_in_time_gets_408() {
    let service = TestService::start("slow-body", |config| config.body_timeout_s = 1);
    let mut stream = TcpStream::connect(service.address).unwrap();
    stream
        .write_all(
            b"POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Content-Length: 200\r\nConnection: close\r\n\r\n{\"id\": 1,",
        )
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout_s"), "{answer}");
    let (_, tasks) = service.call("GET", "/v1/tasks", None, None);
    assert!(tasks.contains("\"tasks\":[]"), "{tasks}");
}

#[test]
fn beyond_the_connection_cap_new_clients_wait_for_a_free_one() {
    let service = TestService::start("cap", |config| config.max_connections = 2);
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(service.address).unwrap())
        .collect();
    // Let the service take both before the third arrives.
    std::thread::sleep(Duration::from_millis(300));
    let mut third = TcpStream::connect(service.address).unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut first = [0u8; 1];
    let waited = third.read(&mut first);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "answered over the cap: {waited:?}"
    );
    // One held connection closes: the third is served.
    held.pop();
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    third.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
