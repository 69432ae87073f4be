//! What the backends share: the one redaction rule, the error helpers, and
//! the node labels every backend puts on its nodes.
//!
//! # Redaction
//! A backend shows URLs and the messages of its SDK in errors and `Debug`
//! output, and either may carry a secret. One rule decides what is hidden,
//! whichever backend shows the text, and each secret becomes `***`:
//!
//! - the user information of a URL (`user:password@` before the host;
//!   `scheme://***@host` keeps the `@` so a reader sees there was one);
//! - the value of a query parameter whose name says it is a secret
//!   (`password`, `secret`, `token`, `signature`, `credential`, `key`, `sig`,
//!   `auth`, … see [`is_secret_parameter`]; so AWS presigned URLs lose
//!   `X-Amz-Signature`, `X-Amz-Credential` and `X-Amz-Security-Token`);
//! - AWS access key ids (`AKIA…`, `ASIA…`: 20 upper-case letters and
//!   digits), anywhere in the text.
//!
//! [`redact_url`] applies it to a value known to be a URL (without a
//! scheme, everything up to the path is the authority: `user:pw@host:2375`);
//! [`redact`] to free text, where only words with `://` are URLs. Both are
//! idempotent, so a text may pass through them twice.
//!
//! Secrets that look like nothing in particular (an AWS secret access key on
//! its own) cannot be recognised: the backends keep them out of their texts
//! in the first place (credentials are never formatted).

use std::sync::{Mutex, MutexGuard, PoisonError};

use lepton_core::{BackendError, Launch, NodeId, NodeKind, NodeSpec, Resources};

/// Node label naming the backend that offers the node (`docker`, `libvirt`,
/// `aws`).
pub const NODE_LABEL_BACKEND: &str = "lepton.backend";
/// Node label holding the operating system of the node's host, when the
/// backend reports it (`linux`).
pub const NODE_LABEL_OS: &str = "lepton.os";
/// Node label holding the processor architecture, when the backend reports
/// it (`x86_64`, `arm64`).
pub const NODE_LABEL_ARCH: &str = "lepton.arch";

/// What a secret is replaced with.
#[cfg(any(feature = "docker", feature = "libvirt", feature = "aws"))]
pub(crate) const MASK: &str = "***";

/// A node offered by `backend`: of `kind`, labelled
/// [`NODE_LABEL_BACKEND`]`=<backend>`.
pub(crate) fn backend_node(
    backend: &str,
    id: NodeId,
    capacity: Resources,
    kind: NodeKind,
) -> NodeSpec {
    NodeSpec::new(id, capacity)
        .with_kind(kind)
        .with_label(NODE_LABEL_BACKEND, backend)
}

/// `node` with the label `key=value` when the backend reported a value and
/// the node has no `key` label yet (one its owner set wins); none, or an
/// empty one, adds nothing.
#[cfg(any(feature = "docker", feature = "libvirt", feature = "aws"))]
pub(crate) fn with_reported_label(
    mut node: NodeSpec,
    key: &str,
    value: Option<String>,
) -> NodeSpec {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        node.labels.entry(key.to_owned()).or_insert(value);
    }
    node
}

/// A value from the caller that `backend` refuses before sending anything.
pub(crate) fn invalid(
    backend: &str,
    what: &'static str,
    value: impl Into<String>,
    why: &'static str,
) -> BackendError {
    BackendError::Invalid {
        backend: backend.to_owned(),
        what,
        value: value.into(),
        why,
    }
}

/// The error and its sources' messages, joined by `: `, empty and repeated
/// messages skipped, [redacted](redact). `Debug` forms are left out: they
/// are noisy and may show more of a request than a log should. The SDKs'
/// wrappers often say only "dispatch failure" and keep the cause in the
/// chain.
#[cfg(any(feature = "docker", feature = "aws"))]
#[cfg(any(feature = "docker", feature = "libvirt", feature = "aws"))]
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !message.is_empty() && !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    redact(&text)
}

