//! The conformance suite against libvirt: the built-in test hypervisor
//! (`test:///default`, in process) and a real QEMU/TCG hypervisor
//! (libvirtd started by `bash scripts/backends.sh start libvirt`; its URI in
//! `LEPTON_LIBVIRT_URI`). A missing server fails the tests.

#![cfg(feature = "libvirt")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use lepton::adapters::libvirt::LibvirtBackend;
use lepton::backend::{Backend, Handle};
use lepton::{NodeId, Resources, TaskId, TaskSpec};
use support::conformance::{self, Target};
use virt::connect::Connect;

struct Libvirt {
    /// Kept open: the test driver's state lives as long as a connection does,
    /// and killing "from outside" goes through this one.
    connection: Connect,
}

fn test_driver() -> Libvirt {
    Libvirt {
        connection: Connect::open(Some("test:///default")).unwrap(),
    }
}

fn qemu() -> Libvirt {
    let uri = support::server_env("LEPTON_LIBVIRT_URI", "libvirt");
    Libvirt {
        connection: Connect::open(Some(&uri)).unwrap(),
    }
}

#[async_trait::async_trait]
impl Target for Libvirt {
    async fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(LibvirtBackend::with_connection(
            self.connection.clone(),
            NodeId(1),
        ))
    }

    fn unreachable(&self) -> Arc<dyn Backend> {
        Arc::new(LibvirtBackend::new(
            "qemu:///system?socket=/nonexistent/lepton/libvirt-sock",
            NodeId(1),
        ))
    }

    fn long_task(&self, id: u64) -> TaskSpec {
        // A diskless VM runs until it is destroyed.
        TaskSpec::new(TaskId(800_000 + id), Resources::new(1_000, 64))
    }

    async fn kill_outside(&self, _backend: &Arc<dyn Backend>, handle: &Handle) {
        let domain = self.connection.lookup_domain_by_name(&handle.id).unwrap();
        domain.destroy().unwrap();
    }
}

macro_rules! conformance {
    ($target:ident: $($check:ident => $name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                conformance::$check(&$target()).await;
            }
        )*
    };
}

conformance! { test_driver:
    inventory_has_capacity => conformance_libvirt_inventory_has_capacity,
    launch_then_stop => conformance_libvirt_launch_then_stop,
    launch_twice_creates_one => conformance_libvirt_launch_twice_creates_one,
    killed_outside_is_rescheduled => conformance_libvirt_killed_outside_is_rescheduled,
    unreachable_keeps_the_task => conformance_libvirt_unreachable_keeps_the_task,
}

// The same checks on QEMU/TCG: slower (each VM boots a machine).
conformance! { qemu:
    inventory_has_capacity => conformance_libvirt_qemu_inventory_has_capacity,
    launch_then_stop => conformance_libvirt_qemu_launch_then_stop,
    launch_twice_creates_one => conformance_libvirt_qemu_launch_twice_creates_one,
    killed_outside_is_rescheduled => conformance_libvirt_qemu_killed_outside_is_rescheduled,
    unreachable_keeps_the_task => conformance_libvirt_qemu_unreachable_keeps_the_task,
}
