//! `lepton serve` as a child process on a free loopback port.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A service's files, address and process.
pub(crate) struct Service {
    pub(crate) dir: PathBuf,
    data: PathBuf,
    config: PathBuf,
    pub(crate) address: String,
    child: Option<Child>,
    pub(crate) starts: usize,
    /// The network namespace it runs in (`/run/netns/NAME`), if not this
    /// process's own.
    netns: Option<String>,
}

impl Service {
    /// A service's files and a free port; `extra` is added to its
    /// config file.
    pub(crate) fn new(name: &str, extra: &str) -> Service {
        Self::sharing(name, extra, None)
    }

    /// As [`new`](Self::new), with its data (the local backend's runs and
    /// ledger) in `data` when given: several instances of one replicated
    /// service share them.
    pub(crate) fn sharing(name: &str, extra: &str, data: Option<&Path>) -> Service {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::listening(name, extra, data, None, format!("127.0.0.1:{port}"))
    }

    /// As [`sharing`](Self::sharing), in the network namespace `netns`
    /// (`/run/netns/NAME`), listening on `listen` (`IP:PORT`, reachable
    /// from this process): started with `nsenter --net`, which execs it, so
    /// the child's pid is the service's own.
    pub(crate) fn in_netns(
        name: &str,
        extra: &str,
        data: Option<&Path>,
        netns: &str,
        listen: &str,
    ) -> Service {
        Self::listening(name, extra, data, Some(netns.to_owned()), listen.to_owned())
    }

    fn listening(
        name: &str,
        extra: &str,
        data: Option<&Path>,
        netns: Option<String>,
        listen: String,
    ) -> Service {
        let dir = std::env::temp_dir().join(format!("lepton-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = data.map_or_else(|| dir.join("data"), Path::to_path_buf);
        let config = dir.join("lepton.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"{listen}\"\ndata_dir = \"{}\"\ntick_ms = 50\n{extra}",
                data.display()
            ),
        )
        .unwrap();
        Service {
            dir,
            data,
            config,
            address: format!("http://{listen}"),
            child: None,
            starts: 0,
            netns,
        }
    }

    /// Starts `lepton serve` and waits until it answers.
    pub(crate) fn start(&mut self) {
        self.start_with(&[]);
    }

    /// As [`start`](Self::start), with these environment variables.
    pub(crate) fn start_with(&mut self, env: &[(&str, &str)]) {
        self.starts += 1;
        let log =
            std::fs::File::create(self.dir.join(format!("serve-{}.log", self.starts))).unwrap();
        let mut command = match &self.netns {
            Some(netns) => {
                let mut nsenter = Command::new("nsenter");
                nsenter
                    .arg(format!("--net={netns}"))
                    .arg(env!("CARGO_BIN_EXE_lepton"));
                nsenter
            }
            None => Command::new(env!("CARGO_BIN_EXE_lepton")),
        };
        // A process group of its own: job control aimed at the test's group
        // (the kernel resumes every stopped member of a group that becomes
        // orphaned) never resumes a service a test paused.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .args(["serve", "--config", self.config.to_str().unwrap()])
            .env_remove("LEPTON_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        // Over TLS (a test's own CA): it answers once it accepts.
        let up = |address: &str| match address.strip_prefix("https://") {
            Some(host) => {
                std::net::TcpStream::connect(host.replace("localhost", "127.0.0.1")).is_ok()
            }
            None => ureq::get(&format!("{address}/healthz")).call().is_ok(),
        };
        while !up(&self.address) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the service did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the running process.
    pub(crate) fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a running service");
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal}");
        if signal == "STOP" {
            let started = Instant::now();
            while !self.stopped() {
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "the service did not stop on SIGSTOP"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Whether the process is stopped (by SIGSTOP), by `/proc/PID/stat`.
    pub(crate) fn stopped(&self) -> bool {
        let child = self.child.as_ref().expect("a running service");
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        // The state follows the command name, which ends at the last ')'.
        stat[stat.rfind(')').unwrap() + 1..]
            .trim_start()
            .starts_with('T')
    }

    /// What the latest start wrote on stderr.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("serve-{}.log", self.starts)))
            .unwrap_or_default()
    }

    /// The local backend's ledger.
    pub(crate) fn ledger(&self) -> String {
        std::fs::read_to_string(self.data.join("local/ledger.log")).unwrap_or_default()
    }
}

/// The ledger's `ended`/`started` lines per task id: the exit codes of its
/// runs and how many were started.
pub(crate) fn ledger_lines(ledger: &str) -> BTreeMap<u64, (Vec<i64>, usize)> {
    let mut per_task: BTreeMap<u64, (Vec<i64>, usize)> = BTreeMap::new();
    for line in ledger.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let task = |run: &str| -> u64 { run.split('-').next().unwrap().parse().unwrap() };
        match fields.as_slice() {
            ["ended", run, code] => per_task
                .entry(task(run))
                .or_default()
                .0
                .push(code.parse().unwrap()),
            ["started", run, _pid] => per_task.entry(task(run)).or_default().1 += 1,
            _ => panic!("a ledger line of unknown shape: {line:?}"),
        }
    }
    per_task
}

/// Asserts that the ledger shows exactly `tasks`, each started once and
/// ended once with exit code 0.
pub(crate) fn assert_each_ran_once(ledger: &str, tasks: &std::collections::BTreeSet<u64>) {
    let per_task = ledger_lines(ledger);
    assert_eq!(
        &per_task
            .keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        tasks,
        "the tasks the backend ran are exactly those acknowledged"
    );
    for (task, (ends, starts)) in &per_task {
        assert_eq!(ends, &vec![0], "task {task} ended {ends:?}");
        assert_eq!(*starts, 1, "task {task} was started {starts} times");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // CONT after TERM: a test that failed with it stopped must not
            // wait for it forever.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// The ids of the tasks in a `GET /v1/tasks` answer.
pub(crate) fn task_ids(answer: &serde_json::Value) -> std::collections::BTreeSet<u64> {
    answer["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect()
}
