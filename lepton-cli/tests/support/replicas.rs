//! Several `lepton serve` instances on the etcd cluster of `bash
//! scripts/backends.sh start etcd` (`LEPTON_ETCD_ENDPOINTS`), sharing one
//! local backend: who leads, and a client that submits to whichever
//! instance accepts.

use std::sync::atomic::{AtomicBool, Ordering};
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
    etcd_config_on(&endpoints, name, ttl_s)
}

/// As [`etcd_config`], on the cluster at `endpoints` (comma-separated URLs).
pub(crate) fn etcd_config_on(endpoints: &str, name: &str, ttl_s: u64) -> String {
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

/// Waits until `old` says it follows `new`, for at most `within`; how long
/// that took. Past `within` the test fails, saying `what` did not happen.
pub(crate) fn wait_until_following(
    old: &Service,
    new: &Service,
    within: Duration,
    what: &str,
) -> Duration {
    let started = Instant::now();
    loop {
        let info = leader_info(&old.address);
        if let Some((role, Some(leader))) = &info {
            if role == "follower" && *leader == new.address {
                return started.elapsed();
            }
        }
        assert!(started.elapsed() < within, "{what}: {info:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
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
    task_running(id, &format!("sleep {seconds}"))
}

/// As [`task`], running `command` (argv, split at whitespace).
pub(crate) fn task_running(id: u64, command: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "request": {"cpu_milli": 20, "memory_mib": 16},
        "config": {"command": command},
    })
}

/// Submits `body` to the instances in turn, from `first`, until one
/// acknowledges it (202), or says its ids were acknowledged before (409:
/// the earlier answer was lost with its instance). A follower's 503 or an
/// instance that does not answer sends it to the next; any other refusal
/// fails the test. Returns how many instances refused or did not answer.
pub(crate) fn submit_anywhere(addresses: &[String], first: usize, body: &str) -> usize {
    submit_anywhere_unless(addresses, first, body, None, &AtomicBool::new(false))
        .expect("never stopped")
}

/// As [`submit_anywhere`], with the instances' bearer `token` if any; gives
/// up (`None`: it may or may not have been stored) once `stop` is set.
pub(crate) fn submit_anywhere_unless(
    addresses: &[String],
    first: usize,
    body: &str,
    token: Option<&str>,
    stop: &AtomicBool,
) -> Option<usize> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let started = Instant::now();
    let mut misses = 0;
    for i in (first..).map(|i| i % addresses.len()) {
        let mut request = agent
            .post(&format!("{}/v1/tasks", addresses[i]))
            .set("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        match request.send_string(body) {
            Ok(response) => {
                assert_eq!(response.status(), 202);
                return Some(misses);
            }
            Err(ureq::Error::Status(409, _)) => return Some(misses),
            Err(ureq::Error::Status(code, response)) if code != 503 => {
                panic!("{code}: {}", response.into_string().unwrap_or_default())
            }
            Err(_) if stop.load(Ordering::SeqCst) => return None,
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
    leader_tasks_with_token(services, None)
}

/// As [`leader_tasks`], with the instances' bearer `token` if any.
pub(crate) fn leader_tasks_with_token(
    services: &[Service],
    token: Option<&str>,
) -> Option<serde_json::Value> {
    services.iter().find_map(|service| {
        let (role, _) = leader_info(&service.address)?;
        if role != "leader" {
            return None;
        }
        let mut request = ureq::get(&format!("{}/v1/tasks", service.address));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        request.call().ok()?.into_json().ok()
    })
}
