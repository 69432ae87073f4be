//! The local backend against this machine: exit codes, argv, limits,
//! restarts, and what a command can see and reach.

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
    // The exit code is written first, the ledger line right after it.
    let mut ledger = String::new();
    for _ in 0..200 {
        ledger = std::fs::read_to_string(backend.ledger()).expect("ledger");
        if ledger.contains("ended 1-1 0\n") && ledger.contains("ended 2-1 1\n") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
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
    crate::shared::testing::assert_invalid(backend.launch(&launch(4, "   ", 64)).await, "command");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_backends_sharing_a_directory_start_each_run_once() {
    // A new leader and a deposed one waking up launch the same runs at the
    // same moment, from one data directory, each on a node of its own.
    let first = std::sync::Arc::new(backend("shared"));
    let second = std::sync::Arc::new(
        LocalBackend::new(LocalConfig::new(first.config.dir.clone())).expect("a backend"),
    );
    let mut launches = Vec::new();
    for task in 1..=40 {
        for (backend, node) in [(&first, 0), (&second, 1)] {
            let backend = std::sync::Arc::clone(backend);
            let mut launch = launch(task, "true", 16);
            launch.node = NodeId(node);
            launches.push(tokio::spawn(async move { backend.launch(&launch).await }));
        }
    }
    let mut handles = Vec::new();
    for launch in launches {
        handles.push(launch.await.expect("joined").expect("launch"));
    }
    for pair in handles.chunks(2) {
        assert_eq!(
            pair[0], pair[1],
            "both answered with the run that holds the id"
        );
        assert_eq!(
            wait_for_end(&first, &pair[0]).await,
            RunStatus::Exited { code: 0 }
        );
    }
    let ledger = std::fs::read_to_string(first.ledger()).expect("ledger");
    for task in 1..=40 {
        let started = format!("started {task}-1 ");
        assert_eq!(ledger.matches(&started).count(), 1, "{ledger}");
    }
}

#[tokio::test]
async fn a_run_stopped_before_it_ended_is_never_started_again() {
    let backend = backend("stopped");
    let handle = backend
        .launch(&launch(8, "sleep 30", 16))
        .await
        .expect("launch");
    assert_eq!(
        backend.status(&handle).await.expect("status"),
        RunStatus::Running
    );
    backend.stop(&handle).await.expect("stop");
    // Launched again (a deposed leader finishing a launch it began before
    // its pause): answered with the stopped run, which stays stopped.
    let again = backend
        .launch(&launch(8, "sleep 30", 16))
        .await
        .expect("launch");
    assert_eq!(again, handle);
    assert_eq!(
        backend.status(&again).await.expect("status"),
        RunStatus::Gone
    );
    assert!(backend.running().await.expect("running").is_empty());
}

#[tokio::test]
async fn a_start_that_comes_after_the_run_was_given_up_runs_nothing() {
    // A deposed leader paused between its claim and the start wakes after
    // the new leader gave the run up: past the time a claimed run counts
    // as starting (31), or stopped at once (32).
    let backend = backend("late");
    for task in [31, 32] {
        let launch = launch(task, "true", 16);
        let record = Record {
            task,
            attempt: 1,
            node: 0,
            pid: 0,
            start_ticks: 0,
            argv: vec!["true".to_owned()],
        };
        assert_eq!(
            backend.files.claim(launch.run, &record).expect("claim"),
            None
        );
        let handle = LocalBackend::handle_of(&record);
        assert_eq!(
            backend.status(&handle).await.expect("status"),
            RunStatus::Starting
        );
        if task == 31 {
            let path = backend.config.dir.join(format!("runs/{task}-1.json"));
            std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|file| file.set_modified(std::time::SystemTime::now() - 2 * STARTING_FOR))
                .expect("age the record");
            assert_eq!(
                backend.status(&handle).await.expect("status"),
                RunStatus::NeverStarted
            );
        } else {
            backend.stop(&handle).await.expect("stop");
        }
        let env = identity::environment(&launch.task).expect("env");
        let late = backend
            .files
            .spawn(launch.run, &record.argv, &[], &backend.identity, &env)
            .expect("spawn")
            .wait()
            .expect("wait");
        assert_eq!(late.code(), Some(125), "task {task}");
        let ledger = std::fs::read_to_string(backend.ledger()).unwrap_or_default();
        assert!(!ledger.contains(&format!("started {task}-1 ")), "{ledger}");
    }
}

/// A script for `sh` outside the backend's private directory, readable by
/// the user commands run as.
fn script(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("lepton-script-{name}-{}.sh", std::process::id()));
    std::fs::write(&path, text).expect("script");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    format!("sh {}", path.display())
}

/// Whether process `pid` is gone (or a zombie, which has ended).
fn gone(pid: u32) -> bool {
    run::start_ticks(pid).is_none()
}

