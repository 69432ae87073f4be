//! What the backends share, one module per idea (see the crate docs); only
//! in builds with a backend.

pub(crate) mod errors;
#[cfg(any(feature = "local", feature = "aws"))]
pub(crate) mod hash;
pub(crate) mod launch_config;
pub(crate) mod node_labels;
#[cfg(any(feature = "docker", feature = "libvirt", feature = "aws"))]
pub(crate) mod redact;
pub(crate) mod sync;
#[cfg(test)]
pub(crate) mod testing;
