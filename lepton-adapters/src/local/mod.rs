//! The local backend: this machine as one node (or a few, each a share of
//! it), each run a process — Nomad's `raw_exec`, with limits.
//!
//! A task's `command` config is its argv, split at whitespace and never
//! given to a shell; it runs with its CPU and memory request as cgroup
//! limits (v2, or v1 where only v1 offers the `cpu` and `memory`
//! controllers; where neither is writable the backend says so — the
//! [`LABEL_CGROUPS`] node label is `none` and [`LocalBackend::cgroups`]
//! gives the reason — and runs without limits). Output goes to
//! `DIR/logs/<task>-<attempt>.out` and `.err`; the exit code decides
//! completed (0) or failed.
//!
//! Runs survive the process that started them: each is recorded under
//! `DIR/runs/` with its pid, and leaves its exit code there when it ends,
//! so a service restarted after a crash finds every run again
//! ([`running`](Backend::running)) and learns how those that ended meanwhile
//! ended. `DIR/ledger.log` has a line per run started (`started
//! <task>-<attempt> <pid>`, by the backend) and per run that ran to its end
//! (`ended <task>-<attempt> <code>`, by the run itself): the backend's own
//! record of what ran.
//!
//! ```no_run
//! use lepton_adapters::local::{LocalBackend, LocalConfig};
//! use lepton_core::backend::Backend;
//! use lepton_core::{Resources, TaskId, TaskSpec};
//!
//! # async fn run() -> Result<(), lepton_core::backend::BackendError> {
//! let backend = LocalBackend::new(LocalConfig::new("/tmp/lepton-local"))?;
//! let nodes = backend.inventory().await?;
//! let task = TaskSpec::new(TaskId(1), Resources::new(500, 64))
//!     .with_config("command", "sleep 30");
//! # Ok(()) }
//! ```

mod cgroup;
mod run;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;

use async_trait::async_trait;
use lepton_core::backend::{Backend, BackendError, Handle, Launch, RunStatus};
use lepton_core::model::NodeKind;
use lepton_core::{NodeId, NodeSpec, Resources, Run, TaskId};

use crate::shared::errors::invalid;
use crate::shared::launch_config::{parse_command, refuse_gpus};
use crate::shared::node_labels::backend_node;
use crate::shared::sync::lock;
use cgroup::Cgroups;
use run::{Record, RunFiles};

const BACKEND: &str = "local";

/// How long a run recorded but without a pid yet counts as starting.
const STARTING_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// The node label saying how limits are applied: `v1`, `v2` or `none`.
pub const LABEL_CGROUPS: &str = "lepton.cgroups";

/// How the local backend is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConfig {
    /// Where runs' records, exit codes and output go.
    pub dir: PathBuf,
    /// Nodes offered, each an equal part of `share` of the machine: ids
    /// `first_node`, `first_node + 1`, … (default 1).
    pub nodes: u32,
    /// The id of the first node (default 0).
    pub first_node: u64,
    /// The share of this machine's cores and memory offered, in (0, 1]
    /// (default 1).
    pub share: f64,
    /// Where cgroup hierarchies are mounted (default `/sys/fs/cgroup`);
    /// `None` runs without limits.
    pub cgroup_mount: Option<PathBuf>,
}

impl LocalConfig {
    /// One node, the whole machine, cgroups from `/sys/fs/cgroup`, files
    /// under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> LocalConfig {
        LocalConfig {
            dir: dir.into(),
            nodes: 1,
            first_node: 0,
            share: 1.0,
            cgroup_mount: Some(PathBuf::from("/sys/fs/cgroup")),
        }
    }
}

/// The local backend; see the module docs.
#[derive(Debug)]
pub struct LocalBackend {
    config: LocalConfig,
    files: RunFiles,
    cgroups: Result<Cgroups, String>,
    /// What its runs' cgroups are named after, besides the run: its
    /// directory, so that two backends on one machine (two services, or
    /// tests side by side) never share a group; instances sharing one
    /// directory share its groups.
    scope: String,
    /// The runs this process started, to reap them when they end.
    children: Mutex<HashMap<Run, Child>>,
}