#[tokio::test]
async fn a_command_runs_unprivileged_with_only_its_own_environment() {
    let backend = backend("identity");
    let mut task = launch(11, &script("identity", "id -u\nid -G\nenv\n"), 64);
    task.task = task.task.with_config("env.GREETING", "hello");
    let handle = backend.launch(&task).await.expect("launch");
    assert_eq!(
        wait_for_end(&backend, &handle).await,
        RunStatus::Exited { code: 0 }
    );
    let (out, _) = backend.logs(handle.run);
    let out = std::fs::read_to_string(out).expect("log");
    // The backend's environment (cargo's variables here, a service's
    // LEPTON_TOKEN in production) and the wrapper's are not passed on.
    assert!(out.contains("GREETING=hello\n"), "{out}");
    assert!(
        out.contains("LEPTON_TASK=11\n") && out.contains("LEPTON_RUN=11-1\n"),
        "{out}"
    );
    for hidden in [
        "CARGO_",
        "LEPTON_LEDGER",
        "LEPTON_EXIT",
        "LEPTON_PID",
        "LEPTON_RECORD",
        "LEPTON_CGROUP",
    ] {
        assert!(!out.contains(hidden), "{hidden} leaked: {out}");
    }
    let mut lines = out.lines();
    let (uid, groups) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    if nix::unistd::geteuid().is_root() {
        assert_eq!(uid, "65534", "{}", backend.isolation());
        assert_eq!(groups, "65534", "no supplementary groups: {out}");
        assert!(backend.isolation().contains("nobody"));
    } else {
        assert_eq!(uid, nix::unistd::geteuid().as_raw().to_string());
        assert!(backend.isolation().contains("not running as root"));
    }
    // Its files are the backend's alone.
    let mode = |path: &Path| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path).expect("stat").permissions(),
        ) & 0o777
    };
    assert_eq!(mode(&backend.config.dir), 0o700);
    assert_eq!(mode(&backend.logs(handle.run).0), 0o600);
    assert_eq!(mode(backend.ledger()), 0o600);
}

#[tokio::test]
async fn a_command_cannot_leave_its_cgroup() {
    let backend = backend("escape");
    let Ok(cgroups) = &backend.cgroups else {
        panic!("no cgroups here: {:?}", backend.cgroups());
    };
    // Every hierarchy's root `cgroup.procs`: writing one's pid there leaves
    // the run's group and its limits.
    let roots: Vec<String> = match cgroups {
        Cgroups::V2 { root } => vec![root.parent().expect("root").join("cgroup.procs")],
        Cgroups::V1 { cpu, memory } => vec![
            cpu.parent().expect("cpu").join("cgroup.procs"),
            memory.parent().expect("memory").join("cgroup.procs"),
        ],
    }
    .iter()
    .map(|p| p.display().to_string())
    .collect();
    let text = roots
        .iter()
        .map(|root| format!("echo $$ > {root} && echo escaped\n"))
        .collect::<String>()
        + "cat /proc/self/cgroup\n";
    let handle = backend
        .launch(&launch(12, &script("escape", &text), 64))
        .await
        .expect("launch");
    wait_for_end(&backend, &handle).await;
    let (out, _) = backend.logs(handle.run);
    let out = std::fs::read_to_string(out).expect("log");
    let group = backend.group(handle.run);
    if nix::unistd::geteuid().is_root() {
        assert!(!out.contains("escaped"), "{out}");
        assert!(out.contains(&group), "{out}");
    } else {
        // Not root: no cgroup files are writable by anyone but root.
        assert!(backend.isolation().contains("not running as root"));
    }
}

#[tokio::test]
async fn a_run_s_leftovers_die_with_it_and_its_group_is_removed() {
    let backend = backend("leftovers");
    let Ok(cgroups) = &backend.cgroups else {
        panic!("no cgroups here: {:?}", backend.cgroups());
    };
    let pid_file = std::env::temp_dir().join(format!("lepton-leftover-{}", std::process::id()));
    let _ = std::fs::remove_file(&pid_file);
    // Ends at once, leaving a process in a session of its own.
    let text = format!(
        "setsid sleep 77 > /dev/null 2>&1 &\necho $! > {}\n",
        pid_file.display()
    );
    let handle = backend
        .launch(&launch(13, &script("leftovers", &text), 64))
        .await
        .expect("launch");
    assert_eq!(
        wait_for_end(&backend, &handle).await,
        RunStatus::Exited { code: 0 }
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(!gone(pid), "the leftover should still run before the stop");
    backend.stop(&handle).await.expect("stop");
    assert!(gone(pid), "process {pid} survived its run");
    assert_eq!(cgroups.memory_limit(&backend.group(handle.run)), None);

    // Cancelled while it runs: the same.
    let text = format!(
        "setsid sleep 78 > /dev/null 2>&1 &\necho $! > {}\nsleep 30\n",
        pid_file.display()
    );
    let handle = backend
        .launch(&launch(14, &script("cancelled", &text), 64))
        .await
        .expect("launch");
    let mut pid = None;
    for _ in 0..200 {
        pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .filter(|&p| {
                p != 0
                    && !gone(p)
                    && std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                        .is_ok_and(|c| c.contains("78"))
            });
        if pid.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pid = pid.expect("the second leftover started");
    backend.stop(&handle).await.expect("stop");
    assert!(gone(pid), "process {pid} survived its cancelled run");
    assert_eq!(cgroups.memory_limit(&backend.group(handle.run)), None);
}

#[tokio::test]
async fn an_out_of_memory_kill_is_named_with_the_limit() {
    let backend = backend("oom");
    assert!(
        backend.cgroups.is_ok(),
        "no cgroups here: {:?}",
        backend.cgroups()
    );
    // Holds 200 MB in a shell variable under a 64 MiB limit.
    let text = "x=$(head -c 200000000 /dev/zero | tr '\\0' a)\necho survived ${#x}\n";
    let handle = backend
        .launch(&launch(15, &script("oom", text), 64))
        .await
        .expect("launch");
    assert_eq!(
        wait_for_end(&backend, &handle).await,
        RunStatus::Failed {
            reason: "killed: out of memory (limit 64 MiB)".into()
        }
    );
}
