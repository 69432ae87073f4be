//! The one rule that hides secrets in what a backend shows.
//!
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

/// What a secret is replaced with.
pub(crate) const MASK: &str = "***";

/// `url` with its secrets replaced by `***`: user information, secret
/// query values, AWS access key ids (the rule is in the
/// [module docs](self)).
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
pub(crate) fn userinfo(url: &str) -> Option<&str> {
    let (start, end) = authority(url);
    url[start..end].rfind('@').map(|at| &url[start..start + at])
}

/// Where the authority of `url` starts and ends: after `scheme://` (or at
/// the start, without a scheme), up to the path, query or fragment.
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

#[cfg(test)]
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
}