impl LocalBackend {
    /// A backend over `config.dir` (created if missing).
    ///
    /// # Errors
    /// [`BackendError::Invalid`] for no nodes, a share outside (0, 1] or a
    /// directory that cannot be created.
    pub fn new(config: LocalConfig) -> Result<LocalBackend, BackendError> {
        if config.nodes == 0 {
            return Err(invalid(BACKEND, "nodes", "0", "at least one node"));
        }
        if !(config.share > 0.0 && config.share <= 1.0) {
            return Err(invalid(
                BACKEND,
                "share",
                config.share.to_string(),
                "a share of the machine in (0, 1]",
            ));
        }
        let files = RunFiles::create(&config.dir).map_err(|e| BackendError::Rejected {
            backend: BACKEND.to_owned(),
            operation: format!("create {}", config.dir.display()),
            detail: e.to_string(),
        })?;
        let cgroups = match &config.cgroup_mount {
            Some(mount) => Cgroups::detect(mount),
            None => Err("cgroups turned off in the configuration".to_owned()),
        };
        let dir = std::fs::canonicalize(&config.dir).unwrap_or_else(|_| config.dir.clone());
        Ok(LocalBackend {
            config,
            files,
            cgroups,
            scope: format!(
                "{:016x}",
                crate::shared::hash::fnv1a(dir.as_os_str().as_encoded_bytes())
            ),
            children: Mutex::new(HashMap::new()),
        })
    }

    /// The cgroup version limits are applied with (`v1` or `v2`), or why
    /// none can be.
    pub fn cgroups(&self) -> Result<&'static str, &str> {
        self.cgroups
            .as_ref()
            .map(Cgroups::version)
            .map_err(String::as_str)
    }

    /// The cgroup of `run`: the backend's scope and the run.
    fn group(&self, run: Run) -> String {
        format!("{}-{}", self.scope, RunFiles::name(run))
    }

    /// The ledger file: a line per run started and per run that ended.
    pub fn ledger(&self) -> &Path {
        self.files.ledger()
    }

    /// Where a run's standard output and error are.
    pub fn logs(&self, run: Run) -> (PathBuf, PathBuf) {
        self.files.log_paths(run)
    }

    fn handle_of(record: &Record) -> Handle {
        Handle {
            run: Run {
                task: TaskId(record.task),
                attempt: record.attempt,
            },
            node: NodeId(record.node),
            id: RunFiles::name(Run {
                task: TaskId(record.task),
                attempt: record.attempt,
            }),
        }
    }

    fn failed(operation: &str, detail: impl ToString) -> BackendError {
        BackendError::Rejected {
            backend: BACKEND.to_owned(),
            operation: operation.to_owned(),
            detail: detail.to_string(),
        }
    }

    /// Reaps the run's wrapper if this process started it and it ended.
    fn reap(&self, run: Run) {
        let mut children = lock(&self.children);
        if let Some(child) = children.get_mut(&run) {
            if matches!(child.try_wait(), Ok(Some(_))) {
                children.remove(&run);
            }
        }
    }
}

