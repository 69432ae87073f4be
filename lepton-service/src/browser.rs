//! What keeps a web page from driving the API. A page the user merely
//! visits can send requests to `127.0.0.1:7700` from its own origin: a
//! "simple" cross-origin request (a form, or `fetch` with `mode:
//! "no-cors"` and a `text/plain` body) is sent without asking the server
//! first, and DNS rebinding makes a page's own name point at loopback so
//! that even its reads are same-origin. Without a token nothing else stands
//! in the way, so every request passes three checks before any route:
//!
//! - **Host** (without a token only): the name the request was sent to
//!   must be `localhost` or a loopback address. A rebound page sends its own
//!   name (`Host: attacker.example`), which is refused. With a token the
//!   service may be reached under any name, and a page cannot send the
//!   token: it has no cookie to ride on.
//! - **Origin**, on every request that can change state (any method but
//!   `GET`, `HEAD` and `OPTIONS`): when a browser says where the request
//!   comes from, it must be this service's own origin. Browsers send
//!   `Origin` on every cross-origin write, `no-cors` ones included.
//! - **Content type**, on the same requests: a body must be declared
//!   `application/json`, a type no page can send cross-origin without the
//!   server's consent (a CORS preflight, which this service never grants).
//!
//! All three answer before authentication, so a refused request changes
//! nothing and learns nothing.

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ServiceError;

/// How strict the checks are for one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BrowserGuard {
    /// Whether requests must carry a token; without one, the Host check.
    pub(crate) token_required: bool,
}