/// What a task runs: the `image` in its config, or else the backend's
/// default; with neither, the task is refused.
#[cfg(any(feature = "docker", feature = "aws"))]
pub(crate) fn task_image<'a>(
    backend: &str,
    task: &'a lepton_core::TaskSpec,
    default: Option<&'a String>,
) -> Result<&'a String, BackendError> {
    task.config.get("image").or(default).ok_or_else(|| {
        invalid(
            backend,
            "image",
            "",
            "the task's config has no `image` and the backend no default image",
        )
    })
}

/// A task's `command` config as an argument vector: whitespace-separated
/// words, none holding a control character, never parsed by a shell. An
/// empty command is `None` (the image's own, for a container).
#[cfg(any(feature = "docker", feature = "local"))]
pub(crate) fn parse_command(
    backend: &str,
    command: &str,
) -> Result<Option<Vec<String>>, BackendError> {
    if command
        .chars()
        .any(|c| c.is_control() && !c.is_whitespace())
    {
        return Err(invalid(
            backend,
            "command",
            command,
            "contains a control character",
        ));
    }
    let argv: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    Ok((!argv.is_empty()).then_some(argv))
}

/// Refuses a launch that asks for GPUs, which `backend` does not offer
/// (`devices` names what it would have had to attach: "GPU devices").
pub(crate) fn refuse_gpus(
    backend: &str,
    launch: &Launch,
    devices: &'static str,
) -> Result<(), BackendError> {
    if launch.gpus.is_empty() {
        Ok(())
    } else {
        Err(BackendError::Unsupported {
            backend: backend.to_owned(),
            operation: devices,
        })
    }
}

/// FNV-1a, 64 bits: a stable hash of `bytes` for names and ids derived
/// from text (the same on every machine and run, unlike std's hasher).
#[cfg(any(feature = "local", feature = "aws"))]
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Locks `mutex`, also when a holder panicked: what the backends keep
/// behind locks (connections, readings, sets of ids) stays valid then.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `url` with its secrets replaced by `***`: user information, secret
/// query values, AWS access key ids (the rule is in the
/// [module docs](self)).
#[cfg(any(feature = "docker", feature = "libvirt", feature = "aws"))]
pub(crate) fn redact_url(url: &str) -> String {
    let (start, end) = authority(url);
    let mut shown = String::with_capacity(url.len());
    shown.push_str(&url[..start]);
    match userinfo(url) {
        Some(user) => {
            shown.push_str(MASK);
            shown.push_str(&url[start + user.len()..end]);
        }
        None => shown.push_str(&url[start..end]),
    }
    let tail = &url[end..];
    let (path, query) = tail.split_at(tail.find('?').unwrap_or(tail.len()));
    shown.push_str(path);
    if let Some(query) = query.strip_prefix('?') {
        let (parameters, fragment) = query.split_at(query.find('#').unwrap_or(query.len()));
        shown.push('?');
        for (i, parameter) in parameters.split('&').enumerate() {
            if i > 0 {
                shown.push('&');
            }
            match parameter.split_once('=') {
                Some((name, value)) if is_secret_parameter(name) => {
                    // Quotes and angle brackets close a URL quoted in a
                    // message: they are kept.
                    let end = value
                        .find(['\'', '"', '<', '>', '`'])
                        .unwrap_or(value.len());
                    shown.push_str(name);
                    shown.push('=');
                    shown.push_str(MASK);
                    shown.push_str(&value[end..]);
                }
                _ => shown.push_str(parameter),
            }
        }
        shown.push_str(fragment);
    }
    mask_aws_key_ids(&shown)
}

/// Free text (an SDK's or a server's message) with the URLs in it
/// [redacted](redact_url) and AWS access key ids masked.
#[cfg(any(feature = "docker", feature = "libvirt", feature = "aws"))]
pub(crate) fn redact(text: &str) -> String {
    let words: String = text
        .split_inclusive(char::is_whitespace)
        .map(|piece| {
            let word = piece.trim_end_matches(char::is_whitespace);
            if word.contains("://") {
                redact_url(word) + &piece[word.len()..]
            } else {
                piece.to_owned()
            }
        })
        .collect();
    mask_aws_key_ids(&words)
}

