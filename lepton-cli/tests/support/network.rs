//! The network of `bash scripts/partition.sh`: three etcd members (`e1`..`e3`)
//! and up to three `lepton serve` instances (`i1`..`i3`), each in a Linux
//! network namespace of its own, joined through a bridge; partitions are
//! real cuts (nftables drops inside a node's namespace), healed by removing
//! them.
//!
//! One network at a time on a machine: a lock file is held for its life.
//! Dropped — the test passed or panicked — it stops every process in the
//! namespaces and removes them; `up` also removes what a killed run left.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::service::Service;

/// The port each instance listens on, at its namespace's address.
const INSTANCE_PORT: u16 = 7700;

/// The etcd members, by node name.
pub(crate) const ETCD_MEMBERS: [&str; 3] = ["e1", "e2", "e3"];

/// The network, up; down when dropped.
pub(crate) struct Network {
    env: BTreeMap<String, String>,
    _lock: std::fs::File,
}

fn script(args: &[&str]) -> std::process::Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/partition.sh");
    Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash {script}: {e}"))
}

fn run(args: &[&str]) {
    let output = script(args);
    assert!(
        output.status.success(),
        "scripts/partition.sh {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Network {
    /// Makes the namespaces and starts the etcd members; fails the test,
    /// saying what is missing, when they cannot be made.
    pub(crate) fn up() -> Network {
        let lock = std::fs::File::create(std::env::temp_dir().join("lepton-partition.lock"))
            .and_then(|file| file.lock().map(|()| file))
            .expect("the lock of the partition tests' network");
        let output = script(&["up"]);
        assert!(
            output.status.success(),
            "the partition tests need their network of namespaces, and \
             `bash scripts/partition.sh up` could not make it (it needs root, iproute2, \
             nftables and etcd; scripts/test.sh installs them):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let env = script(&["env"]);
        assert!(env.status.success(), "scripts/partition.sh env");
        let env = String::from_utf8_lossy(&env.stdout)
            .lines()
            .filter_map(|line| {
                let (name, value) = line.strip_prefix("export ")?.split_once('=')?;
                Some((name.to_owned(), value.trim_matches('\'').to_owned()))
            })
            .collect();
        Network { env, _lock: lock }
    }

    fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("scripts/partition.sh env does not set {name}"))
    }

    /// The etcd members' client URLs, comma-separated.
    pub(crate) fn etcd_endpoints(&self) -> &str {
        self.var("LEPTON_PARTITION_ETCD_ENDPOINTS")
    }

    /// `node`'s address.
    pub(crate) fn address(&self, node: &str) -> &str {
        self.var(&format!("LEPTON_PARTITION_ADDRESS_{}", node.to_uppercase()))
    }

    /// `node`'s namespace (`/run/netns/NAME`).
    pub(crate) fn netns(&self, node: &str) -> &str {
        self.var(&format!("LEPTON_PARTITION_NETNS_{}", node.to_uppercase()))
    }

    /// The kernel's id of `node`'s namespace: what `readlink
    /// /proc/self/ns/net` says (`net:[ID]`) in a process inside it.
    pub(crate) fn netns_id(&self, node: &str) -> u64 {
        std::fs::metadata(self.netns(node)).unwrap().ino()
    }

    /// An instance in `node`'s namespace (not started), its data in `data`.
    pub(crate) fn instance(&self, node: &str, name: &str, extra: &str, data: &Path) -> Service {
        let listen = format!("{}:{INSTANCE_PORT}", self.address(node));
        Service::in_netns(name, extra, Some(data), self.netns(node), &listen)
    }

    /// Drops every packet between `node` and each of `peers`, both ways.
    pub(crate) fn cut(&self, node: &str, peers: &[&str]) {
        let mut args = vec!["cut", node];
        args.extend_from_slice(peers);
        run(&args);
    }

    /// Removes `node`'s cuts.
    pub(crate) fn heal(&self, node: &str) {
        run(&["heal", node]);
    }

    /// The member that is the etcd cluster's raft leader, as the members
    /// say (`None` while they know none).
    pub(crate) fn etcd_leader(&self) -> Option<&'static str> {
        // Each member's id and the leader's id it knows.
        let status = |member: &str| -> Option<(String, String)> {
            let answer: serde_json::Value = ureq::post(&format!(
                "http://{}:2379/v3/maintenance/status",
                self.address(member)
            ))
            .timeout(Duration::from_secs(2))
            .send_string("{}")
            .ok()?
            .into_json()
            .ok()?;
            Some((
                answer["header"]["member_id"].as_str()?.to_owned(),
                answer["leader"].as_str()?.to_owned(),
            ))
        };
        let statuses: Vec<_> = ETCD_MEMBERS.iter().map(|m| (*m, status(m))).collect();
        let leader = statuses
            .iter()
            .find_map(|(_, s)| Some(s.as_ref()?.1.clone()))?;
        statuses
            .iter()
            .find(|(_, s)| s.as_ref().is_some_and(|(id, _)| *id == leader))
            .map(|(member, _)| *member)
    }

    /// Whether `member` says it is healthy (it has a leader and a quorum).
    pub(crate) fn etcd_healthy(&self, member: &str) -> bool {
        ureq::get(&format!("http://{}:2379/health", self.address(member)))
            .timeout(Duration::from_secs(2))
            .call()
            .ok()
            .and_then(|answer| answer.into_json::<serde_json::Value>().ok())
            .is_some_and(|answer| answer["health"] == "true")
    }

    /// A guard that takes the network down, every process in it included,
    /// when it is dropped: declared after the instances' `Service`s, it
    /// goes first, so that they do not wait for a process that will not
    /// stop (an instance told to stop while cut off from etcd waits for
    /// etcd to take its lease back).
    pub(crate) fn down_first(&self) -> DownFirst<'_> {
        DownFirst(self)
    }
}

fn down() {
    let output = script(&["down"]);
    if !output.status.success() {
        eprintln!(
            "scripts/partition.sh down: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        down();
    }
}

/// See [`Network::down_first`].
pub(crate) struct DownFirst<'a>(&'a Network);

impl Drop for DownFirst<'_> {
    fn drop(&mut self) {
        down();
    }
}
