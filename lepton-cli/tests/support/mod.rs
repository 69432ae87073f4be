//! What the binary's tests share.

// Each test file uses part of this module.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod browser;
pub(crate) mod network;
pub(crate) mod replicas;
pub(crate) mod service;
