//! Several `lepton serve` instances on the etcd cluster of `bash
//! scripts/backends.sh start etcd` (`LEPTON_ETCD_ENDPOINTS`), sharing one
//! local backend: who leads, and a client that submits to whichever
//! instance accepts.

use std::time::{Duration, Instant};

use super::service::Service;

/// The config lines of an instance: the etcd store under a prefix of this
/// test run's own, with a lease of `ttl_s` seconds.
pub(crate) fn etcd_config(name: &str, ttl_s: u64) -> String {
    let endpoints = std::env::var("LEPTON_ETCD_ENDPOINTS").unwrap_or_else(|_| {
        panic!(
            "LEPTON_ETCD_ENDPOINTS is not set: run `bash scripts/backends.sh start etcd` and \
             `eval \"$(bash scripts/backends.sh env)\"` first"
        )
    });
    let endpoints: Vec<String> = endpoints.split(',').map(|e| format!("{e:?}")).collect();
    format!(
        "store = \"etcd\"\n[etcd]\nendpoints = [{}]\nprefix = \"/lepton-{name}-{}/\"\nlease_ttl_s = {ttl_s}\n",
        endpoints.join(", "),
        std::process::id()
    )
}

/// `GET /v1/leader` of the instance at `address`: its role and the leader
/// it knows, or `None` when it does not answer.
pub(crate) fn leader_info(address: &str) -> Option<(String, Option<String>)> {
    let answer: serde_json::Value = ureq::get(&format!("{address}/v1/leader"))
        .timeout(Duration::from_secs(2))
        .call()
        .ok()?
        .into_json()
        .ok()?;
    Some((
        answer["role"].as_str()?.to_owned(),
        answer["leader"].as_str().map(str::to_owned),
    ))
}

/// Waits until one of `services` other than `except` says it leads; its
/// index and how long that took.
pub(crate) fn wait_for_leader(
    services: &[Service],
    except: Option<usize>,
    within: Duration,
) -> (usize, Duration) {
    let started = Instant::now();
    loop {
        for (i, service) in services.iter().enumerate() {
            if Some(i) == except {
                continue;
            }
            if let Some((role, _)) = leader_info(&service.address) {
                if role == "leader" {
                    return (i, started.elapsed());
                }
            }
        }
        assert!(
            started.elapsed() < within,
            "no instance took the lead within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A task that sleeps `seconds` on the local backend.
pub(crate) fn task(id: u64, seconds: f64) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "request": {"cpu_milli": 20, "memory_mib": 16},
        "config": {"command": format!("sleep {seconds}")},
    })
}

/// Submits `body` to the instances in turn, from `first`, until one
/// acknowledges it (202), or says its ids were acknowledged before (409:
/// the earlier answer was lost with its instance). A follower's 503 or an
/// instance that does not answer sends it to the next; any other refusal
/// fails the test. Returns how many instances refused or did not answer.
pub(crate) fn submit_anywhere(addresses: &[String], first: usize, body: &str) -> usize {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let started = Instant::now();
    let mut misses = 0;
    for i in (first..).map(|i| i % addresses.len()) {
        match agent
            .post(&format!("{}/v1/tasks", addresses[i]))
            .set("Content-Type", "application/json")
            .send_string(body)
        {
            Ok(response) => {
                assert_eq!(response.status(), 202);
                return misses;
            }
            Err(ureq::Error::Status(409, _)) => return misses,
            Err(ureq::Error::Status(code, response)) if code != 503 => {
                panic!("{code}: {}", response.into_string().unwrap_or_default())
            }
            Err(_) => {
                misses += 1;
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "no instance acknowledged a submission in 120 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    unreachable!("the instances are tried in turn forever")
}

/// `GET /v1/tasks` of the leader among `services` (counts by state and the
/// tasks), or `None` while none leads.
pub(crate) fn leader_tasks(services: &[Service]) -> Option<serde_json::Value> {
    services.iter().find_map(|service| {
        let (role, _) = leader_info(&service.address)?;
        if role != "leader" {
            return None;
        }
        ureq::get(&format!("{}/v1/tasks", service.address))
            .call()
            .ok()?
            .into_json()
            .ok()
    })
}
