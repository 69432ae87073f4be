//! The service's promise, tested the hard way: 2,000 tasks submitted over
//! HTTP by 8 concurrent clients to `lepton serve` on the local backend,
//! the service killed with SIGKILL three times at random moments and
//! started again each time. Every acknowledged task must end exactly once
//! — checked from the local backend's own ledger of what ran, not from the
//! service's word — and none may be lost or started twice.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::service::{assert_each_ran_once, task_ids, Service};

const CLIENTS: u64 = 8;
const TASKS_PER_CLIENT: u64 = 250;
const BATCH: u64 = 10;
const KILLS: usize = 3;

fn task(id: u64) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "name": format!("crash-{id}"),
        "request": {"cpu_milli": 20, "memory_mib": 16},
        "config": {"command": "sleep 0.3"},
    })
}

/// Submits a batch until the service answers: 202 accepted, or 409 (the
/// batch was accepted before, its answer lost to a crash). Other refusals
/// fail the test.
fn submit(address: &str, batch: &[u64]) {
    let body = serde_json::Value::Array(batch.iter().map(|&id| task(id)).collect()).to_string();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let started = Instant::now();
    loop {
        match agent
            .post(&format!("{address}/v1/tasks"))
            .set("Content-Type", "application/json")
            .send_string(&body)
        {
            Ok(response) => {
                assert_eq!(response.status(), 202);
                return;
            }
            Err(ureq::Error::Status(409, _)) => return,
            Err(ureq::Error::Status(code, response)) if code < 500 => {
                panic!("{code}: {}", response.into_string().unwrap_or_default())
            }
            Err(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "never acknowledged"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A small deterministic generator for the kill moments.
fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

fn tasks_by_state(address: &str) -> serde_json::Value {
    let answer: serde_json::Value = ureq::get(&format!("{address}/v1/tasks"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    answer
}

#[test]
fn nothing_acknowledged_is_lost_or_run_twice_across_three_kills() {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments seeded with {seed}");
    let mut service = Service::new("crash", "");
    service.start();
    let address = service.address.clone();
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let address = address.clone();
            let acknowledged = Arc::clone(&acknowledged);
            std::thread::spawn(move || {
                let ids: Vec<u64> = (0..TASKS_PER_CLIENT).map(|i| client * 10_000 + i).collect();
                for batch in ids.chunks(BATCH as usize) {
                    submit(&address, batch);
                    acknowledged.lock().unwrap().extend(batch.iter().copied());
                    std::thread::sleep(Duration::from_millis(80));
                }
            })
        })
        .collect();
    let mut kills = Vec::new();
    for _ in 0..KILLS {
        let pause = Duration::from_millis(500 + next(&mut seed) % 2_500);
        std::thread::sleep(pause);
        let accepted_then = acknowledged.lock().unwrap().len();
        service.kill();
        kills.push((pause, accepted_then));
        service.start();
    }
    for client in clients {
        client.join().unwrap();
    }
    eprintln!("killed after (pause, tasks acknowledged): {kills:?}");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len() as u64, CLIENTS * TASKS_PER_CLIENT);

    // Every acknowledged task completes.
    let started = Instant::now();
    loop {
        let answer = tasks_by_state(&address);
        let completed = answer["counts"]["completed"].as_u64().unwrap();
        if completed == acknowledged.len() as u64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "not all completed: {}",
            answer["counts"]
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let answer = tasks_by_state(&address);
    assert_eq!(
        task_ids(&answer),
        acknowledged,
        "the service's tasks are exactly those acknowledged"
    );

    // The backend's own record: each task started once and ended once, with 0.
    assert_each_ran_once(&service.ledger(), &acknowledged);
    assert_eq!(service.starts, KILLS + 1);
}
