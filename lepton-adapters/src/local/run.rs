//! One run as a process tree on this machine, and the files that are the
//! backend's record of it: `runs/<task>-<attempt>.json` while it is held,
//! `runs/<task>-<attempt>.exit` once it ended, both moved to `ended/` when
//! the run is removed (so a run id is never started twice, and its exit
//! code outlives its removal); its output in `logs/`; and a line per
//! run started and per run that ran to its end in `ledger.log`.
//!
//! A run is started as `sh -c WRAPPER lepton-run ARGV...`: the wrapper
//! creates the run's pid file (never replacing one: a run given up holds
//! it already) and checks the run is still recorded — else it runs
//! nothing, so a start that comes too late (from a deposed leader that
//! woke up) never runs a run given up or removed; it joins the run's
//! cgroups (so the command starts inside its limits), runs the
//! command as `"$@"` (its argv exactly: the shell never parses it), then
//! writes the exit code to the exit file and a line to the ledger. The
//! wrapper outlives a crash of the service, so a run that ends while no
//! service watches still leaves its exit code for the next one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lepton_core::Run;
use serde::{Deserialize, Serialize};

use super::identity::Identity;

/// The wrapper script; data reaches it only through its arguments and
/// environment, never through its text. Its own files are private (umask
/// 077); the command gets the backend's umask back, and none of the
/// wrapper's variables.
const WRAPPER: &str = r#"mask=$(umask); umask 077
pid_file=$LEPTON_PID exit_file=$LEPTON_EXIT ledger=$LEPTON_LEDGER procs=$LEPTON_CGROUP_PROCS
record=$LEPTON_RECORD
unset LEPTON_PID LEPTON_EXIT LEPTON_LEDGER LEPTON_CGROUP_PROCS LEPTON_RECORD
echo $$ > "$pid_file.tmp" && ln "$pid_file.tmp" "$pid_file" || { rm -f "$pid_file.tmp"; exit 125; }
rm -f "$pid_file.tmp"
[ -e "$record" ] || { rm -f "$pid_file"; exit 125; }
echo "started $LEPTON_RUN $$" >> "$ledger"
for p in $procs; do echo $$ > "$p" || exit 125; done
umask "$mask"
"$@"
code=$?
umask 077
echo "$code" > "$exit_file.tmp" && mv "$exit_file.tmp" "$exit_file"
echo "ended $LEPTON_RUN $code" >> "$ledger""#;

/// What the backend keeps of a run it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) task: u64,
    pub(crate) attempt: u32,
    pub(crate) node: u64,
    /// The wrapper's pid, which is also its process group's id; 0 in the
    /// record written before it was started (the wrapper writes its pid
    /// file first thing, so a crash in between loses nothing).
    pub(crate) pid: u32,
    /// The wrapper's start time (`/proc/PID/stat` field 22), so a reused
    /// pid is not taken for the run; 0 when unknown.
    pub(crate) start_ticks: u64,
    pub(crate) argv: Vec<String>,
}

/// The files of the runs under one directory.
#[derive(Debug, Clone)]
pub(crate) struct RunFiles {
    runs: PathBuf,
    ended: PathBuf,
    logs: PathBuf,
    ledger: PathBuf,
}

impl RunFiles {
    /// The layout under `dir`, created if missing.
    pub(crate) fn create(dir: &Path) -> std::io::Result<RunFiles> {
        let files = RunFiles {
            runs: dir.join("runs"),
            ended: dir.join("ended"),
            logs: dir.join("logs"),
            ledger: dir.join("ledger.log"),
        };
        std::fs::create_dir_all(&files.runs)?;
        // Private: runs' records, exit codes and output are the backend's.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        std::fs::create_dir_all(&files.ended)?;
        // No cleanup of `*.tmp` files here: a run's wrapper may be writing
        // its exit code through one right now.
        std::fs::create_dir_all(&files.logs)?;
        Ok(files)
    }

    /// The base name of a run's files: `<task>-<attempt>`.
    pub(crate) fn name(run: Run) -> String {
        format!("{}-{}", run.task.0, run.attempt)
    }

    fn record_path(&self, run: Run) -> PathBuf {
        self.runs.join(format!("{}.json", Self::name(run)))
    }

