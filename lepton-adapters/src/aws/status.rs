//! A run's state: describing its instance (the table in the module docs),
//! checking it carries the run's tags, and finding every run's instance
//! again after a restart.

use aws_sdk_ec2::types::{Instance, InstanceStateName, Tag};
use lepton_core::backend::{BackendError, Handle, RunStatus};
use lepton_core::{NodeId, Run, TaskId};

use super::client::{error_code, filter, validate_resource_id};
use super::{AwsBackend, BACKEND, TAG_ATTEMPT, TAG_CLUSTER, TAG_NODE, TAG_TASK};

impl AwsBackend {
    /// [`status`](lepton_core::backend::Backend::status): the instance's state, or `Gone`.
    pub(super) async fn instance_status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        let Some(instance) = self.describe_owned(handle, "describe").await? else {
            return Ok(RunStatus::Gone);
        };
        let reason = instance.state_reason();
        Ok(status_of(
            &handle.id,
            state_of(&instance),
            reason.and_then(|r| r.code()),
            reason.and_then(|r| r.message()),
            instance.state_transition_reason(),
        ))
    }

    /// [`running`](lepton_core::backend::Backend::running): the live instances tagged as runs.
    pub(super) async fn list_runs(&self) -> Result<Vec<Handle>, BackendError> {
        let instances = self
            .describe(vec![filter("tag-key", [TAG_TASK])], "the cluster's runs")
            .await?;
        let mut handles: Vec<Handle> = instances
            .iter()
            .filter_map(|i| {
                let (run, node) = tagged_run(i.tags(), &self.cluster)?;
                let id = i.instance_id()?;
                validate_resource_id("instance id", "i-", id).ok()?;
                Some(Handle {
                    run,
                    node,
                    id: id.to_owned(),
                })
            })
            .collect();
        handles.sort_by(|a, b| a.run.cmp(&b.run).then_with(|| a.id.cmp(&b.id)));
        Ok(handles)
    }

    /// The instance of `handle`, checked to carry the handle's run; `None`
    /// when EC2 does not know it.
    pub(super) async fn describe_owned(
        &self,
        handle: &Handle,
        action: &str,
    ) -> Result<Option<Instance>, BackendError> {
        validate_resource_id("instance id", "i-", &handle.id)?;
        let subject = format!("instance {} of {}", handle.id, handle.run);
        let output = match self
            .client()
            .await
            .describe_instances()
            .instance_ids(&handle.id)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => return Ok(None),
            Err(e) => return Err(self.sdk_error(action, &subject, e)),
        };
        let Some(instance) = output
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(handle.id.as_str()))
        else {
            return Ok(None);
        };
        if tagged_run(instance.tags(), &self.cluster).map(|(r, _)| r) != Some(handle.run) {
            return Err(BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: format!("{action} {subject}"),
                detail: format!(
                    "the instance does not carry the tags of {} in cluster {:?}",
                    handle.run, self.cluster
                ),
            });
        }
        Ok(Some(instance.clone()))
    }
}

/// The run status of an instance in `state`, from its state reason
/// (`Client.UserInitiatedShutdown`, …) and transition reason.
fn status_of(
    id: &str,
    state: Option<&InstanceStateName>,
    reason_code: Option<&str>,
    reason_message: Option<&str>,
    transition: Option<&str>,
) -> RunStatus {
    let reason_code = reason_code.unwrap_or_default();
    let because = || {
        [reason_message, Some(reason_code), transition]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .unwrap_or("no reason given")
            .to_owned()
    };
    let Some(state) = state else {
        return RunStatus::Failed {
            reason: format!("instance {id} reports no state"),
        };
    };
    match state {
        InstanceStateName::Pending => RunStatus::Starting,
        InstanceStateName::Running => RunStatus::Running,
        _ if reason_code == "Client.InstanceInitiatedShutdown" => RunStatus::Exited { code: 0 },
        InstanceStateName::Stopping | InstanceStateName::Stopped => RunStatus::Failed {
            reason: format!("instance {id} is {}: {}", state.as_str(), because()),
        },
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
            if reason_code == "Client.UserInitiatedShutdown" =>
        {
            RunStatus::Gone
        }
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated => RunStatus::Failed {
            reason: format!("instance {id} is {}: {}", state.as_str(), because()),
        },
        other => RunStatus::Failed {
            reason: format!("instance {id} is in unknown state {:?}", other.as_str()),
        },
    }
}