/// This machine's cores (in milli) and memory (MiB).
fn machine() -> (u64, u64) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(1 << 20);
    (cores * 1_000, memory_kib / 1_024)
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &str {
        BACKEND
    }

    async fn inventory(&self) -> Result<Vec<NodeSpec>, BackendError> {
        let (cpu_milli, memory_mib) = machine();
        let part =
            |total: u64| (total as f64 * self.config.share / f64::from(self.config.nodes)) as u64;
        let cgroups = self.cgroups().unwrap_or("none");
        Ok((0..u64::from(self.config.nodes))
            .map(|i| {
                let id = NodeId(self.config.first_node + i);
                backend_node(
                    BACKEND,
                    id,
                    Resources::new(part(cpu_milli), part(memory_mib)),
                    NodeKind::Server,
                )
                .with_name(format!("local-{}", id.0))
                .with_label(LABEL_CGROUPS, cgroups)
            })
            .collect())
    }

    async fn launch(&self, launch: &Launch) -> Result<Handle, BackendError> {
        refuse_gpus(BACKEND, launch, "GPU devices")?;
        // A run is started once: held or ended, its handle is the answer.
        let known = self
            .files
            .record(launch.run)
            .or_else(|| self.files.ended_record(launch.run));
        if let Some(record) = known {
            return Ok(Self::handle_of(&record));
        }
        let argv = match launch.task.config.get("command") {
            Some(command) => parse_command(BACKEND, command)?,
            None => None,
        }
        .ok_or_else(|| {
            invalid(
                BACKEND,
                "command",
                "",
                "the task's config has no `command` to run",
            )
        })?;
        let procs = match &self.cgroups {
            Ok(cgroups) => cgroups
                .create(
                    &self.group(launch.run),
                    launch.task.request.cpu_milli,
                    launch.task.request.memory_mib,
                )
                .map_err(|e| Self::failed("create cgroup", e))?,
            Err(_) => Vec::new(),
        };
        // Recorded before it starts: a crash in between leaves a record
        // (the wrapper then writes its pid file), never an unknown process.
        let mut record = Record {
            task: launch.run.task.0,
            attempt: launch.run.attempt,
            node: launch.node.0,
            pid: 0,
            start_ticks: 0,
            argv,
        };
        self.files
            .claim(launch.run)
            .and_then(|()| self.files.write_record(launch.run, &record))
            .map_err(|e| Self::failed("record the run", e))?;
        let child = match self.files.spawn(launch.run, &record.argv, &procs) {
            Ok(child) => child,
            Err(error) => {
                self.files.remove(launch.run);
                return Err(Self::failed("start", error));
            }
        };
        record.pid = child.id();
        record.start_ticks = run::start_ticks(record.pid).unwrap_or(0);
        lock(&self.children).insert(launch.run, child);
        self.files
            .write_record(launch.run, &record)
            .map_err(|e| Self::failed("record the run", e))?;
        Ok(Self::handle_of(&record))
    }

    /// Kills the run if it still runs and removes it; a run that ended by
    /// itself keeps its exit code (in `ended/`), so it is never started
    /// again and [`status`](Backend::status) still says how it ended.
    async fn stop(&self, handle: &Handle) -> Result<(), BackendError> {
        let Some(record) = self.files.record(handle.run) else {
            return Ok(());
        };
        let process = self.files.pid(&record);
        // A run that left its exit code is ending by itself (its ledger
        // line is being written): it is waited for, never killed.
        let ended = self.files.exit_code(handle.run).is_some();
        if let (Some(process), false) = (process, ended) {
            run::kill_group(process);
        }
        // The wrapper is gone once its group is killed; reap it if ours.
        for _ in 0..100 {
            self.reap(handle.run);
            if !process.is_some_and(run::alive) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if let Ok(cgroups) = &self.cgroups {
            cgroups.remove(&self.group(handle.run));
        }
        self.files.remove(handle.run);
        Ok(())
    }

    async fn status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        self.reap(handle.run);
        // An ended run keeps its exit code, removed or not: a service that
        // restarts after removing it learns how it ended.
        if let Some(code) = self.files.exit_code(handle.run) {
            return Ok(RunStatus::Exited { code });
        }
        let Some(record) = self.files.record(handle.run) else {
            return Ok(RunStatus::Gone);
        };
        let Some(process) = self.files.pid(&record) else {
            // Recorded, and not started yet: the wrapper writes its pid
            // file at once, so only a launch that failed stays like this.
            let recent = self
                .files
                .record_age(handle.run)
                .is_some_and(|age| age < STARTING_FOR);
            return Ok(if recent {
                RunStatus::Starting
            } else {
                RunStatus::Failed {
                    reason: "the process never started".to_owned(),
                }
            });
        };
        if run::alive(process) {
            return Ok(RunStatus::Running);
        }
        // It may have written its exit code since the first look.
        Ok(match self.files.exit_code(handle.run) {
            Some(code) => RunStatus::Exited { code },
            None => RunStatus::Failed {
                reason: format!("process {} ended without an exit code (killed)", process.0),
            },
        })
    }

    async fn running(&self) -> Result<Vec<Handle>, BackendError> {
        let records = self
            .files
            .records()
            .map_err(|e| Self::failed("list runs", e))?;
        Ok(records.iter().map(Self::handle_of).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lepton_core::{TaskId, TaskSpec};

    fn launch(task: u64, command: &str, memory_mib: u64) -> Launch {
        Launch {
            run: Run {
                task: TaskId(task),
                attempt: 1,
            },
            node: NodeId(0),
            task: TaskSpec::new(TaskId(task), Resources::new(500, memory_mib))
                .with_config("command", command),
            gpus: Default::default(),
        }
    }

    fn backend(dir: &str) -> LocalBackend {
        let dir = std::env::temp_dir().join(format!("lepton-local-{dir}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        LocalBackend::new(LocalConfig::new(dir)).expect("a backend")
    }

    async fn wait_for_end(backend: &LocalBackend, handle: &Handle) -> RunStatus {
        for _ in 0..500 {
            let status = backend.status(handle).await.expect("status");
            if !matches!(status, RunStatus::Running | RunStatus::Starting) {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{handle} did not end");
    }

    #[tokio::test]
    async fn exit_codes_decide_and_the_ledger_and_logs_say_what_ran() {
        let backend = backend("exit");
        let ok = backend
            .launch(&launch(1, "echo hello", 64))
            .await
            .expect("launch");
        let bad = backend
            .launch(&launch(2, "false", 64))
            .await
            .expect("launch");
        assert_eq!(
            wait_for_end(&backend, &ok).await,
            RunStatus::Exited { code: 0 }
        );
        assert_eq!(
            wait_for_end(&backend, &bad).await,
            RunStatus::Exited { code: 1 }
        );
        let (out, _) = backend.logs(ok.run);
        assert_eq!(std::fs::read_to_string(out).expect("log"), "hello\n");
        let ledger = std::fs::read_to_string(backend.ledger()).expect("ledger");
        assert!(
            ledger.contains("ended 1-1 0\n") && ledger.contains("ended 2-1 1\n"),
            "{ledger}"
        );
        assert!(ledger.contains("started 1-1 "), "{ledger}");
    }

    #[tokio::test]
    async fn the_command_is_argv_never_a_shell_line() {
        let backend = backend("argv");
        // A shell would expand `$HOME` and run `touch`; argv echoes it as is.
        let handle = backend
            .launch(&launch(3, "echo $HOME;touch /tmp/lepton-injected", 64))
            .await
            .expect("launch");
        assert_eq!(
            wait_for_end(&backend, &handle).await,
            RunStatus::Exited { code: 0 }
        );
        let (out, _) = backend.logs(handle.run);
        assert_eq!(
            std::fs::read_to_string(out).expect("log"),
            "$HOME;touch /tmp/lepton-injected\n"
        );
        assert!(!Path::new("/tmp/lepton-injected").exists());
        crate::shared::testing::assert_invalid(
            backend.launch(&launch(4, "   ", 64)).await,
            "command",
        );
    }

    #[tokio::test]
    async fn limits_are_applied_through_cgroups_where_they_exist() {
        let backend = backend("limits");
        eprintln!("cgroups: {:?}", backend.cgroups());
        let Ok(cgroups) = &backend.cgroups else {
            // Said at start; the label tells every node.
            let nodes = backend.inventory().await.expect("inventory");
            assert_eq!(
                nodes[0].labels.get(LABEL_CGROUPS).map(String::as_str),
                Some("none")
            );
            return;
        };
        let handle = backend
            .launch(&launch(5, "sleep 30", 96))
            .await
            .expect("launch");
        let name = backend.group(handle.run);
        assert_eq!(cgroups.memory_limit(&name), Some(96 << 20));
        // Another backend's run of the same id has a group of its own: its
        // end leaves this one's alone.
        let other = self::backend("limits-other");
        let theirs = other
            .launch(&launch(5, "sleep 30", 48))
            .await
            .expect("launch");
        assert_ne!(other.group(theirs.run), name);
        other.stop(&theirs).await.expect("stop");
        assert_eq!(cgroups.memory_limit(&name), Some(96 << 20));
        backend.stop(&handle).await.expect("stop");
        assert_eq!(
            backend.status(&handle).await.expect("status"),
            RunStatus::Gone
        );
        assert_eq!(cgroups.memory_limit(&name), None, "the group is removed");
    }

    #[tokio::test]
    async fn a_new_backend_finds_runs_and_exit_codes_left_by_an_earlier_one() {
        let first = backend("restart");
        let handle = first
            .launch(&launch(6, "sleep 0.3", 64))
            .await
            .expect("launch");
        let dir = first.config.dir.clone();
        drop(first);
        let second = LocalBackend::new(LocalConfig::new(dir)).expect("a backend");
        assert_eq!(
            second.running().await.expect("running"),
            vec![handle.clone()]
        );
        assert_eq!(
            wait_for_end(&second, &handle).await,
            RunStatus::Exited { code: 0 }
        );
        // Removed, it keeps its exit code, and is never started again.
        second.stop(&handle).await.expect("stop");
        assert!(second.running().await.expect("running").is_empty());
        assert_eq!(
            second.status(&handle).await.expect("status"),
            RunStatus::Exited { code: 0 }
        );
        let again = second
            .launch(&launch(6, "sleep 0.3", 64))
            .await
            .expect("launch");
        assert_eq!(again, handle);
        let ledger = std::fs::read_to_string(second.ledger()).expect("ledger");
        assert_eq!(ledger.matches("started 6-1 ").count(), 1, "{ledger}");
    }
}
