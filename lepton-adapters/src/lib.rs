//! Backends that run Lepton's decisions: Docker Engine API, libvirt and
//! AWS EC2, one module and one feature each.
//!
//! This crate is the home of the adapters; none is built yet. Each will
//! live in its own module behind its own feature (`docker`, `libvirt`,
//! `aws`, plus `full`), so that an orchestrator compiles only the SDKs it
//! uses, and each will pass one shared conformance suite run against a real
//! server.
