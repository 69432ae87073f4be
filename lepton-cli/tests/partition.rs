//! High availability under network partitions, made with Linux network
//! namespaces (`bash scripts/partition.sh`): three etcd members and two
//! `lepton serve` instances, each in a namespace of its own, joined by a
//! bridge; a partition is an nftables drop inside a namespace, so the
//! processes live on and their TCP connections hang, as on a lost link.
//!
//! - The leader cut off from etcd must stop acting within its lease's TTL —
//!   stop answering as the leader and launch nothing more — and the other
//!   instance must take over; healed, the old leader follows.
//! - One etcd member cut off from the other two (the cluster's own leader,
//!   so that etcd elects anew): the service keeps accepting tasks and
//!   running them.
//!
//! Clients submit throughout, through whichever instance accepts. After
//! each partition heals, every acknowledged task must have run exactly
//! once: by the local backend's ledger, and by the tasks themselves, each
//! of which notes in a file of the test's which namespace (so which
//! instance) started it and when — records that nothing under test writes.

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::network::{Network, ETCD_MEMBERS};
use support::replicas::{
    etcd_config_on, leader_info, leader_tasks_with_token, submit_anywhere_unless, task_running,
    wait_for_leader, wait_until_following,
};
use support::service::{assert_each_ran_once, ledger_lines, task_ids, Service};

const TTL_S: u64 = 3;
const TTL: Duration = Duration::from_secs(TTL_S);
/// How long each task runs.
const TASK_S: f64 = 1.0;
/// The instances' nodes in the network.
const INSTANCES: [&str; 2] = ["i1", "i2"];
/// The task handed to the leader once it is cut off.
const REFUSED: u64 = 999_999;
/// What a time measured here may exceed the true one by: polls every
/// 20 ms, each an HTTP round trip, and the renewal's own round trip (the
/// deadline counts from before a renewal is sent, the check after its
/// answer).
const MEASURED_WITHIN: Duration = Duration::from_millis(200);

/// A task command that notes where and when it started, then sleeps: a
/// script the tasks' unprivileged user can run, and the file it appends to.
struct Launches {
    dir: PathBuf,
    command: String,
}

/// One run, as its task noted it.
#[derive(Debug)]
struct Launch {
    task: u64,
    run: String,
    /// The kernel's id of the network namespace it was started in.
    netns: u64,
    /// When it started (this machine's clock).
    at: SystemTime,
}

impl Launches {
    fn new(name: &str) -> Launches {
        let dir =
            std::env::temp_dir().join(format!("lepton-{name}-launches-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("launches.log");
        let script = dir.join("task.sh");
        std::fs::write(&log, "").unwrap();
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$LEPTON_RUN $(readlink /proc/self/ns/net) $(date +%s.%N)\" \
                 >> {}\nexec sleep \"$1\"\n",
                log.display()
            ),
        )
        .unwrap();
        for (path, mode) in [(&dir, 0o755), (&script, 0o755), (&log, 0o666)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let command = format!("{} {TASK_S}", script.display());
        Launches { dir, command }
    }

    fn read(&self) -> Vec<Launch> {
        let log = std::fs::read_to_string(self.dir.join("launches.log")).unwrap();
        log.lines()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [run, netns, at] = fields[..] else {
                    panic!("a launch line of unknown shape: {line:?}")
                };
                let netns = netns
                    .trim_start_matches("net:[")
                    .trim_end_matches(']')
                    .parse()
                    .unwrap();
                let at = UNIX_EPOCH + Duration::from_secs_f64(at.parse().unwrap());
                let task = run.split('-').next().unwrap().parse().unwrap();
                Launch {
                    task,
                    run: run.to_owned(),
                    netns,
                    at,
                }
            })
            .collect()
    }
}