/// The user information of `url` (`user:password` in
/// `scheme://user:password@host/…`), if it has any.
#[cfg(any(feature = "docker", feature = "libvirt", feature = "aws"))]
pub(crate) fn userinfo(url: &str) -> Option<&str> {
    let (start, end) = authority(url);
    url[start..end].rfind('@').map(|at| &url[start..start + at])
}

/// Where the authority of `url` starts and ends: after `scheme://` (or at
/// the start, without a scheme), up to the path, query or fragment.
#[cfg(any(feature = "docker", feature = "libvirt", feature = "aws"))]
fn authority(url: &str) -> (usize, usize) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    (start, end)
}

/// Whether a query parameter called `name` holds a secret: its letters and
/// digits, lower-cased, contain a word that names one (`X-Amz-Signature`,
/// `access_token`, `db-password`), or are one of the short names used for
/// one (`key`, `sig`, `pwd`). `keyfile` and `sshauth`, which name a path
/// and a method, do not.
#[cfg(any(feature = "docker", feature = "libvirt", feature = "aws"))]
fn is_secret_parameter(name: &str) -> bool {
    const CONTAINED: [&str; 9] = [
        "password",
        "passwd",
        "secret",
        "token",
        "signature",
        "credential",
        "apikey",
        "accesskey",
        "privatekey",
    ];
    const WHOLE: [&str; 6] = ["key", "sig", "pwd", "pass", "auth", "authorization"];
    let plain: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    CONTAINED.iter().any(|word| plain.contains(word)) || WHOLE.contains(&plain.as_str())
}

/// `text` with every AWS access key id (a word of 20 upper-case letters and
/// digits starting `AKIA` or `ASIA`) replaced by `***`.
#[cfg(any(feature = "docker", feature = "libvirt", feature = "aws"))]
fn mask_aws_key_ids(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut masked = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        // An ASCII byte on each side: both ends are character boundaries.
        let word_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let word = &text[word_start..i];
        let is_key_id = word.len() == 20
            && (word.starts_with("AKIA") || word.starts_with("ASIA"))
            && word
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if is_key_id {
            masked.push_str(&text[copied..word_start]);
            masked.push_str(MASK);
            copied = i;
        }
    }
    masked.push_str(&text[copied..]);
    masked
}

/// Helpers for the backends' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use lepton_core::BackendError;

    /// Fails unless `result` is [`BackendError::Invalid`] about `what`, which
    /// is never worth retrying.
    pub(crate) fn assert_invalid<T: std::fmt::Debug>(result: Result<T, BackendError>, what: &str) {
        match &result {
            Err(error @ BackendError::Invalid { what: actual, .. }) => {
                assert_eq!(*actual, what);
                assert!(!error.is_retryable(), "{error:?}");
            }
            other => panic!("expected Invalid {what}, got {other:?}"),
        }
    }

    /// A runtime for a test that drives a backend's futures.
    #[cfg(any(feature = "docker", feature = "aws"))]
    pub(crate) fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }
}

#[cfg(all(test, any(feature = "docker", feature = "libvirt", feature = "aws")))]
mod tests {
    use super::*;

