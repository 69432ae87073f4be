//! Backends that run Lepton's decisions: this machine's processes, Docker
//! Engine API, libvirt and AWS EC2, one module and one feature each.
//!
//! Each backend implements [`lepton_core::backend::Backend`] in its own module
//! behind its own feature (`local`, `docker`, `libvirt`, `aws`, plus `full`), so that
//! an orchestrator compiles only the SDKs it uses, and each passes one
//! shared conformance suite run against a real server.
//!
//! - `local`: [`local::LocalBackend`], this machine as a node, each run a
//!   process with cgroup limits (Nomad's `raw_exec`).
//! - `docker`: [`docker::DockerBackend`], the Docker Engine API (Docker or
//!   Podman) over a unix socket or TCP, through bollard.
//! - `libvirt`: [`libvirt::LibvirtBackend`], one libvirt hypervisor (QEMU/KVM,
//!   the test driver) as one node, each run a domain, through `virt`.
//! - `aws`: [`aws::AwsBackend`], AWS EC2: one node per offered instance type,
//!   each run one instance tagged with it, through the AWS SDK for Rust.
//!
//! Each backend is a folder split by responsibility (connection and error
//! mapping, inventory, launch and stop, status and adoption). What they
//! share lives once, in `shared/`, one module per idea: `redact.rs`, the one
//! rule for hiding credentials in URLs and messages; `errors.rs`, the
//! errors they build alike; `launch_config.rs`, what they read from a
//! launch (image, command, GPUs); `node_labels.rs`, the labels every
//! backend sets ([`NODE_LABEL_BACKEND`] and, where the backend knows them,
//! [`NODE_LABEL_OS`] and [`NODE_LABEL_ARCH`]); and two small helpers,
//! `sync.rs` (a lock that survives a panic) and `hash.rs` (a stable hash).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(
    feature = "local",
    feature = "docker",
    feature = "libvirt",
    feature = "aws"
))]
mod shared;

#[cfg(any(
    feature = "local",
    feature = "docker",
    feature = "libvirt",
    feature = "aws"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "local",
        feature = "docker",
        feature = "libvirt",
        feature = "aws"
    )))
)]
pub use shared::node_labels::{NODE_LABEL_ARCH, NODE_LABEL_BACKEND, NODE_LABEL_OS};

#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub mod local;

#[cfg(feature = "docker")]
#[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
pub mod docker;

#[cfg(feature = "libvirt")]
#[cfg_attr(docsrs, doc(cfg(feature = "libvirt")))]
pub mod libvirt;

#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
pub mod aws;
