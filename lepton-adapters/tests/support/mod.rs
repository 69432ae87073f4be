//! What the backend tests share: reaching the servers that
//! `scripts/backends.sh` starts.

/// The value of `name`, which `scripts/backends.sh env` exports once the
/// `backend` server runs. A missing variable fails the test and says how
/// to start the server: a test never skips for want of one.
pub(crate) fn server_env(name: &str, backend: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run `bash scripts/backends.sh start {backend}` and \
             `eval \"$(bash scripts/backends.sh env)\"` first"
        )
    })
}