impl Drop for Launches {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two clients submitting batches of tasks through whichever instance
/// accepts, until stopped; the ids acknowledged and when.
struct Clients {
    /// Set: no new batch.
    stop: Arc<AtomicBool>,
    /// Set: the batch under way is given up too.
    abort: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<(u64, Instant)>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Clients {
    fn start(services: &[Service], token: &str, command: &str) -> Clients {
        let addresses: Vec<String> = services.iter().map(|s| s.address.clone()).collect();
        let (stop, abort): (Arc<AtomicBool>, Arc<AtomicBool>) = Default::default();
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..2u64)
            .map(|client| {
                let (addresses, token) = (addresses.clone(), token.to_owned());
                let command = command.to_owned();
                let (stop, abort) = (Arc::clone(&stop), Arc::clone(&abort));
                let acknowledged = Arc::clone(&acknowledged);
                std::thread::spawn(move || {
                    for n in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let ids: Vec<u64> = (0..3).map(|i| client * 100_000 + n * 3 + i).collect();
                        let body = serde_json::Value::Array(
                            ids.iter().map(|&id| task_running(id, &command)).collect(),
                        )
                        .to_string();
                        let submitted = submit_anywhere_unless(
                            &addresses,
                            (client + n) as usize,
                            &body,
                            Some(&token),
                            &abort,
                        );
                        if submitted.is_none() {
                            return;
                        }
                        let now = Instant::now();
                        acknowledged
                            .lock()
                            .unwrap()
                            .extend(ids.iter().map(|&id| (id, now)));
                        std::thread::sleep(Duration::from_millis(300));
                    }
                })
            })
            .collect();
        Clients {
            stop,
            abort,
            acknowledged,
            threads,
        }
    }

    /// When submissions were acknowledged, in order.
    fn acknowledged_at(&self) -> Vec<Instant> {
        let mut at: Vec<Instant> = self
            .acknowledged
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.1)
            .collect();
        at.sort();
        at.dedup();
        at
    }

    /// Stops them (a batch under way is finished); the ids acknowledged.
    fn stop(mut self) -> BTreeSet<u64> {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
        let acknowledged = self.acknowledged.lock().unwrap();
        acknowledged.iter().map(|a| a.0).collect()
    }
}

