//! The listener and what every request passes before its route: one accept
//! loop for plain HTTP and HTTPS with the limits that keep a slow or greedy
//! client from holding the service (a connection cap, a deadline for each
//! request's headers and for its body), then the browser checks
//! ([`crate::browser`]), then the token.
//!
//! A client that opens connections and trickles bytes into them (slowloris)
//! holds each one at most `header_timeout_s`: hyper closes a connection
//! whose request head is not complete by then, an idle kept-alive one
//! included. A body must arrive within `body_timeout_s` (408 otherwise).
//! Beyond `max_connections` new connections wait in the listen backlog
//! until one closes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::{browser, Context, ServiceError};

/// How long a stopping service lets requests under way finish.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown`
/// resolves, behind the checks and limits `context` configures.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    context: &Context,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let config = &context.config;
    let gate = Gate {
        token: context.token.clone(),
        open_metrics: config.public_metrics,
        body_timeout: Duration::from_secs(config.body_timeout_s),
        max_body_bytes: config.max_body_bytes,
    };
    let router = router
        .layer(middleware::from_fn_with_state(gate.clone(), read_body))
        .layer(middleware::from_fn_with_state(gate, authenticate))
        .layer(middleware::from_fn_with_state(
            context.browser_guard(),
            browser::guard,
        ));
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(config.header_timeout_s));
    let header_timeout = Duration::from_secs(config.header_timeout_s);
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &permits) => accepted,
        };
        let Some((stream, peer, permit)) = accepted else {
            continue;
        };
        let (builder, tls, watcher) = (builder.clone(), tls.clone(), graceful.watcher());
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let served = match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
                // The handshake has the headers' deadline too.
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                warn!(%peer, %error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
            };
            if let Err(error) = served {
                debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("requests still under way after {DRAIN:?}: dropped");
    }
}

/// The next connection, once the cap allows one more; `None` when accepting
/// failed (logged).
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(
    tokio::net::TcpStream,
    std::net::SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    // Never closed: the loop owns the only handle that could.
    let permit = Arc::clone(permits).acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, permit)),
        Err(error) => {
            warn!(%error, "accept failed");
            // Out of file descriptors, say: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// What the two middlewares below need to know.
#[derive(Clone)]
struct Gate {
    token: Option<Arc<str>>,
    open_metrics: bool,
    body_timeout: Duration,
    max_body_bytes: usize,
}

impl Gate {
    /// The paths served without the token: liveness, who leads, the page
    /// (which holds no data) and, when configured, the metrics.
    fn is_open(&self, path: &str) -> bool {
        matches!(path, "/healthz" | "/v1/leader" | "/") || (self.open_metrics && path == "/metrics")
    }
}

/// Refuses a request without the configured bearer token (compared in
/// constant time), on every path but the open ones — an unknown path or
/// method included, so that routes cannot be enumerated without it.
async fn authenticate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    match &gate.token {
        Some(token) if !gate.is_open(request.uri().path()) => {
            match check_token(request.headers(), token) {
                Ok(()) => next.run(request).await,
                Err(refused) => refused.into_response(),
            }
        }
        _ => next.run(request).await,
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>`; the scheme is
/// matched without regard to case (RFC 7235).
fn check_token(headers: &HeaderMap, token: &str) -> Result<(), ServiceError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credentials)| credentials.trim());
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ServiceError::Unauthorized("wrong token".into())),
        None => Err(ServiceError::Unauthorized(
            "no bearer token: send `Authorization: Bearer <token>`".into(),
        )),
    }
}

/// Equal bytes, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Reads a request's body, within the deadline and the size limit, before
/// its route sees it: a client trickling a body is answered 408, one
/// sending too much 413.
async fn read_body(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, gate.max_body_bytes);
    let read =
        tokio::time::timeout(gate.body_timeout, http_body_util::BodyExt::collect(limited)).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return ServiceError::TooLarge(format!(
                "the body is over {} bytes (max_body_bytes)",
                gate.max_body_bytes
            ))
            .into_response()
        }
        Ok(Err(error)) => {
            return ServiceError::BadRequest {
                field: "body".into(),
                message: format!("could not be read: {error}"),
            }
            .into_response()
        }
        Err(_) => {
            return ServiceError::Timeout(format!(
                "the body did not arrive within {} s (body_timeout_s)",
                gate.body_timeout.as_secs()
            ))
            .into_response()
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn the_bearer_scheme_is_matched_without_regard_to_case() {
        for given in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER s3cret",
            "  Bearer   s3cret ",
        ] {
            assert!(check_token(&headers(given), "s3cret").is_ok(), "{given:?}");
        }
        for given in ["Bearer s3cre", "Basic s3cret", "Bearers3cret", "s3cret"] {
            assert!(check_token(&headers(given), "s3cret").is_err(), "{given:?}");
        }
        assert!(check_token(&HeaderMap::new(), "s3cret").is_err());
    }

    #[test]
    fn only_liveness_the_leader_and_the_page_are_open() {
        let gate = Gate {
            token: Some(Arc::from("t")),
            open_metrics: false,
            body_timeout: Duration::from_secs(1),
            max_body_bytes: 1,
        };
        for open in ["/healthz", "/v1/leader", "/"] {
            assert!(gate.is_open(open), "{open}");
        }
        for closed in ["/metrics", "/v1/tasks", "/v1/nope", "/healthz/x", "//"] {
            assert!(!gate.is_open(closed), "{closed}");
        }
        assert!(Gate {
            open_metrics: true,
            ..gate
        }
        .is_open("/metrics"));
    }
}
