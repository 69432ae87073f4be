//! The scenarios as gym environments: the fleets' (`FleetEnv`) and the
//! edge's (`EdgeEnv`), one test binary.

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

mod edge;
mod fleet;
