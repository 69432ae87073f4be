//! High availability, tested the hard way: three `lepton serve` instances
//! on one 3-member etcd cluster (`bash scripts/backends.sh start etcd`),
//! sharing the local backend; 1,000 tasks submitted by 8 concurrent
//! clients through whichever instance answers; the leader killed with
//! SIGKILL twice during the run and one etcd member stopped and started
//! again. Every acknowledged task must end exactly once — checked from the
//! local backend's own ledger of what ran — and each takeover must come
//! within twice the lease's TTL.

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::replicas::{etcd_config, leader_tasks, submit_anywhere, task, wait_for_leader};
use support::service::{assert_each_ran_once, task_ids, Service};

const INSTANCES: usize = 3;
const TTL_S: u64 = 3;
const CLIENTS: u64 = 8;
const TASKS_PER_CLIENT: u64 = 125;
const BATCH: usize = 5;

fn etcd_member(action: &str, member: u32) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/backends.sh");
    let status = std::process::Command::new("bash")
        .args([script, action, "etcd-member", &member.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "{action} etcd member {member}");
}

#[test]
fn failover_loses_and_repeats_nothing_across_two_leader_kills_and_an_etcd_member_restart() {
    let data = std::env::temp_dir().join(format!("lepton-failover-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    // A tenant queue that runs at most 20 of the tasks at once; every
    // other batch is a gang. Both live in the stored tasks, so both must
    // hold across the takeovers.
    let config =
        etcd_config("failover", TTL_S) + "[[queue]]\nname = \"team\"\nmax = { cpu_milli = 400 }\n";
    let mut services: Vec<Service> = (0..INSTANCES)
        .map(|i| Service::sharing(&format!("failover-{i}"), &config, Some(&data)))
        .collect();
    for service in &mut services {
        service.start();
    }
    let (mut leader, first_election) =
        wait_for_leader(&services, None, Duration::from_secs(4 * TTL_S));
    eprintln!("instance {leader} leads after {first_election:?}");

    let addresses: Vec<String> = services.iter().map(|s| s.address.clone()).collect();
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let addresses = addresses.clone();
            let acknowledged = Arc::clone(&acknowledged);
            std::thread::spawn(move || {
                let ids: Vec<u64> = (0..TASKS_PER_CLIENT).map(|i| client * 10_000 + i).collect();
                let mut misses = 0;
                for (n, batch) in ids.chunks(BATCH).enumerate() {
                    let gang = serde_json::json!({"name": format!("g{}", batch[0]), "min_available": batch.len()});
                    let tasks = batch.iter().map(|&id| {
                        let mut task = task(id, 0.3);
                        task["queue"] = "team".into();
                        if n % 2 == 0 {
                            task["gang"] = gang.clone();
                        }
                        task
                    });
                    let body = serde_json::Value::Array(tasks.collect()).to_string();
                    misses += submit_anywhere(&addresses, client as usize + n, &body);
                    acknowledged.lock().unwrap().extend(batch.iter().copied());
                    std::thread::sleep(Duration::from_millis(100));
                }
                misses
            })
        })
        .collect();

    let mut takeovers = Vec::new();
    for kill in 0..2 {
        std::thread::sleep(Duration::from_millis(1_000));
        let submitted = acknowledged.lock().unwrap().len();
        services[leader].kill();
        let (next, took) = wait_for_leader(&services, Some(leader), Duration::from_secs(4 * TTL_S));
        eprintln!(
            "kill {}: instance {leader} killed with {submitted} tasks acknowledged; \
             instance {next} took over after {took:?}",
            kill + 1
        );
        takeovers.push(took);
        services[leader].start();
        leader = next;
    }
    // One etcd member away and back while the tasks run.
    etcd_member("stop", 2);
    std::thread::sleep(Duration::from_secs(2));
    etcd_member("start", 2);
    let misses: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len() as u64, CLIENTS * TASKS_PER_CLIENT);
    eprintln!("submissions sent to a follower or a dead instance first: {misses}");

    // Every acknowledged task completes, as the leader of the moment says.
    let started = Instant::now();
    let answer = loop {
        if let Some(answer) = leader_tasks(&services) {
            if answer["counts"]["completed"].as_u64() == Some(acknowledged.len() as u64) {
                break answer;
            }
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "not all completed: {}",
                answer["counts"]
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        task_ids(&answer),
        acknowledged,
        "the leader knows exactly the acknowledged tasks"
    );
    // The backend's own record: each started once, ended once with 0.
    assert_each_ran_once(&services[0].ledger(), &acknowledged);
    // The queue holds nothing and nothing waits in it.
    let queues: serde_json::Value = ureq::get(&format!("{}/v1/queues", services[leader].address))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(queues["queues"][0]["usage"]["cpu_milli"], 0, "{queues}");
    assert_eq!(queues["queues"][0]["waiting"], 0, "{queues}");
    // Any instance answers reads: followers pass them on to the leader.
    for service in &services {
        let answer: serde_json::Value = ureq::get(&format!("{}/v1/tasks", service.address))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        assert_eq!(
            answer["counts"]["completed"],
            acknowledged.len(),
            "{}",
            service.address
        );
    }

    eprintln!("takeovers after a SIGKILL of the leader: {takeovers:?} (lease TTL {TTL_S} s)");
    for took in &takeovers {
        assert!(
            *took <= Duration::from_secs(2 * TTL_S),
            "a takeover took {took:?}, over twice the lease TTL"
        );
    }
    let _ = std::fs::remove_dir_all(&data);
}
