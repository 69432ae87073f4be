//! A run's state: the domain's state and reason as a [`RunStatus`] (the
//! table in the module docs), and finding every run's domain again after a
//! restart.

use lepton_core::backend::{BackendError, Handle, RunStatus};
use virt::domain::{
    DomainPausedReason, DomainShutoffReason, DomainShutoffReasonEnum, DomainState, DomainStateEnum,
    DomainStateReason, DomainStateReasonEnum,
};
use virt::error::ErrorNumber;
use virt::sys;

use super::domain::{parse_domain_name, parse_run_tag};
use super::{LibvirtBackend, METADATA_NAMESPACE};

impl LibvirtBackend {
    /// [`status`](lepton_core::backend::Backend::status): the domain's state, or `Gone`.
    pub(super) async fn domain_status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        let name = self.domain_of(handle)?;
        self.call("status", move |shared, connection| {
            let Some(domain) = shared.lookup(connection, "status", &name)? else {
                return Ok(RunStatus::Gone);
            };
            let (state, reason) = domain
                .state()
                .map_err(|e| shared.error("status", &format!("domain {name}"), &e))?;
            if state.is_unknown() {
                // `state()` swallows libvirt's error; `info()` reports it.
                match domain.info() {
                    Err(e) if e.code().is(ErrorNumber::NoDomain) => return Ok(RunStatus::Gone),
                    Err(e) => return Err(shared.error("status", &format!("domain {name}"), &e)),
                    Ok(info) => {
                        return Ok(status_of(info.state, DomainStateReasonEnum::Unknown(-1)))
                    }
                }
            }
            Ok(status_of(state, reason))
        })
        .await
    }

    /// [`running`](lepton_core::backend::Backend::running): the domains named and tagged as runs.
    pub(super) async fn list_runs(&self) -> Result<Vec<Handle>, BackendError> {
        let node = self.node;
        self.call("running", move |shared, connection| {
            let domains = connection
                .list_all_domains(0)
                .map_err(|e| shared.error("running", "domains", &e))?;
            let mut handles = Vec::new();
            for domain in domains {
                // A domain undefined meanwhile has no name to read: skip it.
                let Ok(name) = domain.name() else { continue };
                let Some(run) = parse_domain_name(&name) else {
                    continue;
                };
                let tag = domain
                    .metadata(
                        sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                        Some(METADATA_NAMESPACE),
                        0,
                    )
                    .ok();
                // A domain whose tag names another run was copied or renamed
                // by hand: not one Lepton started under that name.
                if let Some(tag) = tag.as_deref().and_then(parse_run_tag) {
                    if tag.run != run {
                        continue;
                    }
                }
                handles.push(Handle {
                    run,
                    node,
                    id: name,
                });
            }
            handles.sort_by_key(|h| h.run);
            Ok(handles)
        })
        .await
    }
}

/// How a domain in `state` (for `reason`) is doing; see the table in the
/// module docs.
fn status_of(state: DomainStateEnum, reason: DomainStateReasonEnum) -> RunStatus {
    let failed = |reason: String| RunStatus::Failed { reason };
    // `DomainStateReason` has no raw form, so its `Enum` has no `known()`.
    let reason = match reason {
        DomainStateReasonEnum::Known(reason) => Some(reason),
        DomainStateReasonEnum::Unknown(_) => None,
    };
    match (state.known(), reason) {
        (Some(DomainState::Paused), Some(DomainStateReason::Paused(paused))) => {
            match paused.known() {
                Some(DomainPausedReason::StartingUp) => RunStatus::Starting,
                Some(
                    why @ (DomainPausedReason::IOError
                    | DomainPausedReason::Crashed
                    | DomainPausedReason::PostCopyFailed),
                ) => failed(format!("paused: {why}")),
                _ => RunStatus::Running,
            }
        }
        (Some(DomainState::Shutoff), Some(DomainStateReason::Shutoff(why))) => shutoff_status(why),
        (Some(DomainState::Shutoff), _) => shutoff_status(DomainShutoffReasonEnum::Unknown(0)),
        (Some(DomainState::NoState), _) | (None, _) => RunStatus::Starting,
        (
            Some(
                DomainState::Running
                | DomainState::Blocked
                | DomainState::Paused
                | DomainState::Shutdown
                | DomainState::PMSuspended,
            ),
            _,
        ) => RunStatus::Running,
        (Some(DomainState::Crashed), _) => failed("crashed".to_owned()),
    }
}

