//! `lepton serve` as a child process on a free loopback port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A service's files, address and process.
pub(crate) struct Service {
    pub(crate) dir: PathBuf,
    config: PathBuf,
    pub(crate) address: String,
    child: Option<Child>,
    pub(crate) starts: usize,
}

impl Service {
    /// A service's files and a free port; `extra` is added to its
    /// config file.
    pub(crate) fn new(name: &str, extra: &str) -> Service {
        let dir = std::env::temp_dir().join(format!("lepton-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("lepton.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\ntick_ms = 50\n{extra}",
                dir.join("data").display()
            ),
        )
        .unwrap();
        Service {
            dir,
            config,
            address: format!("http://127.0.0.1:{port}"),
            child: None,
            starts: 0,
        }
    }

    /// Starts `lepton serve` and waits until it answers.
    pub(crate) fn start(&mut self) {
        self.starts += 1;
        let log =
            std::fs::File::create(self.dir.join(format!("serve-{}.log", self.starts))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lepton"))
            .args(["serve", "--config", self.config.to_str().unwrap()])
            .env_remove("LEPTON_TOKEN")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while ureq::get(&format!("{}/healthz", self.address))
            .call()
            .is_err()
        {
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

    /// The local backend's ledger.
    pub(crate) fn ledger(&self) -> String {
        std::fs::read_to_string(self.dir.join("data/local/ledger.log")).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}
