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
//! completed (0) or failed. Run as root, the backend runs commands as an
//! unprivileged user (`nobody` by default) with a clean environment, and
//! kills whatever a run leaves in its cgroup when it ends (see
//! `identity.rs`); its directory is private (`0700`, files `0600`).
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
mod identity;
mod run;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;

use async_trait::async_trait;
use lepton_core::backend::{Backend, BackendError, Handle, Launch, RunStatus};
use lepton_core::model::NodeKind;
use lepton_core::{NodeId, NodeSpec, Resources, Run, TaskId, TaskSpec};

use crate::shared::errors::invalid;
use crate::shared::launch_config::{parse_command, refuse_gpu_launch, refuse_gpus};
use crate::shared::node_labels::backend_node;
use crate::shared::sync::lock;
use cgroup::Cgroups;
use identity::Identity;
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
    /// The user commands run as when the backend runs as root (default
    /// `nobody`); `None` runs them as the backend's own user. A backend
    /// not running as root cannot switch: its commands run as itself
    /// ([`LocalBackend::isolation`] says which).
    pub user: Option<String>,
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
            user: Some("nobody".to_owned()),
        }
    }
}

/// The local backend; see the module docs.
#[derive(Debug)]
pub struct LocalBackend {
    config: LocalConfig,
    files: RunFiles,
    cgroups: Result<Cgroups, String>,
    identity: Identity,
    /// What its runs' cgroups are named after, besides the run: its
    /// directory, so that two backends on one machine (two services, or
    /// tests side by side) never share a group; instances sharing one
    /// directory share its groups.
    scope: String,
    /// The runs this process started, to reap them when they end.
    children: Mutex<HashMap<Run, Child>>,
    /// What each node offers: its part of the machine's share (read once:
    /// every submission is checked against it).
    capacity: Resources,
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
        let identity = Identity::resolve(config.user.as_deref())?;
        let dir = std::fs::canonicalize(&config.dir).unwrap_or_else(|_| config.dir.clone());
        let (cpu_milli, memory_mib) = machine();
        let part = |total: u64| (total as f64 * config.share / f64::from(config.nodes)) as u64;
        let capacity = Resources::new(part(cpu_milli), part(memory_mib));
        Ok(LocalBackend {
            config,
            files,
            cgroups,
            identity,
            scope: format!(
                "{:016x}",
                crate::shared::hash::fnv1a(dir.as_os_str().as_encoded_bytes())
            ),
            children: Mutex::new(HashMap::new()),
            capacity,
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

    /// Who commands run as, and why (see [`LocalConfig::user`]).
    pub fn isolation(&self) -> String {
        self.identity.describe()
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

    /// [`RunFiles::give_up`], its error named.
    fn give_up(&self, run: Run) -> Result<bool, BackendError> {
        self.files
            .give_up(run)
            .map_err(|e| Self::failed("give the run up", e))
    }

    fn failed(operation: &str, detail: impl ToString) -> BackendError {
        BackendError::Rejected {
            backend: BACKEND.to_owned(),
            operation: operation.to_owned(),
            detail: detail.to_string(),
        }
    }

    /// How a run that left exit `code` ended: killed for memory when the
    /// OOM killer took a process of its group (137 is SIGKILL's code, from
    /// whoever sent it), else the code.
    fn exited(&self, run: Run, code: i64) -> RunStatus {
        let group = self.group(run);
        match &self.cgroups {
            Ok(cgroups) if code == 137 && cgroups.oom_killed(&group) => RunStatus::Failed {
                reason: match cgroups.memory_limit(&group) {
                    Some(bytes) => format!("killed: out of memory (limit {} MiB)", bytes >> 20),
                    None => "killed: out of memory".to_owned(),
                },
            },
            _ => RunStatus::Exited { code },
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

/// The argv a task's `command` config runs.
fn command_argv(task: &TaskSpec) -> Result<Vec<String>, BackendError> {
    match task.config.get("command") {
        Some(command) => parse_command(BACKEND, command)?,
        None => None,
    }
    .ok_or_else(|| {
        invalid(
            BACKEND,
            "command",
            task.config.get("command").map_or("", String::as_str),
            "the task's config has no `command` to run",
        )
    })
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
        let capacity = &self.capacity;
        let cgroups = self.cgroups().unwrap_or("none");
        Ok((0..u64::from(self.config.nodes))
            .map(|i| {
                let id = NodeId(self.config.first_node + i);
                backend_node(BACKEND, id, capacity.clone(), NodeKind::Server)
                    .with_name(format!("local-{}", id.0))
                    .with_label(LABEL_CGROUPS, cgroups)
            })
            .collect())
    }

    /// Refuses GPUs, a missing, empty or malformed `command`, a malformed
    /// `env.*` entry, and a request larger than one node.
    fn validate(&self, task: &TaskSpec) -> Result<(), BackendError> {
        refuse_gpus(BACKEND, task, "GPU devices")?;
        command_argv(task)?;
        identity::environment(task)?;
        let capacity = &self.capacity;
        if capacity.fits(&task.request) {
            Ok(())
        } else {
            Err(invalid(
                BACKEND,
                "request",
                format!("{} (a node offers {capacity})", task.request),
                "more than a whole node of this machine offers",
            ))
        }
    }

    async fn launch(&self, launch: &Launch) -> Result<Handle, BackendError> {
        refuse_gpu_launch(BACKEND, launch, "GPU devices")?;
        let argv = command_argv(&launch.task)?;
        let env = identity::environment(&launch.task)?;
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
        // A run is started once: whoever claims it starts it; held or
        // ended, its record is everyone else's answer — a new leader that
        // launches what a deposed one, waking up, launches too adopts it.
        let claimed = self
            .files
            .claim(launch.run, &record)
            .map_err(|e| Self::failed("record the run", e))?;
        if let Some(held) = claimed {
            return Ok(Self::handle_of(&held));
        }
        let procs = match &self.cgroups {
            Ok(cgroups) => cgroups
                .create(
                    &self.group(launch.run),
                    launch.task.request.cpu_milli,
                    launch.task.request.memory_mib,
                )
                .map_err(|e| {
                    self.files.remove(launch.run);
                    Self::failed("create cgroup", e)
                })?,
            Err(_) => Vec::new(),
        };
        let spawned = self
            .files
            .spawn(launch.run, &record.argv, &procs, &self.identity, &env);
        let child = match spawned {
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

    /// Kills the run if it still runs and removes it; its record stays in
    /// `ended/`, so it is never started again, and a run that ended by
    /// itself keeps its exit code, so [`status`](Backend::status) still
    /// says how it ended.
    async fn stop(&self, handle: &Handle) -> Result<(), BackendError> {
        let Some(record) = self.files.record(handle.run) else {
            return Ok(());
        };
        let process = match self.files.pid(&record) {
            Some(process) => Some(process),
            // Not started: given up, it never starts; if its wrapper got
            // there first, it is killed like any other.
            None if self.give_up(handle.run)? => None,
            None => self.files.pid(&record),
        };
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
        // What the command left behind (a daemon it started in a session
        // of its own, say) goes with it: the run's cgroup holds it.
        if let Ok(cgroups) = &self.cgroups {
            let group = self.group(handle.run);
            for _ in 0..100 {
                let members = cgroups.members(&group);
                if members.is_empty() {
                    break;
                }
                for pid in members {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            cgroups.remove(&group);
        }
        self.files.remove(handle.run);
        Ok(())
    }

    async fn status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        self.reap(handle.run);
        // An ended run keeps its exit code, removed or not: a service that
        // restarts after removing it learns how it ended.
        if let Some(code) = self.files.exit_code(handle.run) {
            return Ok(self.exited(handle.run, code));
        }
        let Some(record) = self.files.record(handle.run) else {
            return Ok(RunStatus::Gone);
        };
        let Some(process) = self.files.pid(&record) else {
            // Recorded, and not started yet: the wrapper writes its pid
            // file at once, so only a launch cut short (by a crash, or a
            // pause, between the record and the start) stays like this.
            let recent = self
                .files
                .record_age(handle.run)
                .is_some_and(|age| age < STARTING_FOR);
            if recent {
                return Ok(RunStatus::Starting);
            }
            // Given up, it never starts, even if the launch goes on later.
            return Ok(if self.give_up(handle.run)? {
                RunStatus::NeverStarted
            } else {
                RunStatus::Running
            });
        };
        if run::alive(process) {
            return Ok(RunStatus::Running);
        }
        // It may have written its exit code since the first look.
        Ok(match self.files.exit_code(handle.run) {
            Some(code) => self.exited(handle.run, code),
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
mod tests;