fn shutoff_status(reason: DomainShutoffReasonEnum) -> RunStatus {
    match reason.known() {
        Some(DomainShutoffReason::Shutdown) => RunStatus::Exited { code: 0 },
        Some(why) => RunStatus::Failed {
            reason: format!("shut off: {why}"),
        },
        None => RunStatus::Failed {
            reason: "shut off: unknown reason".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use virt::domain::{DomainCrashedReasonEnum, DomainPausedReasonEnum, DomainRunningReason};

    use super::*;

    fn shutoff(reason: DomainShutoffReason) -> RunStatus {
        status_of(
            DomainStateEnum::Known(DomainState::Shutoff),
            DomainStateReasonEnum::Known(DomainStateReason::Shutoff(
                DomainShutoffReasonEnum::Known(reason),
            )),
        )
    }

    fn paused(reason: DomainPausedReason) -> RunStatus {
        status_of(
            DomainStateEnum::Known(DomainState::Paused),
            DomainStateReasonEnum::Known(DomainStateReason::Paused(DomainPausedReasonEnum::Known(
                reason,
            ))),
        )
    }

    #[test]
    fn status_mapping() {
        let running = status_of(
            DomainStateEnum::Known(DomainState::Running),
            DomainStateReasonEnum::Known(DomainStateReason::Running(
                virt::domain::DomainRunningReasonEnum::Known(DomainRunningReason::Booted),
            )),
        );
        assert_eq!(running, RunStatus::Running);
        assert_eq!(
            shutoff(DomainShutoffReason::Shutdown),
            RunStatus::Exited { code: 0 }
        );
        assert_eq!(
            shutoff(DomainShutoffReason::Destroyed),
            RunStatus::Failed {
                reason: "shut off: destroyed".to_owned()
            }
        );
        assert_eq!(
            shutoff(DomainShutoffReason::Crashed),
            RunStatus::Failed {
                reason: "shut off: crashed".to_owned()
            }
        );
        for reason in [
            DomainShutoffReason::Unknown,
            DomainShutoffReason::Failed,
            DomainShutoffReason::Migrated,
            DomainShutoffReason::Saved,
            DomainShutoffReason::Daemon,
            DomainShutoffReason::FromSnapshot,
        ] {
            assert!(
                matches!(shutoff(reason), RunStatus::Failed { .. }),
                "{reason:?}"
            );
        }
        assert_eq!(
            status_of(
                DomainStateEnum::Known(DomainState::Shutoff),
                DomainStateReasonEnum::Unknown(-1)
            ),
            RunStatus::Failed {
                reason: "shut off: unknown reason".to_owned()
            }
        );
        assert_eq!(paused(DomainPausedReason::StartingUp), RunStatus::Starting);
        assert_eq!(paused(DomainPausedReason::User), RunStatus::Running);
        assert_eq!(paused(DomainPausedReason::Migration), RunStatus::Running);
        assert_eq!(
            paused(DomainPausedReason::IOError),
            RunStatus::Failed {
                reason: "paused: ioerror".to_owned()
            }
        );
        let crashed = status_of(
            DomainStateEnum::Known(DomainState::Crashed),
            DomainStateReasonEnum::Known(DomainStateReason::Crashed(
                DomainCrashedReasonEnum::Unknown(0),
            )),
        );
        assert!(matches!(crashed, RunStatus::Failed { .. }), "{crashed:?}");
        for state in [
            DomainState::Blocked,
            DomainState::Shutdown,
            DomainState::PMSuspended,
        ] {
            assert_eq!(
                status_of(
                    DomainStateEnum::Known(state),
                    DomainStateReasonEnum::Unknown(0)
                ),
                RunStatus::Running,
                "{state:?}"
            );
        }
        assert_eq!(
            status_of(
                DomainStateEnum::Known(DomainState::NoState),
                DomainStateReasonEnum::Unknown(0)
            ),
            RunStatus::Starting
        );
        assert_eq!(
            status_of(
                DomainStateEnum::Unknown(99),
                DomainStateReasonEnum::Unknown(0)
            ),
            RunStatus::Starting
        );
    }
}
