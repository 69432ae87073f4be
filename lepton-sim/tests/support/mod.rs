//! Fixtures shared by the integration tests of `lepton-sim`.

// Each test file uses only some of these.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::path::PathBuf;

// The workspace's fixtures (a first-fit policy, the invariants checker).
pub(crate) use lepton_test_support::*;

/// A file of the trace (the copy in `data/`, or `LEPTON_TRACE_DIR`); a
/// missing file fails the test, it is never skipped.
pub(crate) fn trace_file(name: &str) -> PathBuf {
    let path = lepton_sim::trace_dir().unwrap().join(name);
    assert!(path.exists(), "trace file {} is missing", path.display());
    path
}
