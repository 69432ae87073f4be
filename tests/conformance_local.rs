//! The conformance suite against the local backend: this machine's
//! processes, with cgroup limits where the machine offers them.

#![cfg(feature = "local")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use lepton::adapters::local::{LocalBackend, LocalConfig};
use lepton::backend::{Backend, Handle};
use lepton::{TaskId, TaskSpec};
use support::conformance::{self, Target};

struct Local {
    dir: std::path::PathBuf,
}

fn local(test: &str) -> Local {
    let dir = std::env::temp_dir().join(format!(
        "lepton-conformance-local-{test}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Local { dir }
}

#[async_trait::async_trait]
impl Target for Local {
    async fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(LocalBackend::new(LocalConfig::new(&self.dir)).unwrap())
    }

    fn unreachable(&self) -> Arc<dyn Backend> {
        // A local backend has no server to lose; see the last test.
        unimplemented!("the local backend has no server to be unreachable")
    }

    fn long_task(&self, id: u64) -> TaskSpec {
        TaskSpec::new(TaskId(id), lepton::Resources::new(100, 16))
            .with_config("command", "sleep 600")
    }

    async fn kill_outside(&self, _backend: &Arc<dyn Backend>, handle: &Handle) {
        // SIGKILL to the run's process group, as an operator's `kill` would;
        // the run's wrapper wrote its pid next to its record.
        let pid_file = self.dir.join("runs").join(format!("{}.pid", handle.id));
        let mut pid = None;
        for _ in 0..500 {
            pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok());
            if pid.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let pid = pid.unwrap_or_else(|| panic!("no pid in {}", pid_file.display()));
        let status = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status()
            .unwrap();
        assert!(status.success(), "kill {handle}");
    }
}

#[tokio::test]
async fn conformance_local_inventory_has_capacity() {
    conformance::inventory_has_capacity(&local("inventory")).await;
}

#[tokio::test]
async fn conformance_local_launch_then_stop() {
    conformance::launch_then_stop(&local("stop")).await;
}

#[tokio::test]
async fn conformance_local_launch_twice_creates_one() {
    conformance::launch_twice_creates_one(&local("twice")).await;
}

#[tokio::test]
async fn conformance_local_killed_outside_is_rescheduled() {
    conformance::killed_outside_is_rescheduled(&local("killed")).await;
}

#[test]
fn conformance_local_refuses_a_directory_it_cannot_use() {
    // What `unreachable_keeps_the_task` checks of a remote backend has no
    // counterpart here; the local backend's failure to reach its resources
    // is a directory it cannot create, refused with its name.
    let error = LocalBackend::new(LocalConfig::new("/proc/lepton-local")).unwrap_err();
    assert!(error.to_string().contains("/proc/lepton-local"), "{error}");
}
