//! A run's state: inspecting its container (the table in the module docs)
//! and finding every run's container again after a restart.

use bollard::models::{ContainerState, ContainerStateStatusEnum, ContainerSummary};
use bollard::query_parameters::InspectContainerOptions;
use bollard::Docker;
use lepton_core::backend::{BackendError, Handle, RunStatus};
use lepton_core::{NodeId, Run};

use super::client::{status_code, through_podman_stopped, validate_container_id};
use super::launch::labels_run;
use super::{DockerBackend, BACKEND, LABEL_NODE, LABEL_TASK};
use crate::shared::sync::lock;

impl DockerBackend {
    /// The run's status, from an inspection of its container.
    pub(super) async fn inspect_status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        let docker = self.client().await?;
        Ok(match self.inspect_owned(docker, handle, "inspect").await? {
            None => RunStatus::Gone,
            Some(state) => status_from_state(&state, self.is_stopping(&handle.id)),
        })
    }

    /// Every container with a run's labels, sorted by run.
    pub(super) async fn list_runs(&self) -> Result<Vec<Handle>, BackendError> {
        let docker = self.client().await?;
        let containers = self
            .list_labelled(docker, vec![LABEL_TASK], "list", "Lepton's containers")
            .await?;
        let mut handles: Vec<Handle> = containers
            .iter()
            .filter_map(|c| {
                let (run, node) = summary_run(c)?;
                Some(Handle {
                    run,
                    node,
                    id: c.id.clone()?,
                })
            })
            .collect();
        handles.sort_by(|a, b| (a.run, &a.id).cmp(&(b.run, &b.id)));
        Ok(handles)
    }

    /// Inspects the container of `handle`, checking it belongs to the run.
    /// `None` when the daemon does not know it.
    pub(super) async fn inspect_owned(
        &self,
        docker: &Docker,
        handle: &Handle,
        action: &str,
    ) -> Result<Option<ContainerState>, BackendError> {
        validate_container_id(&handle.id)?;
        let subject = format!("container {} of {}", handle.id, handle.run);
        let result = through_podman_stopped(|| {
            docker.inspect_container(&handle.id, None::<InspectContainerOptions>)
        })
        .await;
        let inspected = match result {
            Ok(inspected) => inspected,
            Err(e) if status_code(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.error(action, &subject, e)),
        };
        let labels = inspected.config.and_then(|c| c.labels).unwrap_or_default();
        if labels_run(&labels) != Some(handle.run) {
            return Err(BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: format!("{action} {subject}"),
                detail: format!("the container does not carry the labels of {}", handle.run),
            });
        }
        Ok(Some(inspected.state.unwrap_or_default()))
    }

    /// Whether this backend is stopping container `id` (its SIGTERM or
    /// SIGKILL exit is then no failure).
    fn is_stopping(&self, id: &str) -> bool {
        lock(&self.stopping).contains(id)
    }

    /// Records that this backend is, or no longer is, stopping `id`.
    pub(super) fn set_stopping(&self, id: &str, stopping: bool) {
        let mut set = lock(&self.stopping);
        if stopping {
            set.insert(id.to_owned());
        } else {
            set.remove(id);
        }
    }
}

/// The run and node in a listed container's labels, if they are this
/// backend's.
fn summary_run(container: &ContainerSummary) -> Option<(Run, NodeId)> {
    let labels = container.labels.as_ref()?;
    let node = NodeId(labels.get(LABEL_NODE)?.parse().ok()?);
    Some((labels_run(labels)?, node))
}

/// A container's state as a [`RunStatus`]; `stopped_by_us` when this backend
/// asked for the stop, so a SIGTERM/SIGKILL exit is not a failure. The table
/// is in the module documentation.
fn status_from_state(state: &ContainerState, stopped_by_us: bool) -> RunStatus {
    use ContainerStateStatusEnum as S;
    let error = state.error.as_deref().filter(|e| !e.is_empty());
    match state.status {
        Some(S::RUNNING | S::PAUSED | S::STOPPING) => RunStatus::Running,
        Some(S::CREATED | S::RESTARTING) => match error {
            Some(e) => RunStatus::Failed {
                reason: format!("the container did not start: {e}"),
            },
            None => RunStatus::Starting,
        },
        Some(S::EXITED) => exited_status(state, error, stopped_by_us),
        Some(S::DEAD) => RunStatus::Failed {
            reason: match error {
                Some(e) => format!("the container is dead: {e}"),
                None => "the container is dead (the daemon failed to stop or remove it)".to_owned(),
            },
        },
        Some(S::REMOVING) => RunStatus::Gone,
        // No status string (very old daemons): fall back on the flags.
        Some(S::EMPTY) | None => {
            if state.running == Some(true) {
                RunStatus::Running
            } else if state
                .finished_at
                .as_deref()
                .is_some_and(|f| !f.is_empty() && !f.starts_with("0001-"))
            {
                exited_status(state, error, stopped_by_us)
            } else {
                RunStatus::Starting
            }
        }
    }
}

