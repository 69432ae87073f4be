//! The connection to the daemon: where it listens, the lazily opened
//! bollard client, and how bollard's errors become [`BackendError`]s.
//!
//! Podman's transient `stopped` state is absorbed here too
//! ([`through_podman_stopped`]), since it makes whole answers unreadable,
//! not one field.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::{Docker, API_DEFAULT_VERSION};
use lepton_core::backend::BackendError;

use super::{DockerBackend, BACKEND};
use crate::shared::errors::{error_chain, invalid};
use crate::shared::redact::{redact, redact_url};

/// How often, and how far apart, an inspection that returns a state bollard
/// cannot read is repeated.
const UNKNOWN_STATE_RETRIES: u32 = 50;
const UNKNOWN_STATE_PAUSE: Duration = Duration::from_millis(100);

/// Longest container id or name accepted in a handle, in bytes.
const MAX_CONTAINER_ID_BYTES: usize = 128;

/// Where the daemon listens. Holds no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// A unix socket path.
    Unix(String),
    /// `host:port` for plain HTTP, without user info.
    Http(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{path}"),
            Endpoint::Http(authority) => write!(f, "http://{authority}"),
        }
    }
}

impl DockerBackend {
    /// The client, connected and version-negotiated on first use. A failed
    /// attempt is not cached: the next call tries again.
    pub(super) async fn client(&self) -> Result<&Docker, BackendError> {
        self.client
            .get_or_try_init(|| async {
                let secs = whole_seconds(self.timeout).max(1);
                let docker = match &self.endpoint {
                    Endpoint::Unix(path) => {
                        Docker::connect_with_unix(path, secs, API_DEFAULT_VERSION)
                    }
                    Endpoint::Http(authority) => Docker::connect_with_http(
                        &format!("http://{authority}"),
                        secs,
                        API_DEFAULT_VERSION,
                    ),
                }
                .map_err(|e| self.error("connect to", &self.endpoint.to_string(), e))?;
                docker.negotiate_version().await.map_err(|e| {
                    self.error(
                        "negotiate the API version with",
                        &self.endpoint.to_string(),
                        e,
                    )
                })
            })
            .await
    }

    /// Maps a bollard error for `action` on `subject` ("inspect",
    /// "container 1f2e…").
    pub(super) fn error(&self, action: &str, subject: &str, err: DockerError) -> BackendError {
        let operation = format!("{action} {subject}");
        match err {
            DockerError::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                404 => BackendError::NotFound {
                    backend: BACKEND.to_owned(),
                    what: subject.to_owned(),
                },
                408 | 504 => BackendError::Timeout {
                    backend: BACKEND.to_owned(),
                    operation,
                },
                502 | 503 => BackendError::Unreachable {
                    backend: BACKEND.to_owned(),
                    detail: format!(
                        "{}: HTTP {status_code}: {}",
                        self.endpoint,
                        redact(&message)
                    ),
                },
                _ => BackendError::Rejected {
                    backend: BACKEND.to_owned(),
                    operation,
                    detail: format!("HTTP {status_code}: {}", redact(&message)),
                },
            },
            DockerError::RequestTimeoutError => BackendError::Timeout {
                backend: BACKEND.to_owned(),
                operation,
            },
            DockerError::SocketNotFoundError(_) => BackendError::Unreachable {
                backend: BACKEND.to_owned(),
                detail: format!("{}: socket does not exist", self.endpoint),
            },
            // Matched one by one: bollard's wrappers are `transparent`, so
            // their source chain skips the wrapped error itself.
            DockerError::IOError { err } => self.transport_error(operation, &err),
            DockerError::HyperLegacyError { err } => self.transport_error(operation, &err),
            DockerError::HyperResponseError { err } => self.transport_error(operation, &err),
            other => BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation,
                detail: error_chain(&other),
            },
        }
    }

    /// Every container, stopped ones included, whose labels match all of
    /// `labels` (`key` or `key=value`, as the daemon's filter takes them);
    /// `action` and `subject` name the listing in errors.
    pub(super) async fn list_labelled(
        &self,
        docker: &Docker,
        labels: Vec<&str>,
        action: &str,
        subject: &str,
    ) -> Result<Vec<ContainerSummary>, BackendError> {
        let filters = HashMap::from([("label", labels)]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        through_podman_stopped(|| docker.list_containers(Some(options.clone())))
            .await
            .map_err(|e| self.error(action, subject, e))
    }

    /// A failure below HTTP: a timeout somewhere in the chain is a
    /// [`BackendError::Timeout`], anything else [`BackendError::Unreachable`].
    fn transport_error(
        &self,
        operation: String,
        err: &(dyn std::error::Error + 'static),
    ) -> BackendError {
        if chain_has_io_timeout(err) {
            BackendError::Timeout {
                backend: BACKEND.to_owned(),
                operation,
            }
        } else {
            BackendError::Unreachable {
                backend: BACKEND.to_owned(),
                detail: format!("{}: {}", self.endpoint, error_chain(err)),
            }
        }
    }
}

/// A container id or name as it goes into an API path: `[A-Za-z0-9_.-]`,
/// not starting with `.` or `-`.
pub(super) fn validate_container_id(id: &str) -> Result<(), BackendError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CONTAINER_ID_BYTES
        && !id.starts_with(['.', '-'])
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            BACKEND,
            "container id",
            id,
            "is not a container id or name (letters, digits, _ . -)",
        ))
    }
}

