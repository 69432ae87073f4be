//! A service started in this process on a free loopback port, and a small
//! client for it.

// Each test file uses part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use lepton_service::ServiceConfig;

/// A running service; stopped when dropped.
pub(crate) struct TestService {
    pub(crate) address: SocketAddr,
    pub(crate) dir: PathBuf,
    service: Option<lepton_service::RunningService>,
}

impl TestService {
    /// Starts a service with `configure` applied to a config on a fresh
    /// data directory, listening on a free loopback port.
    pub(crate) fn start(name: &str, configure: impl FnOnce(&mut ServiceConfig)) -> TestService {
        let dir =
            std::env::temp_dir().join(format!("lepton-service-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self::start_in(dir, configure)
    }

    /// Starts a service on `dir`, keeping what an earlier one left there.
    pub(crate) fn start_in(
        dir: PathBuf,
        configure: impl FnOnce(&mut ServiceConfig),
    ) -> TestService {
        let mut config = ServiceConfig {
            listen: "127.0.0.1:0".parse().expect("an address"),
            data_dir: dir.clone(),
            tick_ms: 20,
            ..ServiceConfig::default()
        };
        configure(&mut config);
        let service = lepton_service::start(config, 2).expect("the service started");
        TestService {
            address: service.address(),
            dir,
            service: Some(service),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Sends a request with `token` (if any); the status and the body.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let mut request = ureq::request(method, &self.url(path));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let response = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(body),
            None => request.call(),
        };
        match response {
            Ok(response) => (
                response.status(),
                response.into_string().unwrap_or_default(),
            ),
            Err(ureq::Error::Status(code, response)) => {
                (code, response.into_string().unwrap_or_default())
            }
            Err(error) => panic!("{method} {path}: {error}"),
        }
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        if let Some(service) = self.service.take() {
            service.stop().expect("the service stopped cleanly");
        }
    }
}

/// Polls `probe` every 50 ms until it holds, for at most 30 s.
pub(crate) fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !probe() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
