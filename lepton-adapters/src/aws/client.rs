//! The EC2 client: loading the SDK configuration on first use, the
//! endpoint and region it is pointed at, the one paged `DescribeInstances`
//! every look-up goes through, and how the SDK's errors become
//! [`BackendError`]s.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, Instance};
use aws_sdk_ec2::Client;
use lepton_core::backend::BackendError;

use super::{AwsBackend, BACKEND, TAG_CLUSTER};
use crate::shared::errors::{error_chain, invalid};
use crate::shared::redact::{redact, redact_url};

/// How long one call may take, retries included, unless
/// [`with_timeout`](AwsBackend::with_timeout) says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take (at most the call's timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// States of an instance that still exists for Lepton: something to adopt,
/// count against the limit, or clean up.
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

impl AwsBackend {
    /// The EC2 client, for what this backend does not wrap (an operator's
    /// `StopInstances`, tests). The first call loads the SDK configuration
    /// (credentials are resolved later, by the first request).
    pub async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(self.region.clone()))
                    .timeout_config(timeout_config(self.timeout.unwrap_or(DEFAULT_TIMEOUT)));
                if let Some(url) = &self.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                Client::new(&loader.load().await)
            })
            .await
    }

    /// Every live instance matching `filters` (the cluster filter is added).
    pub(super) async fn describe(
        &self,
        filters: Vec<Filter>,
        what: &str,
    ) -> Result<Vec<Instance>, BackendError> {
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut call = self
                .client()
                .await
                .describe_instances()
                .filters(filter(
                    &format!("tag:{TAG_CLUSTER}"),
                    [self.cluster.as_str()],
                ))
                .filters(filter("instance-state-name", LIVE_STATES));
            for f in &filters {
                call = call.filters(f.clone());
            }
            if let Some(token) = &next {
                call = call.next_token(token);
            }
            let output = call
                .send()
                .await
                .map_err(|e| self.sdk_error("DescribeInstances of", what, e))?;
            found.extend(
                output
                    .reservations()
                    .iter()
                    .flat_map(|r| r.instances().iter().cloned()),
            );
            next = output
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next.is_none() {
                return Ok(found);
            }
        }
    }

    /// Maps an SDK error for `action` on `subject` ("DescribeInstances of",
    /// "t-7#2").
    pub(super) fn sdk_error<E>(&self, action: &str, subject: &str, err: SdkError<E>) -> BackendError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let failure = match &err {
            SdkError::ConstructionFailure(_) => Failure::Construction(error_chain(&err)),
            SdkError::TimeoutError(_) => Failure::Timeout,
            SdkError::DispatchFailure(d) if d.is_timeout() => Failure::Timeout,
            SdkError::DispatchFailure(_) => Failure::Unanswered(error_chain(&err)),
            SdkError::ResponseError(_) => Failure::Unreadable(error_chain(&err)),
            SdkError::ServiceError(s) => Failure::Service {
                status: s.raw().status().as_u16(),
                code: err.code().unwrap_or_default().to_owned(),
                message: redact(err.message().unwrap_or_default()),
            },
            _ => Failure::Construction(error_chain(&err)),
        };
        failure.into_error(&format!("{action} {subject}"), &self.endpoint)
    }
}

/// Why an SDK call failed, reduced to what the mapping needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The request could not be built or signed (no credentials…).
    Construction(String),
    /// No answer in time.
    Timeout,
    /// The request got no answer (refused, reset, DNS, TLS).
    Unanswered(String),
    /// An answer came that is not EC2's (a proxy's page, a cut body).
    Unreadable(String),
    /// EC2 refused.
    Service {
        status: u16,
        code: String,
        message: String,
    },
}

/// EC2 error codes that mean "later": the SDK has retried them already.
const THROTTLING_CODES: [&str; 4] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
];
/// EC2 error codes that are answers, not outages, even with HTTP 5xx: the
/// scheduler should try another pool rather than this one again.
const CAPACITY_CODES: [&str; 3] = [
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
];

impl Failure {
    fn into_error(self, operation: &str, endpoint: &str) -> BackendError {
        let backend = BACKEND.to_owned();
        match self {
            Failure::Timeout => BackendError::Timeout {
                backend,
                operation: operation.to_owned(),
            },
            Failure::Unanswered(detail) | Failure::Unreadable(detail) => {
                BackendError::Unreachable {
                    backend,
                    detail: format!("{endpoint}: {operation}: {detail}"),
                }
            }
            Failure::Construction(detail) => BackendError::Rejected {
                backend,
                operation: operation.to_owned(),
                detail,
            },
            Failure::Service {
                status,
                code,
                message,
            } => {
                let detail = match (code.is_empty(), message.is_empty()) {
                    (true, true) => format!("HTTP {status}"),
                    (false, true) => code.clone(),
                    (true, false) => message.clone(),
                    (false, false) => format!("{code}: {message}"),
                };
                if code == "InvalidInstanceID.NotFound" {
                    BackendError::NotFound {
                        backend,
                        what: operation.to_owned(),
                    }
                } else if THROTTLING_CODES.contains(&code.as_str()) {
                    BackendError::Unreachable {
                        backend,
                        detail: format!("{endpoint}: {operation}: throttled: {detail}"),
                    }
                } else if status == 408 || status == 504 {
                    BackendError::Timeout {
                        backend,
                        operation: operation.to_owned(),
                    }
                } else if status >= 500 && !CAPACITY_CODES.contains(&code.as_str()) {
                    BackendError::Unreachable {
                        backend,
                        detail: format!("{endpoint}: {operation}: HTTP {status}: {detail}"),
                    }
                } else {
                    BackendError::Rejected {
                        backend,
                        operation: operation.to_owned(),
                        detail,
                    }
                }
            }
        }
    }
}