    fn exit_path(&self, run: Run) -> PathBuf {
        self.runs.join(format!("{}.exit", Self::name(run)))
    }

    fn pid_path(&self, run: Run) -> PathBuf {
        self.runs.join(format!("{}.pid", Self::name(run)))
    }

    /// The run's wrapper pid (and start time, when recorded): from the
    /// record, else from the pid file the wrapper wrote.
    pub(crate) fn pid(&self, record: &Record) -> Option<(u32, Option<u64>)> {
        if record.pid != 0 {
            return Some((record.pid, Some(record.start_ticks).filter(|&t| t != 0)));
        }
        let run = Run {
            task: lepton_core::TaskId(record.task),
            attempt: record.attempt,
        };
        let text = std::fs::read_to_string(self.pid_path(run)).ok()?;
        Some((text.trim().parse().ok()?, None))
    }

    /// How long ago the run's record was last written.
    pub(crate) fn record_age(&self, run: Run) -> Option<std::time::Duration> {
        let modified = std::fs::metadata(self.record_path(run))
            .ok()?
            .modified()
            .ok()?;
        modified.elapsed().ok()
    }

    fn archived(&self, path: &Path) -> PathBuf {
        match path.file_name() {
            Some(name) => self.ended.join(name),
            None => self.ended.clone(),
        }
    }

    /// Where a run's standard output and error go.
    pub(crate) fn log_paths(&self, run: Run) -> (PathBuf, PathBuf) {
        let name = Self::name(run);
        (
            self.logs.join(format!("{name}.out")),
            self.logs.join(format!("{name}.err")),
        )
    }

    /// The ledger: one line `ended <task>-<attempt> <code>` per run that
    /// ran to its end, written by the run itself.
    pub(crate) fn ledger(&self) -> &Path {
        &self.ledger
    }

    /// The run's record while it is held.
    pub(crate) fn record(&self, run: Run) -> Option<Record> {
        read_record(&self.record_path(run))
    }

    /// The record of a run that ended and was removed.
    pub(crate) fn ended_record(&self, run: Run) -> Option<Record> {
        read_record(&self.archived(&self.record_path(run)))
    }

