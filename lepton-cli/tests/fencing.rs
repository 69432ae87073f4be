//! Fencing, forced: the leader of two `lepton serve` instances on etcd is
//! paused with SIGSTOP past its lease (as a long GC pause or a partition
//! would), the other takes over, and the old one is resumed. Its writes
//! must be refused, it must step down to follower, and nothing it was
//! handed after waking may exist; the tasks of both terms run exactly
//! once, by the local backend's own ledger.

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::replicas::{etcd_config, leader_tasks, task, wait_for_leader, wait_until_following};
use support::service::{assert_each_ran_once, Service};

const TTL_S: u64 = 2;

fn post(address: &str, ids: impl Iterator<Item = u64>) -> Result<u16, (u16, String)> {
    let body = serde_json::Value::Array(ids.map(|id| task(id, 0.5)).collect()).to_string();
    match ureq::post(&format!("{address}/v1/tasks"))
        .set("Content-Type", "application/json")
        .send_string(&body)
    {
        Ok(response) => Ok(response.status()),
        Err(ureq::Error::Status(code, response)) => {
            Err((code, response.into_string().unwrap_or_default()))
        }
        Err(error) => panic!("{address}: {error}"),
    }
}

#[test]
fn fencing_refuses_a_leader_paused_past_its_lease_and_it_steps_down() {
    let data = std::env::temp_dir().join(format!("lepton-fencing-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let config = etcd_config("fencing", TTL_S);
    let mut services: Vec<Service> = (0..2)
        .map(|i| Service::sharing(&format!("fencing-{i}"), &config, Some(&data)))
        .collect();
    for service in &mut services {
        service.start();
    }
    let (old, _) = wait_for_leader(&services, None, Duration::from_secs(4 * TTL_S));
    let new = 1 - old;
    assert_eq!(post(&services[old].address, 1..=20), Ok(202));

    // Paused past its lease: the other instance takes over.
    services[old].signal("STOP");
    let (leader, took) = wait_for_leader(&services, Some(old), Duration::from_secs(4 * TTL_S));
    assert_eq!(leader, new);
    eprintln!("instance {new} took over {took:?} after instance {old} was paused");
    assert_eq!(post(&services[new].address, 21..=40), Ok(202));

    // Woken: the first write it is handed is refused, and it follows.
    assert!(
        services[old].stopped(),
        "instance {old} woke before SIGCONT"
    );
    services[old].signal("CONT");
    let refused = post(&services[old].address, 99..=99);
    let Err((503, error)) = &refused else {
        panic!("the old leader accepted a task after its term: {refused:?}")
    };
    assert!(error.contains("not the leader"), "{error}");
    wait_until_following(
        &services[old],
        &services[new],
        Duration::from_secs(10),
        "the old leader did not step down",
    );
    assert!(
        services[old].log().contains("leadership lost"),
        "{}",
        services[old].log()
    );

    // `lepton submit` to the follower it now is: sent on to the leader.
    let file = services[old].dir.join("task-41.json");
    std::fs::write(&file, task(41, 0.5).to_string()).unwrap();
    let submitted = std::process::Command::new(env!("CARGO_BIN_EXE_lepton"))
        .args([
            "submit",
            file.to_str().unwrap(),
            "--addr",
            &services[old].address,
        ])
        .env_remove("LEPTON_TOKEN")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&submitted.stderr);
    assert!(submitted.status.success(), "{said}");
    assert!(said.contains("sending to the leader"), "{said}");

    // Nothing of the refused write exists (asked of both: the follower
    // passes reads on to the leader); both terms' tasks ran once.
    for service in &services {
        let refused = ureq::get(&format!("{}/v1/tasks/99", service.address)).call();
        assert!(
            matches!(refused, Err(ureq::Error::Status(404, _))),
            "{refused:?}"
        );
    }
    let expected: BTreeSet<u64> = (1..=41).collect();
    let started = Instant::now();
    while leader_tasks(&services).and_then(|answer| answer["counts"]["completed"].as_u64())
        != Some(41)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not all completed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_each_ran_once(&services[new].ledger(), &expected);
    let _ = std::fs::remove_dir_all(&data);
}