/// A `DescribeInstances` filter: `name` is one of `values`.
pub(super) fn filter<I, S>(name: &str, values: I) -> Filter
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut builder = Filter::builder().name(name);
    for value in values {
        builder = builder.values(value);
    }
    builder.build()
}

/// How long a call may take, retries included, and how long connecting.
pub(super) fn timeout_config(timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .build()
}

/// EC2's error code, for a refusal.
pub(super) fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<&str> {
    match err {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`: lowercase letters, digits
/// and `-`; it becomes part of a host name.
pub(super) fn validate_region(region: &str) -> Result<(), BackendError> {
    if region.is_empty() || region.len() > 32 {
        return Err(invalid(
            BACKEND,
            "region",
            region,
            "must be 1 to 32 characters",
        ));
    }
    if !region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || region.starts_with('-')
        || region.ends_with('-')
    {
        return Err(invalid(
            BACKEND,
            "region",
            region,
            "must be lowercase letters, digits and `-`, like us-east-1",
        ));
    }
    Ok(())
}

/// An EC2 resource id: `prefix` then 8 to 17 lowercase hex digits
/// (`ami-12c6146b`, `i-0123456789abcdef0`).
pub(super) fn validate_resource_id(
    what: &'static str,
    prefix: &str,
    id: &str,
) -> Result<(), BackendError> {
    let ok = id.strip_prefix(prefix).is_some_and(|hex| {
        (8..=17).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            BACKEND,
            what,
            id,
            "is not an EC2 id (a prefix such as `ami-` or `i-`, then 8 to 17 hex digits)",
        ))
    }
}

/// `scheme://host[:port]` from an endpoint URL, refusing user info, paths,
/// queries and schemes other than http and https.
pub(super) fn parse_endpoint(url: &str) -> Result<String, BackendError> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        invalid(
            BACKEND,
            "endpoint",
            redact_url(url),
            "must start with http:// or https://",
        )
    })?;
    if scheme != "http" && scheme != "https" {
        return Err(invalid(
            BACKEND,
            "endpoint",
            redact_url(url),
            "must start with http:// or https://",
        ));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(invalid(
            BACKEND,
            "endpoint",
            redact_url(url),
            "must not carry a user or password (credentials come from the SDK's chain)",
        ));
    }
    if authority.is_empty()
        || authority.contains(['/', '?', '#'])
        || authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            BACKEND,
            "endpoint",
            redact_url(url),
            "must be scheme://host[:port] with no path",
        ));
    }
    Ok(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_lose_nothing_but_refuse_credentials() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:5000").expect("ok"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            parse_endpoint("https://ec2.example.com/").expect("ok"),
            "https://ec2.example.com"
        );
        for bad in [
            "http://AKIDEXAMPLE:s3cret@127.0.0.1:5000",
            "https://user:s3cret@ec2.example.com/path",
            "ftp://s3cret@host",
            "127.0.0.1:5000",
            "http://host/path",
            "http://",
        ] {
            let err = parse_endpoint(bad).expect_err(bad);
            let text = err.to_string();
            assert!(
                !text.contains("s3cret") && !text.contains("AKIDEXAMPLE"),
                "{text}"
            );
            assert!(matches!(err, BackendError::Invalid { .. }), "{text}");
        }
    }

    #[test]
    fn failures_map_to_typed_errors() {
        let service = |status: u16, code: &str| Failure::Service {
            status,
            code: code.to_owned(),
            message: "said EC2".to_owned(),
        };
        let map = |f: Failure| f.into_error("DescribeInstances of t-7#2", "http://127.0.0.1:9");
        let unreachable = map(Failure::Unanswered("connection refused".to_owned()));
        assert!(
            matches!(&unreachable, BackendError::Unreachable { detail, .. }
                if detail.contains("connection refused"))
        );
        assert!(unreachable.is_retryable());
        assert!(map(Failure::Unreadable("html".to_owned())).is_retryable());
        assert!(matches!(
            map(Failure::Timeout),
            BackendError::Timeout { .. }
        ));
        assert!(matches!(
            map(service(400, "InvalidInstanceID.NotFound")),
            BackendError::NotFound { .. }
        ));
        assert!(map(service(503, "RequestLimitExceeded")).is_retryable());
        assert!(map(service(500, "InternalError")).is_retryable());
        assert!(map(service(503, "Unavailable")).is_retryable());
        assert!(matches!(
            map(service(504, "")),
            BackendError::Timeout { .. }
        ));
        for (status, code) in [
            (500, "InsufficientInstanceCapacity"),
            (400, "InvalidAMIID.NotFound"),
            (401, "AuthFailure"),
            (400, "UnauthorizedOperation"),
        ] {
            let err = map(service(status, code));
            assert!(
                matches!(&err, BackendError::Rejected { detail, .. }
                    if *detail == format!("{code}: said EC2")),
                "{err:?}"
            );
            assert!(!err.is_retryable());
        }
        assert!(!map(Failure::Construction("no credentials".to_owned())).is_retryable());
    }
}