/// The middleware: refuses what a web page could have sent, then hands the
/// request on.
pub(crate) async fn guard(
    State(guard): State<BrowserGuard>,
    request: Request,
    next: Next,
) -> Response {
    let body_empty =
        request.body().is_end_stream() || request.body().size_hint().exact() == Some(0);
    match guard.check(
        request.method(),
        request.headers(),
        authority(&request),
        body_empty,
    ) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// The name and port the request was sent to: `Host`, or on HTTP/2 the
/// URI's authority.
fn authority(request: &Request) -> Option<&str> {
    match request.headers().get(header::HOST) {
        Some(host) => host.to_str().ok(),
        None => request.uri().authority().map(|a| a.as_str()),
    }
}

impl BrowserGuard {
    /// Whether a request with this method, these headers, sent to `host`,
    /// with or without a body, may go on to the routes.
    fn check(
        self,
        method: &Method,
        headers: &HeaderMap,
        host: Option<&str>,
        body_empty: bool,
    ) -> Result<(), ServiceError> {
        if !self.token_required {
            match host {
                Some(host) if names_loopback(host) => {}
                Some(host) => {
                    return Err(ServiceError::Forbidden(format!(
                        "Host {host:?} is not this machine's loopback: without a token the \
                         service answers only requests sent to localhost or a loopback \
                         address (a page can rename itself to reach it otherwise)"
                    )))
                }
                None => {
                    return Err(ServiceError::Forbidden(
                        "no Host header: without a token the service answers only requests \
                         sent to localhost or a loopback address"
                            .into(),
                    ))
                }
            }
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            if !host.is_some_and(|host| same_origin(&origin, host)) {
                return Err(ServiceError::Forbidden(format!(
                    "{method} from origin {origin:?}: a page of another origin may not change \
                     anything here"
                )));
            }
        }
        match headers.get(header::CONTENT_TYPE) {
            Some(kind) if is_json(kind.as_bytes()) => Ok(()),
            Some(kind) => Err(ServiceError::UnsupportedMediaType(format!(
                "Content-Type {:?}: send `Content-Type: application/json`",
                String::from_utf8_lossy(kind.as_bytes())
            ))),
            None if body_empty => Ok(()),
            None => Err(ServiceError::UnsupportedMediaType(
                "a body without a Content-Type: send `Content-Type: application/json`".into(),
            )),
        }
    }
}

/// Whether `host` (a `Host` value: name or address, maybe a port) names
/// this machine's loopback: `localhost`, `127.0.0.0/8` or `[::1]`.
fn names_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:7700`: the address is between the brackets.
        Some(rest) => match rest.split_once(']') {
            Some((address, "")) => address,
            Some((address, port)) if port.strip_prefix(':').is_some_and(is_port) => address,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// `7700`, the port of a `Host` value.
fn is_port(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok()
}

/// Whether `origin` (`http://host:port`, as browsers send it) is the origin
/// of a page served by this service under `host`. Default ports are
/// implied: `http://localhost` is `localhost:80`'s origin.
fn same_origin(origin: &str, host: &str) -> bool {
    let (authority, default_port) = if let Some(rest) = origin.strip_prefix("http://") {
        (rest, ":80")
    } else if let Some(rest) = origin.strip_prefix("https://") {
        (rest, ":443")
    } else {
        // `null` (a sandboxed frame, a file, a redirect) or no scheme.
        return false;
    };
    let without_default = |text: &str| text.strip_suffix(default_port).unwrap_or(text).to_owned();
    without_default(authority).eq_ignore_ascii_case(&without_default(host))
}

/// Whether a `Content-Type` value is `application/json` (any parameters,
/// any case).
fn is_json(kind: &[u8]) -> bool {
    let kind = String::from_utf8_lossy(kind);
    let essence = kind.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const OPEN: BrowserGuard = BrowserGuard {
        token_required: false,
    };
    const LOCKED: BrowserGuard = BrowserGuard {
        token_required: true,
    };

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn loopback_names_pass_and_others_do_not() {
        for host in [
            "127.0.0.1:7700",
            "127.0.0.1",
            "127.8.9.10:1",
            "localhost:7700",
            "LocalHost",
            "localhost.:7700",
            "[::1]:7700",
            "[::1]",
        ] {
            assert!(names_loopback(host), "{host}");
        }
        for host in [
            "attacker.example:7700",
            "attacker.example",
            "localhost.attacker.example:7700",
            "127.0.0.1.nip.io:7700",
            "10.0.0.1:7700",
            "0.0.0.0:7700",
            "[::2]:7700",
            "[::1]x",
            "localhost:x",
            "localhost:",
            "",
        ] {
            assert!(!names_loopback(host), "{host}");
        }
    }

    #[test]
    fn origins_match_their_own_host_only() {
        assert!(same_origin("http://127.0.0.1:7700", "127.0.0.1:7700"));
        assert!(same_origin("http://LOCALHOST:7700", "localhost:7700"));
        assert!(same_origin("http://localhost", "localhost:80"));
        assert!(same_origin("https://localhost:443", "localhost"));
        assert!(!same_origin("http://127.0.0.1:8080", "127.0.0.1:7700"));
        assert!(!same_origin("http://localhost:7700", "127.0.0.1:7700"));
        assert!(!same_origin("null", "127.0.0.1:7700"));
        assert!(!same_origin("127.0.0.1:7700", "127.0.0.1:7700"));
    }

    #[test]
    fn a_cross_origin_simple_request_is_refused() {
        // What Chromium sends for fetch(..., {mode: "no-cors", method:
        // "POST", headers: {"Content-Type": "text/plain"}}) from another
        // port of this machine.
        let sent = headers(&[
            (header::ORIGIN, "http://127.0.0.1:8000"),
            (header::CONTENT_TYPE, "text/plain;charset=UTF-8"),
        ]);
        let refused = OPEN
            .check(&Method::POST, &sent, Some("127.0.0.1:7700"), false)
            .unwrap_err();
        assert!(matches!(refused, ServiceError::Forbidden(_)), "{refused}");
        assert!(refused.to_string().contains("http://127.0.0.1:8000"));
        // The same with a token configured: the origin alone refuses it.
        assert!(LOCKED
            .check(&Method::POST, &sent, Some("127.0.0.1:7700"), false)
            .is_err());
    }

    #[test]
    fn bodies_must_be_declared_json() {
        let host = Some("127.0.0.1:7700");
        for kind in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
        ] {
            let sent = headers(&[(header::CONTENT_TYPE, kind)]);
            let refused = OPEN.check(&Method::POST, &sent, host, false).unwrap_err();
            assert!(
                matches!(refused, ServiceError::UnsupportedMediaType(_)),
                "{kind}: {refused}"
            );
            assert!(refused.to_string().contains(kind), "{refused}");
        }
        // A body with no type at all (a Blob without one, say).
        let refused = OPEN
            .check(&Method::PUT, &HeaderMap::new(), host, false)
            .unwrap_err();
        assert!(matches!(refused, ServiceError::UnsupportedMediaType(_)));
        for kind in ["application/json", "Application/JSON; charset=utf-8"] {
            let sent = headers(&[(header::CONTENT_TYPE, kind)]);
            assert!(
                OPEN.check(&Method::POST, &sent, host, false).is_ok(),
                "{kind}"
            );
        }
        // No body, no type: `POST /v1/tasks/7/cancel` from curl.
        assert!(OPEN
            .check(&Method::POST, &HeaderMap::new(), host, true)
            .is_ok());
        // Reads carry no body worth checking.
        let form = headers(&[(header::CONTENT_TYPE, "text/plain")]);
        assert!(OPEN.check(&Method::GET, &form, host, false).is_ok());
    }

    #[test]
    fn without_a_token_only_loopback_names_are_answered() {
        let json = headers(&[(header::CONTENT_TYPE, "application/json")]);
        for method in [Method::GET, Method::POST] {
            let refused = OPEN
                .check(&method, &json, Some("attacker.example:7700"), false)
                .unwrap_err();
            assert!(matches!(refused, ServiceError::Forbidden(_)), "{refused}");
            assert!(refused.to_string().contains("attacker.example"));
            assert!(OPEN.check(&method, &json, None, false).is_err());
            // With a token, any name: the token is the check.
            assert!(LOCKED
                .check(&method, &json, Some("lepton.internal:7700"), false)
                .is_ok());
        }
        // A page of this service's own origin (the dashboard) may write.
        let own = headers(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::ORIGIN, "http://localhost:7700"),
        ]);
        assert!(OPEN
            .check(&Method::POST, &own, Some("localhost:7700"), false)
            .is_ok());
    }
}
