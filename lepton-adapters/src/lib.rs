//! Backends that run Lepton's decisions: Docker Engine API, libvirt and
//! AWS EC2, one module and one feature each.
//!
//! This crate is the home of the adapters; none is built yet. Each will
//! live in its own module behind its own feature (`docker`, `libvirt`,
//! `aws`, plus `full`), so that an orchestrator compiles only the SDKs it
//! uses, and each will pass one shared conformance suite run against a real
//! server.
//!
//! - `docker`: [`docker::DockerBackend`], the Docker Engine API (Docker or
//!   Podman) over a unix socket or TCP, through bollard.
//! - `libvirt`: [`libvirt::LibvirtBackend`], one libvirt hypervisor (QEMU/KVM,
//!   the test driver) as one node, each run a domain, through `virt`.
//! - `aws`: [`aws::AwsBackend`], AWS EC2: one node per offered instance type,
//!   each run one instance tagged with it, through the AWS SDK for Rust.

#[cfg(feature = "docker")]
pub mod docker;

#[cfg(feature = "libvirt")]
pub mod libvirt;

#[cfg(feature = "aws")]
pub mod aws;