fn exited_status(state: &ContainerState, error: Option<&str>, stopped_by_us: bool) -> RunStatus {
    let Some(code) = state.exit_code else {
        return RunStatus::Failed {
            reason: "the container exited without an exit code".to_owned(),
        };
    };
    if state.oom_killed == Some(true) {
        return RunStatus::Failed {
            reason: format!("killed by the out-of-memory killer (exit code {code})"),
        };
    }
    if let Some(e) = error {
        return RunStatus::Failed {
            reason: format!("{e} (exit code {code})"),
        };
    }
    let signal = match code {
        137 => Some("SIGKILL"),
        143 => Some("SIGTERM"),
        _ => None,
    };
    match signal {
        Some(signal) if !stopped_by_us => RunStatus::Failed {
            reason: format!("killed by {signal} from outside Lepton (exit code {code})"),
        },
        _ => RunStatus::Exited { code },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: ContainerStateStatusEnum, exit_code: i64) -> ContainerState {
        ContainerState {
            status: Some(status),
            exit_code: Some(exit_code),
            oom_killed: Some(false),
            error: Some(String::new()),
            ..Default::default()
        }
    }

    #[test]
    fn live_states_map_to_running_or_starting() {
        use ContainerStateStatusEnum as S;
        assert_eq!(
            status_from_state(&state(S::RUNNING, 0), false),
            RunStatus::Running
        );
        assert_eq!(
            status_from_state(&state(S::PAUSED, 0), false),
            RunStatus::Running
        );
        assert_eq!(
            status_from_state(&state(S::CREATED, 0), false),
            RunStatus::Starting
        );
        assert_eq!(
            status_from_state(&state(S::RESTARTING, 0), false),
            RunStatus::Starting
        );
        assert_eq!(
            status_from_state(&state(S::REMOVING, 0), false),
            RunStatus::Gone
        );
    }

    #[test]
    fn exits_map_to_exited_unless_killed() {
        use ContainerStateStatusEnum as S;
        for code in [0, 1, 2, 139] {
            assert_eq!(
                status_from_state(&state(S::EXITED, code), false),
                RunStatus::Exited { code }
            );
        }
        for code in [137, 143] {
            assert!(matches!(
                status_from_state(&state(S::EXITED, code), false),
                RunStatus::Failed { reason } if reason.contains("from outside")
            ));
            // Our own stop ends with the same codes: not a failure.
            assert_eq!(
                status_from_state(&state(S::EXITED, code), true),
                RunStatus::Exited { code }
            );
        }
    }

    #[test]
    fn oom_errors_and_dead_containers_are_failures() {
        use ContainerStateStatusEnum as S;
        let oom = ContainerState {
            oom_killed: Some(true),
            ..state(S::EXITED, 137)
        };
        assert!(matches!(
            status_from_state(&oom, true),
            RunStatus::Failed { reason } if reason.contains("out-of-memory")
        ));
        let not_started = ContainerState {
            error: Some("exec: \"nope\": executable file not found".to_owned()),
            ..state(S::CREATED, 127)
        };
        assert!(matches!(
            status_from_state(&not_started, false),
            RunStatus::Failed { reason } if reason.contains("executable file not found")
        ));
        assert!(matches!(
            status_from_state(&state(S::DEAD, 0), false),
            RunStatus::Failed { .. }
        ));
        let no_code = ContainerState {
            exit_code: None,
            ..state(S::EXITED, 0)
        };
        assert!(matches!(
            status_from_state(&no_code, false),
            RunStatus::Failed { .. }
        ));
    }
}
