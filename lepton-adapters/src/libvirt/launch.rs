//! Launching, stopping and live-migrating a run's domain, each as one
//! blocking call on the connection (see `client`).

use std::sync::Arc;

use lepton_core::backend::{BackendError, Handle, Launch};
use virt::domain::Domain;
use virt::error::{Error as VirtError, ErrorNumber};
use virt::sys;

use super::domain::{
    domain_name, domain_xml, memory_for, run_tag_attributes, run_title, validate_domain_type,
    validate_task_name, vcpus_for, DomainDefinition,
};
use super::{LibvirtBackend, BACKEND, METADATA_NAMESPACE, METADATA_PREFIX};
use crate::shared::launch_config::refuse_gpu_launch;
use crate::shared::sync::lock;

impl LibvirtBackend {
    /// [`launch`](lepton_core::backend::Backend::launch): the run's domain, defined and started
    /// unless it exists.
    pub(super) async fn define_and_start(&self, launch: &Launch) -> Result<Handle, BackendError> {
        if launch.node != self.node {
            return Err(BackendError::NotFound {
                backend: BACKEND.to_owned(),
                what: format!("node {}", launch.node),
            });
        }
        refuse_gpu_launch(BACKEND, launch, "GPU passthrough")?;
        let description = launch
            .task
            .name
            .as_deref()
            .map(validate_task_name)
            .transpose()?
            .map(str::to_owned);
        if let Some(domain_type) = &self.domain_type {
            validate_domain_type(domain_type)?;
        }
        let run = launch.run;
        let node = self.node;
        let requested_type = self.domain_type.clone();
        let request = launch.task.request.clone();
        let name = domain_name(run);
        self.call("launch", move |shared, connection| {
            let what = format!("domain {name}");
            let (domain, defined_now) = match shared.lookup(connection, "launch", &name)? {
                Some(domain) => (domain, false),
                None => {
                    let domain_type = match requested_type {
                        Some(domain_type) => domain_type,
                        None => connection
                            .driver_type()
                            .map_err(|e| shared.error("launch", &what, &e))?
                            .to_lowercase(),
                    };
                    let xml = domain_xml(&DomainDefinition {
                        domain_type: &domain_type,
                        run,
                        node,
                        description: description.as_deref(),
                        vcpus: vcpus_for(request.cpu_milli),
                        memory_mib: memory_for(&domain_type, request.memory_mib),
                    });
                    match connection.define_domain_xml(&xml) {
                        Ok(domain) => (domain, true),
                        // A concurrent launch of the same run defined it first.
                        Err(e) => match shared.lookup(connection, "launch", &name)? {
                            Some(domain) => (domain, false),
                            None => return Err(shared.error("launch", &what, &e)),
                        },
                    }
                }
            };
            if let Err(e) = start(&domain) {
                let error = shared.error("launch", &what, &e);
                // A domain this call defined and could not start is not
                // left behind (unless the connection is gone).
                if defined_now && !error.is_retryable() {
                    let _ = domain.undefine();
                }
                return Err(error);
            }
            Ok(Handle {
                run,
                node,
                id: name,
            })
        })
        .await
    }