/// The instance's state, if EC2 says.
pub(super) fn state_of(instance: &Instance) -> Option<&InstanceStateName> {
    instance.state().and_then(|s| s.name())
}

/// The run and node in an instance's tags, when it carries all of them and
/// belongs to `cluster`.
pub(super) fn tagged_run(tags: &[Tag], cluster: &str) -> Option<(Run, NodeId)> {
    let get = |key: &str| {
        tags.iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
    };
    if get(TAG_CLUSTER) != Some(cluster) {
        return None;
    }
    let task = get(TAG_TASK)?.parse().ok()?;
    let attempt = get(TAG_ATTEMPT)?.parse().ok()?;
    let node = get(TAG_NODE)?.parse().ok()?;
    Some((
        Run {
            task: TaskId(task),
            attempt,
        },
        NodeId(node),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
        pairs
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect()
    }

    #[test]
    fn tags_give_back_the_run_only_in_the_cluster() {
        let full = tags(&[
            (TAG_CLUSTER, "lepton"),
            (TAG_TASK, "7"),
            (TAG_ATTEMPT, "2"),
            (TAG_NODE, "42"),
            ("Name", "lepton-t7-2"),
        ]);
        let run = Run {
            task: TaskId(7),
            attempt: 2,
        };
        assert_eq!(tagged_run(&full, "lepton"), Some((run, NodeId(42))));
        assert_eq!(tagged_run(&full, "other"), None);
        let broken = tags(&[
            (TAG_CLUSTER, "lepton"),
            (TAG_TASK, "seven"),
            (TAG_ATTEMPT, "2"),
            (TAG_NODE, "1"),
        ]);
        assert_eq!(tagged_run(&broken, "lepton"), None);
        let partial = tags(&[(TAG_CLUSTER, "lepton"), (TAG_TASK, "7")]);
        assert_eq!(tagged_run(&partial, "lepton"), None);
    }

    #[test]
    fn states_map_to_run_status() {
        use InstanceStateName as S;
        let status =
            |state: S, code: Option<&str>| status_of("i-1", Some(&state), code, None, None);
        assert_eq!(status(S::Pending, None), RunStatus::Starting);
        assert_eq!(status(S::Running, None), RunStatus::Running);
        assert_eq!(
            status(S::Terminated, Some("Client.UserInitiatedShutdown")),
            RunStatus::Gone
        );
        assert_eq!(
            status(S::ShuttingDown, Some("Client.UserInitiatedShutdown")),
            RunStatus::Gone
        );
        assert_eq!(
            status(S::Stopped, Some("Client.InstanceInitiatedShutdown")),
            RunStatus::Exited { code: 0 }
        );
        assert_eq!(
            status(S::Terminated, Some("Client.InstanceInitiatedShutdown")),
            RunStatus::Exited { code: 0 }
        );
        let stopped = status_of(
            "i-1",
            Some(&S::Stopped),
            Some("Client.UserInitiatedShutdown"),
            Some("Client.UserInitiatedShutdown: User initiated shutdown"),
            Some("User initiated (2026-11-27 08:03:43 UTC)"),
        );
        assert!(
            matches!(&stopped, RunStatus::Failed { reason }
                if reason.contains("i-1 is stopped: Client.UserInitiatedShutdown: User initiated")),
            "{stopped:?}"
        );
        assert!(matches!(
            status(S::Stopping, None),
            RunStatus::Failed { .. }
        ));
        let reclaimed = status(S::Terminated, Some("Server.SpotInstanceTermination"));
        assert!(
            matches!(&reclaimed, RunStatus::Failed { reason }
                if reason.contains("Server.SpotInstanceTermination")),
            "{reclaimed:?}"
        );
        assert!(matches!(
            status_of("i-1", None, None, None, None),
            RunStatus::Failed { .. }
        ));
        assert!(matches!(
            status(S::from("hibernating"), None),
            RunStatus::Failed { reason } if reason.contains("hibernating")
        ));
    }
}