    /// Every run with a record.
    pub(crate) fn records(&self) -> std::io::Result<Vec<Record>> {
        let mut records = Vec::new();
        for entry in std::fs::read_dir(&self.runs)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if let Ok(record) = serde_json::from_str::<Record>(&text) {
                records.push(record);
            }
        }
        records.sort_by_key(|r| (r.task, r.attempt));
        Ok(records)
    }

    /// The exit code the run left, if it ended (held or removed).
    pub(crate) fn exit_code(&self, run: Run) -> Option<i64> {
        let path = self.exit_path(run);
        let text = std::fs::read_to_string(&path)
            .or_else(|_| std::fs::read_to_string(self.archived(&path)))
            .ok()?;
        text.trim().parse().ok()
    }

    /// Claims `run` for this caller by creating its record, whole, in one
    /// step (a hard link of a private file that already holds it): `None`
    /// when this caller is to start the run; the run's record when another
    /// process sharing this directory (a deposed leader waking up, say)
    /// claimed it first, or when it was claimed and removed before — no
    /// run id is started twice, and the answer is the run that holds it.
    pub(crate) fn claim(&self, run: Run, record: &Record) -> std::io::Result<Option<Record>> {
        static CLAIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let path = self.record_path(run);
        // Its own name per claim: two processes (or two launches) never
        // share it; not `.json`, so never taken for a record.
        let tmp = path.with_extension(format!(
            "json.{}-{}.claim",
            std::process::id(),
            CLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        write_private(&tmp, record)?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            // A removal moves the record to `ended/` (a rename, in one
            // step), which frees the name: a run removed before this claim
            // is found there, and given up again.
            Ok(()) => match self.ended_record(run) {
                Some(ended) => {
                    let _ = std::fs::remove_file(&path);
                    Ok(Some(ended))
                }
                None => Ok(None),
            },
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => self
                .record(run)
                .or_else(|| self.ended_record(run))
                .map_or(Err(error), |held| Ok(Some(held))),
            Err(error) => Err(error),
        }
    }

    /// Writes a record atomically (a reader sees the old one or the new one).
    pub(crate) fn write_record(&self, run: Run, record: &Record) -> std::io::Result<()> {
        let path = self.record_path(run);
        let tmp = path.with_extension("json.tmp");
        write_private(&tmp, record)?;
        std::fs::rename(tmp, path)
    }

    /// Removes a run: its record (and exit code, if it ended by itself)
    /// is moved to `ended/`, so it is never claimed again and its exit code
    /// outlives it. Its logs stay. A removal cut short by a crash is
    /// finished by the next one while the record stays: the record is
    /// what makes the run found again. The pid file goes last: until it
    /// goes, a wrapper that starts late cannot create it, and after, it
    /// finds no record; either way it runs nothing.
    pub(crate) fn remove(&self, run: Run) {
        let (record, exit) = (self.record_path(run), self.exit_path(run));
        if exit.exists() {
            let _ = std::fs::rename(&exit, self.archived(&exit));
        }
        let _ = std::fs::rename(&record, self.archived(&record));
        let pid = self.pid_path(run);
        let _ = std::fs::remove_file(pid.with_extension("pid.tmp"));
        let _ = std::fs::remove_file(pid);
    }

    /// Gives up a run that has no pid file, so that it never starts: its
    /// pid file is created in the wrapper's place (the wrapper creates
    /// its own, never replaces one, and runs nothing when it cannot).
    /// `true` when the run will never start; `false` when its wrapper
    /// created its pid file first, and runs.
    pub(crate) fn give_up(&self, run: Run) -> std::io::Result<bool> {
        let path = self.pid_path(run);
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        match created {
            Ok(mut file) => {
                std::io::Write::write_all(&mut file, b"never\n")?;
                Ok(true)
            }
            // A wrapper's pid file holds its pid (linked whole); anything
            // else is another give-up's, or gone with the run's removal.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok(std::fs::read_to_string(&path)
                    .map_or(true, |text| text.trim().parse::<u32>().is_err()))
            }
            Err(error) => Err(error),
        }
    }

    /// Starts `argv` for `run` under the wrapper, in a process group of its
    /// own, joining the cgroups whose `cgroup.procs` files are given; the
    /// command runs as `identity` with `env` and `LEPTON_RUN` only.
    pub(crate) fn spawn(
        &self,
        run: Run,
        argv: &[String],
        cgroup_procs: &[PathBuf],
        identity: &Identity,
        env: &BTreeMap<String, String>,
    ) -> std::io::Result<Child> {
        let (out, err) = self.log_paths(run);
        let procs: Vec<String> = cgroup_procs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        std::os::unix::process::CommandExt::process_group(
            Command::new("/bin/sh")
                .arg("-c")
                .arg(WRAPPER)
                .arg("lepton-run")
                .args(identity.prefix())
                .args(argv)
                .env_clear()
                .envs(env)
                .env("LEPTON_CGROUP_PROCS", procs.join(" "))
                .env("LEPTON_EXIT", self.exit_path(run))
                .env("LEPTON_PID", self.pid_path(run))
                .env("LEPTON_RECORD", self.record_path(run))
                .env("LEPTON_LEDGER", &self.ledger)
                .env("LEPTON_RUN", Self::name(run))
                .stdin(Stdio::null())
                .stdout(private_file(&out)?)
                .stderr(private_file(&err)?),
            0,
        )
        .spawn()
    }
}

/// Creates (or truncates) `path`, readable and writable by its owner only.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        0o600,
    )
    .open(path)
}

/// Writes `record` to `path` (created or truncated), private to its owner.
fn write_private(path: &Path, record: &Record) -> std::io::Result<()> {
    let json = serde_json::to_string(record).map_err(std::io::Error::other)?;
    std::io::Write::write_all(&mut private_file(path)?, json.as_bytes())
}

fn read_record(path: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// The start time of process `pid` (`/proc/PID/stat` field 22), unless it
/// has ended (a zombie has ended).
pub(crate) fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields resume after ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (the state).
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether process `pid` still runs (and is the one started at `ticks`,
/// when known).
pub(crate) fn alive((pid, ticks): (u32, Option<u64>)) -> bool {
    match (start_ticks(pid), ticks) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Kills process group `pid` (the wrapper and the command).
pub(crate) fn kill_group(process: (u32, Option<u64>)) {
    if !alive(process) {
        return;
    }
    if let Ok(pid) = i32::try_from(process.0) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