    /// [`stop`](lepton_core::backend::Backend::stop): destroys the domain and undefines it.
    pub(super) async fn destroy_and_undefine(&self, handle: &Handle) -> Result<(), BackendError> {
        let name = self.domain_of(handle)?;
        lock(&self.shared.cpu_samples).remove(&name);
        self.call("stop", move |shared, connection| {
            let what = format!("domain {name}");
            let gone = |e: &VirtError| e.code().is(ErrorNumber::NoDomain);
            let Some(domain) = shared.lookup(connection, "stop", &name)? else {
                return Ok(());
            };
            match domain.is_active() {
                Ok(true) => {
                    if let Err(e) = domain.destroy() {
                        // Lost a race with its own end: fine.
                        if !gone(&e) && domain.is_active().unwrap_or(true) {
                            return Err(shared.error("stop", &what, &e));
                        }
                    }
                }
                Ok(false) => {}
                Err(e) if gone(&e) => return Ok(()),
                Err(e) => return Err(shared.error("stop", &what, &e)),
            }
            // A transient domain vanished when destroyed.
            match domain.is_persistent() {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) if gone(&e) => return Ok(()),
                Err(e) => return Err(shared.error("stop", &what, &e)),
            }
            let flags =
                sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
            match domain.undefine_flags(flags) {
                Ok(()) => Ok(()),
                Err(e) if gone(&e) => Ok(()),
                Err(e) => Err(shared.error("stop", &what, &e)),
            }
        })
        .await
    }

    /// [`migrate`](lepton_core::backend::Backend::migrate): moves the domain live to a peer.
    pub(super) async fn migrate_live(
        &self,
        handle: &Handle,
        to: &Launch,
    ) -> Result<Handle, BackendError> {
        let name = self.domain_of(handle)?;
        let Some(peer) = self.peers.get(&to.node) else {
            return Err(BackendError::Unsupported {
                backend: BACKEND.to_owned(),
                operation: "live migration to a node that is not a peer",
            });
        };
        if to.run.task != handle.run.task {
            return Err(BackendError::Invalid {
                backend: BACKEND.to_owned(),
                what: "migration target run",
                value: to.run.to_string(),
                why: "is not a run of the migrated task",
            });
        }
        let new_name = domain_name(to.run);
        // Unprefixed: libvirt puts it in the namespace given beside it.
        let tag = format!("<run {}/>", run_tag_attributes(to.run, to.node));
        let title = run_title(to.run);
        let peer_shared = Arc::clone(&peer.shared);
        let migration_uri = peer.migration_uri.clone();
        let patience = self.timeout;
        let moved = Handle {
            run: to.run,
            node: to.node,
            id: new_name.clone(),
        };
        lock(&self.shared.cpu_samples).remove(&name);
        self.call("migrate", move |shared, connection| {
            let what = format!("domain {name}");
            let destination = peer_shared.connection(patience)?;
            let Some(domain) = shared.lookup(connection, "migrate", &name)? else {
                // Migrated already (an earlier answer was lost)?
                return match peer_shared.lookup(&destination, "migrate", &new_name)? {
                    Some(_) => Ok(moved),
                    None => Err(BackendError::NotFound {
                        backend: BACKEND.to_owned(),
                        what,
                    }),
                };
            };
            let flags = sys::VIR_MIGRATE_LIVE
                | sys::VIR_MIGRATE_PERSIST_DEST
                | sys::VIR_MIGRATE_UNDEFINE_SOURCE;
            let migrated = domain
                .migrate(
                    &destination,
                    flags,
                    Some(&new_name),
                    migration_uri.as_deref(),
                    0,
                )
                .map_err(|e| peer_shared.scrub_error(shared.error("migrate", &what, &e)))?;
            // The tag names the new run, so that `running` adopts it there.
            let affect = sys::VIR_DOMAIN_AFFECT_LIVE | sys::VIR_DOMAIN_AFFECT_CONFIG;
            let retag = migrated
                .set_metadata(
                    sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                    Some(&tag),
                    Some(METADATA_PREFIX),
                    Some(METADATA_NAMESPACE),
                    affect,
                )
                .and_then(|()| {
                    migrated.set_metadata(
                        sys::VIR_DOMAIN_METADATA_TITLE as i32,
                        Some(&title),
                        None,
                        None,
                        affect,
                    )
                });
            if let Err(e) = retag {
                // A domain the new run's tag is missing from would be left
                // unadopted after a restart: give it up; the run restarts.
                let _ = migrated.destroy();
                let _ = migrated.undefine();
                return Err(peer_shared.error(
                    "tag the migrated",
                    &format!("domain {new_name}"),
                    &e,
                ));
            }
            Ok(moved)
        })
        .await
    }
}

/// Starts `domain` unless it already runs.
fn start(domain: &Domain) -> Result<(), VirtError> {
    if domain.is_active()? {
        return Ok(());
    }
    match domain.create() {
        Ok(()) => Ok(()),
        // A concurrent launch started it first.
        Err(_) if domain.is_active().unwrap_or(false) => Ok(()),
        Err(e) => Err(e),
    }
}