impl Drop for Clients {
    /// A failed test's clients too stop, before the network goes down
    /// (after it, the instances' addresses would be routed off this
    /// machine).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.abort.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The instances on `network`, sharing `data` (the local backend's runs
/// and ledger), started; off loopback, the service wants a bearer token:
/// `name`.
fn start_instances(network: &Network, name: &str, data: &std::path::Path) -> Vec<Service> {
    let config = format!(
        "token = \"{name}\"\n{}",
        etcd_config_on(network.etcd_endpoints(), name, TTL_S)
    );
    let mut services: Vec<Service> = INSTANCES
        .iter()
        .map(|node| network.instance(node, &format!("{name}-{node}"), &config, data))
        .collect();
    for service in &mut services {
        service.start();
    }
    services
}

/// The role `service` answers with (`None`: it does not answer).
fn role(service: &Service) -> Option<String> {
    leader_info(&service.address).map(|(role, _)| role)
}

/// Waits until every acknowledged task completed, then checks that each
/// ran exactly once: the leader knows exactly those, the ledger shows each
/// started once and ended once with 0, and each task noted one start.
fn assert_each_acknowledged_task_ran_once(
    services: &[Service],
    token: &str,
    acknowledged: &BTreeSet<u64>,
    launches: &Launches,
) {
    let started = Instant::now();
    let answer = loop {
        if let Some(answer) = leader_tasks_with_token(services, Some(token)) {
            if answer["counts"]["completed"].as_u64() == Some(acknowledged.len() as u64) {
                break answer;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "not all {} acknowledged tasks completed: {}",
                acknowledged.len(),
                answer["counts"]
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no instance leads"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        &task_ids(&answer),
        acknowledged,
        "the leader knows exactly the acknowledged tasks"
    );
    // The ledger's `ended` line comes right after the exit code the
    // service reads.
    while ledger_lines(&services[0].ledger())
        .values()
        .filter(|(ends, _)| !ends.is_empty())
        .count()
        < acknowledged.len()
    {
        assert!(started.elapsed() < Duration::from_secs(95), "ledger lines");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_each_ran_once(&services[0].ledger(), acknowledged);
    let mut starts: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for launch in launches.read() {
        starts.entry(launch.task).or_default().push(launch.run);
    }
    assert_eq!(
        &starts.keys().copied().collect::<BTreeSet<_>>(),
        acknowledged,
        "the tasks that noted a start are exactly those acknowledged"
    );
    for (task, runs) in &starts {
        assert_eq!(runs.len(), 1, "task {task} was started as {runs:?}");
    }
}

fn data_dir(name: &str) -> PathBuf {
    let data = std::env::temp_dir().join(format!("lepton-{name}-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    data
}

#[test]
fn a_leader_cut_off_from_etcd_stops_within_its_lease_and_a_follower_takes_over() {
    const NAME: &str = "partition-leader-cut";
    let network = Network::up();
    let launches = Launches::new(NAME);
    let data = data_dir(NAME);
    let services = start_instances(&network, NAME, &data);
    let _down_first = network.down_first();
    let (old, _) = wait_for_leader(&services, None, 4 * TTL);
    let new = 1 - old;
    let clients = Clients::start(&services, NAME, &launches.command);
    std::thread::sleep(Duration::from_secs(2));
    let old_netns = network.netns_id(INSTANCES[old]);
    assert!(
        launches.read().iter().any(|l| l.netns == old_netns),
        "the leader launched nothing before the cut"
    );

    // Its path to every etcd member dropped; the process, its HTTP port and
    // its tasks live on. Its last renewal was sent before the cut holds
    // (when `cut` returns), so its lease is over by then plus the TTL.
    network.cut(INSTANCES[old], &ETCD_MEMBERS);
    let (cut, cut_wall) = (Instant::now(), SystemTime::now());
    // A submission handed to it now must not be acknowledged.
    let refused = {
        let address = services[old].address.clone();
        let body = serde_json::json!([task_running(REFUSED, &launches.command)]).to_string();
        std::thread::spawn(move || {
            let asked = Instant::now();
            let answer = ureq::post(&format!("{address}/v1/tasks"))
                .set("Content-Type", "application/json")
                .set("Authorization", &format!("Bearer {NAME}"))
                .timeout(Duration::from_secs(30))
                .send_string(&body);
            let code = match answer {
                Ok(response) => response.status(),
                Err(ureq::Error::Status(code, _)) => code,
                Err(error) => panic!("{address} did not answer: {error}"),
            };
            (code, asked.elapsed())
        })
    };
    // The new leader is asked first: if the old one then still says it
    // leads, two instances led at once.
    let (mut stopped, mut took) = (None, None);
    while stopped.is_none() || took.is_none() {
        let new_leads = role(&services[new]).as_deref() == Some("leader");
        let old_leads = role(&services[old]).as_deref() == Some("leader");
        let at = cut.elapsed();
        if !old_leads {
            stopped.get_or_insert(at);
        }
        if new_leads {
            assert!(
                !old_leads,
                "both instances answered as the leader, {at:?} after the cut"
            );
            took.get_or_insert(at);
        }
        assert!(
            at < 4 * TTL,
            "{at:?} after the cut: the old leader stopped after {stopped:?}, \
             the other took over after {took:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (stopped, took) = (stopped.unwrap(), took.unwrap());
    eprintln!(
        "leader cut off from etcd: it stopped answering as the leader after {stopped:?}, \
         the other instance took over after {took:?} (lease TTL {TTL_S} s)"
    );
    assert!(
        stopped <= TTL + MEASURED_WITHIN,
        "the cut-off leader still answered as the leader {stopped:?} after the cut, past its \
         lease's TTL ({TTL:?})"
    );
    assert!(
        took <= 2 * TTL,
        "the takeover took {took:?}, over twice the TTL"
    );

    // The cut holds while the clients go on through the new leader; the
    // old one never leads again meanwhile.
    let until = Instant::now() + TTL;
    while Instant::now() < until {
        assert_ne!(
            role(&services[old]).as_deref(),
            Some("leader"),
            "the cut-off instance led again, {:?} after the cut",
            cut.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after_cut: Vec<Launch> = launches
        .read()
        .into_iter()
        .filter(|l| l.netns == old_netns && l.at > cut_wall)
        .collect();
    let late: Vec<&Launch> = after_cut.iter().filter(|l| l.at > cut_wall + TTL).collect();
    assert!(
        late.is_empty(),
        "the cut-off leader launched runs after its lease's TTL: {late:?}"
    );
    let latest = after_cut
        .iter()
        .filter_map(|l| l.at.duration_since(cut_wall).ok())
        .max();
    eprintln!(
        "runs the cut-off leader started after the cut: {} (the latest {latest:?} after it)",
        after_cut.len()
    );
    let (code, answered) = refused.join().unwrap();
    assert_eq!(
        code, 503,
        "the cut-off leader answered {code} to a submission after the cut"
    );
    eprintln!("a submission to the cut-off leader was refused with 503 after {answered:?}");

    // Healed: it follows the new leader.
    network.heal(INSTANCES[old]);
    let healed = wait_until_following(
        &services[old],
        &services[new],
        Duration::from_secs(60),
        "60 s after the heal, the old leader does not follow the new one",
    );
    eprintln!("healed: the old leader follows the new one after {healed:?}");
    std::thread::sleep(Duration::from_secs(1));
    let acknowledged = clients.stop();
    assert_each_acknowledged_task_ran_once(&services, NAME, &acknowledged, &launches);
    eprintln!("{} acknowledged tasks, each ran once", acknowledged.len());
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn an_etcd_member_cut_off_from_the_others_leaves_the_service_accepting_and_running_tasks() {
    const NAME: &str = "partition-member-cut";
    const CUT_FOR: Duration = Duration::from_secs(10);
    let network = Network::up();
    let launches = Launches::new(NAME);
    let data = data_dir(NAME);
    let services = start_instances(&network, NAME, &data);
    let _down_first = network.down_first();
    wait_for_leader(&services, None, 4 * TTL);
    let clients = Clients::start(&services, NAME, &launches.command);
    std::thread::sleep(Duration::from_secs(2));

    // etcd's own leader, so that the cluster elects anew.
    let member = network
        .etcd_leader()
        .expect("the etcd cluster has a leader");
    let others: Vec<&str> = ETCD_MEMBERS.into_iter().filter(|m| *m != member).collect();
    network.cut(member, &others);
    let (cut, cut_wall) = (Instant::now(), SystemTime::now());
    let (mut member_unhealthy, mut leaders) = (false, Vec::new());
    while cut.elapsed() < CUT_FOR {
        member_unhealthy |= !network.etcd_healthy(member);
        let leading = services
            .iter()
            .position(|s| role(s).as_deref() == Some("leader"));
        if leaders.last() != Some(&leading) {
            leaders.push(leading);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let window = cut.elapsed();
    assert!(
        member_unhealthy,
        "etcd member {member} stayed healthy while cut off: the cut did not hold"
    );
    // Healed: the member rejoins the cluster.
    network.heal(member);
    let healed = Instant::now();
    while !network.etcd_healthy(member) {
        assert!(
            healed.elapsed() < Duration::from_secs(30),
            "etcd member {member} is not healthy 30 s after the heal"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "healed: member {member} healthy after {:?}",
        healed.elapsed()
    );
    std::thread::sleep(Duration::from_secs(1));

    // Gaps between acknowledgements in the window, its edges included.
    let mut edges = vec![cut];
    edges.extend(
        clients
            .acknowledged_at()
            .into_iter()
            .filter(|at| *at > cut && *at < cut + window),
    );
    let acknowledged_in_window = edges.len() - 1;
    edges.push(cut + window);
    let longest = edges.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    let launched_in_window = launches
        .read()
        .iter()
        .filter(|l| l.at > cut_wall && l.at < cut_wall + window)
        .count();
    eprintln!(
        "etcd member {member} cut off from {others:?} for {window:?}: {acknowledged_in_window} \
         submissions acknowledged, {launched_in_window} runs started; longest wait between \
         acknowledgements {longest:?}; leader by instance over the cut: {leaders:?}"
    );

    // Safety first (it holds whatever the availability), then availability.
    let acknowledged = clients.stop();
    assert_each_acknowledged_task_ran_once(&services, NAME, &acknowledged, &launches);
    eprintln!("{} acknowledged tasks, each ran once", acknowledged.len());
    assert!(
        launched_in_window > 0,
        "no run started while etcd member {member} was cut off from the others"
    );
    assert!(
        longest <= 2 * TTL,
        "no submission was acknowledged for {longest:?} while etcd member {member} was cut off \
         from the others (two members, a majority, were up and connected): more than a \
         takeover's 2 x TTL"
    );
    let _ = std::fs::remove_dir_all(&data);
}