/// `host:port` from `tcp://`, `http://` or bare URLs, user info dropped.
pub(super) fn parse_http_url(url: &str) -> Result<String, BackendError> {
    let shown = redact_url(url);
    let rest = match url.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("tcp") || scheme.eq_ignore_ascii_case("http") =>
        {
            rest
        }
        Some(_) => {
            return Err(invalid(
                BACKEND,
                "Docker URL",
                shown,
                "must be tcp://, http:// or host:port (TLS is not built in)",
            ))
        }
        None => url,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let authority = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| invalid(BACKEND, "Docker URL", shown.clone(), "has no port"))?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
        && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
    if !host_ok {
        return Err(invalid(
            BACKEND,
            "Docker URL",
            shown,
            "has no valid host (or has a path)",
        ));
    }
    if port.parse::<u16>().is_err() {
        return Err(invalid(BACKEND, "Docker URL", shown, "has no valid port"));
    }
    Ok(authority.to_owned())
}

/// `duration` in whole seconds, rounded up (the Docker API counts in
/// seconds).
pub(super) fn whole_seconds(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// Sends `request` again while its answer is unreadable because a container
/// in it is in Podman's exit window (a process ended, cleanup not run yet),
/// for up to 5 s: the window closes within about half a second, longer on a
/// loaded machine. See [`in_podman_exit_window`].
pub(super) async fn through_podman_stopped<T, F, Fut>(mut request: F) -> Result<T, DockerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DockerError>>,
{
    let mut reads = 0;
    loop {
        match request().await {
            Err(e) if in_podman_exit_window(&e) && reads < UNKNOWN_STATE_RETRIES => {
                reads += 1;
                tokio::time::sleep(UNKNOWN_STATE_PAUSE).await;
            }
            result => return result,
        }
    }
}

/// Whether `err` is one of the two answers Podman gives for a container whose
/// process has just ended: its `stopped` state, outside the Docker API, which
/// bollard refuses to read (the whole answer, a list included); or a 500 from
/// an inspection that read the gone process's cgroup (`read
/// /proc/N/cgroup: no such process`).
fn in_podman_exit_window(err: &DockerError) -> bool {
    match err {
        DockerError::JsonDataError { message, .. } => message.contains("unknown variant"),
        DockerError::DockerResponseServerError {
            status_code: 500,
            message,
        } => message.contains("/proc/") && message.contains("no such process"),
        _ => false,
    }
}

/// The HTTP status of a refusal from the daemon.
pub(super) fn status_code(err: &DockerError) -> Option<u16> {
    match err {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Whether a timed-out I/O error is somewhere in `err`'s chain.
fn chain_has_io_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use lepton_core::backend::Backend;

    use super::*;
    use crate::docker::testing::backend;
    use crate::shared::testing::{assert_invalid, runtime};

    #[test]
    fn only_podmans_exit_window_answers_are_read_again() {
        let server = |status_code, message: &str| DockerError::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        };
        let gone = "read /proc/13400/cgroup: no such process";
        assert!(in_podman_exit_window(&server(500, gone)));
        assert!(in_podman_exit_window(&DockerError::JsonDataError {
            message: "unknown variant `stopped`, expected one of `created`".to_owned(),
            column: 12,
        }));
        assert!(!in_podman_exit_window(&server(404, gone)));
        assert!(!in_podman_exit_window(&server(500, "no such container")));
        assert!(!in_podman_exit_window(&server(500, "disk full")));
        assert!(!in_podman_exit_window(&DockerError::JsonDataError {
            message: "missing field `Id`".to_owned(),
            column: 3,
        }));
    }

    #[test]
    fn container_ids_are_checked_before_reaching_a_path() {
        assert!(validate_container_id("2cd0bf619b65cf39").is_ok());
        assert!(validate_container_id("lepton-t7-2").is_ok());
        for bad in ["", "..", "../images/json", "a/b", "a?b", "-x", "a b"] {
            assert_invalid(validate_container_id(bad), "container id");
        }
    }

    #[test]
    fn http_urls_lose_their_credentials() {
        assert_eq!(
            parse_http_url("tcp://10.0.0.5:2375").expect("ok"),
            "10.0.0.5:2375"
        );
        assert_eq!(
            parse_http_url("http://docker.local:2375/").expect("ok"),
            "docker.local:2375"
        );
        assert_eq!(
            parse_http_url("localhost:2375").expect("ok"),
            "localhost:2375"
        );
        assert_eq!(
            parse_http_url("tcp://[::1]:2375").expect("ok"),
            "[::1]:2375"
        );
        assert_eq!(
            parse_http_url("http://admin:s3cret@docker.local:2375").expect("ok"),
            "docker.local:2375"
        );
        let backend =
            DockerBackend::connect_http("http://admin:s3cret@docker.local:2375").expect("ok");
        assert!(!format!("{backend:?}").contains("s3cret"));
        assert_eq!(backend.endpoint(), "http://docker.local:2375");

        for bad in [
            "https://admin:s3cret@docker.local:2376",
            "http://admin:s3cret@docker.local",
            "http://admin:s3cret@docker.local:2375/v1.41",
            "http://admin:s3cret@:2375",
            "ssh://admin:s3cret@host:22",
        ] {
            let err = parse_http_url(bad).expect_err(bad);
            let text = err.to_string();
            assert!(!text.contains("s3cret"), "{text}");
            assert!(matches!(err, BackendError::Invalid { .. }), "{text}");
        }
    }

    #[test]
    fn daemon_errors_map_to_backend_errors() {
        let backend = backend();
        let server = |status_code: u16| DockerError::DockerResponseServerError {
            status_code,
            message: "said so".to_owned(),
        };
        let map = |err| backend.error("inspect", "container abc", err);
        assert!(
            matches!(map(server(404)), BackendError::NotFound { what, .. } if what == "container abc")
        );
        for code in [400, 409, 500] {
            assert!(
                matches!(map(server(code)), BackendError::Rejected { .. }),
                "{code}"
            );
        }
        for code in [502, 503] {
            assert!(
                matches!(map(server(code)), BackendError::Unreachable { .. }),
                "{code}"
            );
        }
        for code in [408, 504] {
            assert!(
                matches!(map(server(code)), BackendError::Timeout { .. }),
                "{code}"
            );
        }
        assert!(matches!(
            map(DockerError::RequestTimeoutError),
            BackendError::Timeout { .. }
        ));
        let io = |kind| DockerError::IOError {
            err: std::io::Error::new(kind, "boom"),
        };
        assert!(matches!(
            map(io(std::io::ErrorKind::ConnectionRefused)),
            BackendError::Unreachable { .. }
        ));
        assert!(matches!(
            map(io(std::io::ErrorKind::TimedOut)),
            BackendError::Timeout { .. }
        ));
        assert!(matches!(
            map(DockerError::APIVersionParseError {}),
            BackendError::Rejected { .. }
        ));
    }

    #[test]
    fn a_silent_server_times_out() {
        // Accepts connections and never answers.
        let dir = std::env::temp_dir().join(format!("lepton-silent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("docker.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                held.push(stream);
            }
        });
        let rt = runtime();
        let backend = DockerBackend::connect_unix(&path)
            .expect("path")
            .with_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = rt.block_on(backend.inventory()).expect_err("silent");
        assert!(matches!(err, BackendError::Timeout { .. }), "{err}");
        assert!(err.is_retryable());
        assert!(started.elapsed() < Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