    #[test]
    fn user_information_is_masked_and_the_rest_kept() {
        for (url, shown) in [
            (
                "qemu+ssh://root:hunter2@host:22/system?keyfile=/k",
                "qemu+ssh://***@host:22/system?keyfile=/k",
            ),
            (
                "http://admin:s3cret@docker.local:2375",
                "http://***@docker.local:2375",
            ),
            // An `@` in the password: the last one ends the user information.
            ("tcp://a:b@c@host:1/x@y", "tcp://***@host:1/x@y"),
            // Without a scheme, up to the path is the authority.
            ("admin:s3cret@docker.local:2375", "***@docker.local:2375"),
            ("qemu:///system?socket=/a@b", "qemu:///system?socket=/a@b"),
            ("https://h?x=1#frag@x", "https://h?x=1#frag@x"),
            ("test:///default", "test:///default"),
            ("not a uri", "not a uri"),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        assert_eq!(userinfo("qemu+tcp://alice@h/system"), Some("alice"));
        assert_eq!(userinfo("qemu+tcp://h/system?u=a@b"), None);
    }

    #[test]
    fn secret_query_values_are_masked() {
        assert_eq!(
            redact_url(
                "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                 &X-Amz-Credential=abc%2F2026&X-Amz-Security-Token=tok\
                 &X-Amz-Signature=f00d&X-Amz-Expires=60#top"
            ),
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=***&X-Amz-Security-Token=***\
             &X-Amz-Signature=***&X-Amz-Expires=60#top"
        );
        assert_eq!(
            redact_url("http://h/p?access_token=a&key=b&sig=c&db-password=d&flag&name=e"),
            "http://h/p?access_token=***&key=***&sig=***&db-password=***&flag&name=e"
        );
        for kept in ["keyfile", "sshauth", "socket", "no_verify", "pkipath"] {
            assert!(!is_secret_parameter(kept), "{kept}");
        }
    }

    #[test]
    fn aws_key_ids_are_masked_anywhere() {
        assert_eq!(
            redact("Credential=AKIAIOSFODNN7EXAMPLE/20261127/us-east-1/ec2/aws4_request"),
            "Credential=***/20261127/us-east-1/ec2/aws4_request"
        );
        assert_eq!(redact("key ASIAIOSFODNN7EXAMPL3."), "key ***.");
        // Only a whole word of the right length and alphabet.
        for kept in [
            "AKIAIOSFODNN7EXAMPLEX",
            "xAKIAIOSFODNN7EXAMPLE",
            "AKIAiosfodnn7example",
            "AKIA",
        ] {
            assert_eq!(redact(kept), kept);
        }
        assert_eq!(redact_url("http://AKIAIOSFODNN7EXAMPLE@h"), "http://***@h");
    }

    #[test]
    fn free_text_has_its_urls_redacted_and_its_spacing_kept() {
        assert_eq!(
            redact("cannot reach qemu+tcp://bob:s3cret@nowhere/system\tas bob, ünïcode\n"),
            "cannot reach qemu+tcp://***@nowhere/system\tas bob, ünïcode\n"
        );
        assert_eq!(
            redact("GET 'https://h/x?token=abc' failed"),
            "GET 'https://h/x?token=***' failed"
        );
        // Without `://` a word is not a URL: an image digest is kept.
        assert_eq!(redact("busybox@sha256:0123"), "busybox@sha256:0123");
    }

    #[test]
    fn redaction_is_idempotent() {
        for text in [
            "http://a:b@h/p?token=t&x=1 and AKIAIOSFODNN7EXAMPLE",
            "qemu+ssh://root@host/system",
            "plain",
        ] {
            let once = redact(text);
            assert_eq!(redact(&once), once);
            assert_eq!(redact_url(&redact_url(text)), redact_url(text));
        }
    }

    #[cfg(any(feature = "docker", feature = "aws"))]
    #[test]
    fn error_chains_join_messages_without_debug_forms() {
        #[derive(Debug)]
        struct Dispatch(std::io::Error);
        impl std::fmt::Display for Dispatch {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Dispatch {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused to http://u:p@h",
        );
        assert_eq!(
            error_chain(&Dispatch(refused)),
            "dispatch failure: Connection refused to http://***@h"
        );
        let empty = std::io::Error::other("");
        assert_eq!(error_chain(&Dispatch(empty)), "dispatch failure");
    }

    #[test]
    fn nodes_carry_the_backend_and_only_reported_labels() {
        let node = backend_node("docker", NodeId(1), Resources::new(1, 1), NodeKind::Vm);
        assert_eq!(node.labels[NODE_LABEL_BACKEND], "docker");
        assert_eq!(node.kind, NodeKind::Vm);
        let node = with_reported_label(node, NODE_LABEL_OS, Some(String::new()));
        let node = with_reported_label(node, NODE_LABEL_ARCH, None);
        let node = with_reported_label(node, "x", Some("y".to_owned()));
        assert_eq!(node.labels.len(), 2);
        assert_eq!(node.labels["x"], "y");
        // A label already set wins over a reported one.
        let node = with_reported_label(node, "x", Some("z".to_owned()));
        assert_eq!(node.labels["x"], "y");
    }
}
