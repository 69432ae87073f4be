//! Launching and stopping a run's container: what is sent (checked before
//! any request), finding the run's container again, and the races the
//! module docs describe.

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use lepton_core::backend::{BackendError, Handle, Launch};
use lepton_core::{Run, TaskId, TaskSpec};

use super::client::{status_code, whole_seconds};
use super::{DockerBackend, BACKEND, LABEL_ATTEMPT, LABEL_NAME, LABEL_NODE, LABEL_TASK, MIB};
use crate::shared::errors::invalid;
use crate::shared::launch_config::{parse_command, refuse_gpu_launch, refuse_gpus, task_image};

/// Longest label value accepted, in bytes.
const MAX_LABEL_BYTES: usize = 1024;
/// Longest image reference accepted, in bytes.
const MAX_IMAGE_BYTES: usize = 255;

/// The name of a run's container: `lepton-t<task>-<attempt>`, from numbers
/// only, so no user text ever reaches a container name.
pub fn container_name(run: Run) -> String {
    format!("lepton-t{}-{}", run.task.0, run.attempt)
}

impl DockerBackend {
    /// [`launch`](lepton_core::backend::Backend::launch): the run's container, created and
    /// started unless it exists.
    pub(super) async fn create_and_start(&self, launch: &Launch) -> Result<Handle, BackendError> {
        if launch.node != self.node.id {
            return Err(BackendError::NotFound {
                backend: BACKEND.to_owned(),
                what: format!(
                    "node {} (this Docker host is {})",
                    launch.node, self.node.id
                ),
            });
        }
        refuse_gpu_launch(BACKEND, launch, "GPU devices")?;
        self.check_task(&launch.task)?;
        let body = self.create_body(launch)?;
        let run = launch.run;
        let name = container_name(run);
        let handle = |id: String| Handle {
            run,
            node: launch.node,
            id,
        };
        let docker = self.client().await?;

        // Three rounds: a 409 means someone created the name between our
        // look-up and our create; the next look-up finds it.
        for _ in 0..3 {
            if let Some((id, state)) = self.find_run(docker, run).await? {
                if state == Some(ContainerSummaryStateEnum::CREATED) {
                    self.start(docker, &id, run).await?;
                }
                return Ok(handle(id));
            }
            let options = CreateContainerOptionsBuilder::new().name(&name).build();
            match docker.create_container(Some(options), body.clone()).await {
                Ok(created) => {
                    self.start(docker, &created.id, run).await?;
                    return Ok(handle(created.id));
                }
                Err(e) if is_name_conflict(&e) => continue,
                Err(DockerError::DockerResponseServerError {
                    status_code: 404,
                    message,
                }) => {
                    return Err(BackendError::Rejected {
                        backend: BACKEND.to_owned(),
                        operation: format!("create container {name} for {run}"),
                        detail: format!("image not on the host (it is not pulled): {message}"),
                    })
                }
                Err(e) => {
                    return Err(self.error("create", &format!("container {name} for {run}"), e))
                }
            }
        }
        Err(BackendError::Rejected {
            backend: BACKEND.to_owned(),
            operation: format!("create container {name} for {run}"),
            detail: "the name is taken by a container without this run's labels".to_owned(),
        })
    }

    /// [`stop`](lepton_core::backend::Backend::stop): stops the container, then removes it.
    pub(super) async fn stop_and_remove(&self, handle: &Handle) -> Result<(), BackendError> {
        let docker = self.client().await?;
        if self.inspect_owned(docker, handle, "stop").await?.is_none() {
            return Ok(());
        }
        let subject = format!("container {} of {}", handle.id, handle.run);
        self.set_stopping(&handle.id, true);
        let grace = whole_seconds(self.stop_timeout);
        // The request lasts as long as the grace period, plus the usual margin.
        let patient = docker.clone().with_timeout(Duration::from_secs(
            grace.saturating_add(whole_seconds(self.timeout).max(1)),
        ));
        let options = StopContainerOptionsBuilder::new()
            .t(i32::try_from(grace).unwrap_or(i32::MAX))
            .build();
        match patient.stop_container(&handle.id, Some(options)).await {
            Ok(()) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(self.error("stop", &subject, e)),
        }
        self.remove(docker, &handle.id).await?;
        self.set_stopping(&handle.id, false);
        self.forget_cpu_reading(&handle.id);
        Ok(())
    }

    /// What [`Backend::validate`](lepton_core::backend::Backend::validate)
    /// refuses: GPUs, no image (nor a default), a malformed image or
    /// command.
    pub(super) fn check_task(&self, task: &TaskSpec) -> Result<(), BackendError> {
        refuse_gpus(BACKEND, task, "GPU devices")?;
        validate_image(task_image(BACKEND, task, self.default_image.as_ref())?)?;
        if let Some(command) = task.config.get("command") {
            parse_command(BACKEND, command)?;
        }
        Ok(())
    }

    /// Everything `launch` sends, checked before any request is made.
    fn create_body(&self, launch: &Launch) -> Result<ContainerCreateBody, BackendError> {
        let task = &launch.task;
        let image = task_image(BACKEND, task, self.default_image.as_ref())?;
        validate_image(image)?;
        let command = match task.config.get("command") {
            Some(command) => parse_command(BACKEND, command)?,
            None => None,
        };

        let mut labels = HashMap::from([
            (LABEL_TASK.to_owned(), launch.run.task.0.to_string()),
            (LABEL_ATTEMPT.to_owned(), launch.run.attempt.to_string()),
            (LABEL_NODE.to_owned(), launch.node.0.to_string()),
        ]);
        if let Some(name) = &task.name {
            validate_label_value("task name", name)?;
            labels.insert(LABEL_NAME.to_owned(), name.clone());
        }

        let nano_cpus = nonzero_limit(task.request.cpu_milli, 1_000_000).map_err(|()| {
            invalid(
                BACKEND,
                "CPU request",
                task.request.cpu_milli.to_string(),
                "is too large for Docker's NanoCpus",
            )
        })?;
        let memory = nonzero_limit(task.request.memory_mib, MIB).map_err(|()| {
            invalid(
                BACKEND,
                "memory request",
                task.request.memory_mib.to_string(),
                "is too large for Docker's Memory limit",
            )
        })?;

        Ok(ContainerCreateBody {
            image: Some(image.clone()),
            cmd: command,
            labels: Some(labels),
            host_config: Some(HostConfig {
                nano_cpus,
                memory,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// The container holding `run`, if any, with its state. Labels are
    /// checked here too, not only by the daemon's filter.
    async fn find_run(
        &self,
        docker: &Docker,
        run: Run,
    ) -> Result<Option<(String, Option<ContainerSummaryStateEnum>)>, BackendError> {
        let task = format!("{LABEL_TASK}={}", run.task.0);
        let attempt = format!("{LABEL_ATTEMPT}={}", run.attempt);
        let containers = self
            .list_labelled(
                docker,
                vec![&task, &attempt],
                "list containers of",
                &run.to_string(),
            )
            .await?;
        Ok(containers
            .into_iter()
            .find(|c| c.labels.as_ref().and_then(labels_run) == Some(run))
            .and_then(|c| c.id.map(|id| (id, c.state))))
    }

    /// Starts a created container. A start the daemon refuses leaves a
    /// container that can never run, so it is removed; one that failed for
    /// lack of an answer is kept for the next launch to start.
    async fn start(&self, docker: &Docker, id: &str, run: Run) -> Result<(), BackendError> {
        let result = docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| self.error("start", &format!("container {id} of {run}"), e));
        if let Err(err) = &result {
            if !err.is_retryable() {
                let _ = self.remove(docker, id).await;
            }
        }
        result
    }

    /// Removes a container and its anonymous volumes; gone already is fine.
    async fn remove(&self, docker: &Docker, id: &str) -> Result<(), BackendError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.error("remove", &format!("container {id}"), e)),
        }
    }
}

/// An image reference: `[A-Za-z0-9._/:@-]`, 1 to 255 bytes.
fn validate_image(image: &str) -> Result<(), BackendError> {
    if image.is_empty() {
        return Err(invalid(BACKEND, "image", image, "is empty"));
    }
    if image.len() > MAX_IMAGE_BYTES {
        return Err(invalid(BACKEND, "image", image, "is longer than 255 bytes"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._/:@-".contains(c);
    if !image.chars().all(allowed) {
        return Err(invalid(
            BACKEND,
            "image",
            image,
            "may hold only letters, digits and . _ / : @ -",
        ));
    }
    Ok(())
}

/// A label value: free text without control characters, at most 1024 bytes.
fn validate_label_value(what: &'static str, value: &str) -> Result<(), BackendError> {
    if value.len() > MAX_LABEL_BYTES {
        return Err(invalid(BACKEND, what, value, "is longer than 1024 bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            BACKEND,
            what,
            value,
            "contains a control character",
        ));
    }
    Ok(())
}

/// `amount × unit` as a Docker limit; 0 means no limit.
fn nonzero_limit(amount: u64, unit: u64) -> Result<Option<i64>, ()> {
    if amount == 0 {
        return Ok(None);
    }
    amount
        .checked_mul(unit)
        .and_then(|v| i64::try_from(v).ok())
        .map(Some)
        .ok_or(())
}

/// Docker answers a taken name with 409; Podman with 500 and this message.
fn is_name_conflict(err: &DockerError) -> bool {
    match err {
        DockerError::DockerResponseServerError {
            status_code: 409, ..
        } => true,
        DockerError::DockerResponseServerError {
            status_code: 500,
            message,
        } => message.contains("is already in use"),
        _ => false,
    }
}

/// The run and node in a container's labels, if they are this backend's.
pub(super) fn labels_run(labels: &HashMap<String, String>) -> Option<Run> {
    Some(Run {
        task: TaskId(labels.get(LABEL_TASK)?.parse().ok()?),
        attempt: labels.get(LABEL_ATTEMPT)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use lepton_core::backend::Backend;
    use lepton_core::{NodeId, Resources, TaskSpec};

    use super::*;
    use crate::docker::testing::{backend, launch, sleeper};
    use crate::shared::testing::{assert_invalid, runtime};

    #[test]
    fn container_names_hold_only_numbers() {
        let run = Run {
            task: TaskId(7),
            attempt: 2,
        };
        assert_eq!(container_name(run), "lepton-t7-2");
        assert_eq!(run.to_string(), "t-7#2");
    }

    #[test]
    fn create_body_carries_labels_limits_and_argv() {
        let body = backend().create_body(&launch(sleeper())).expect("valid");
        assert_eq!(body.image.as_deref(), Some("localhost/busybox:latest"));
        assert_eq!(body.cmd, Some(vec!["sleep".to_owned(), "30".to_owned()]));
        let labels = body.labels.expect("labels");
        assert_eq!(labels[LABEL_TASK], "7");
        assert_eq!(labels[LABEL_ATTEMPT], "2");
        assert_eq!(labels[LABEL_NODE], "0");
        assert_eq!(labels[LABEL_NAME], "web frontend");
        let host = body.host_config.expect("host config");
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
    }

    #[test]
    fn zero_requests_set_no_limit_and_no_command_keeps_the_images() {
        let task = TaskSpec::new(TaskId(1), Resources::new(0, 0));
        let body = backend()
            .with_default_image("busybox")
            .create_body(&launch(task))
            .expect("valid");
        assert_eq!(body.image.as_deref(), Some("busybox"));
        assert_eq!(body.cmd, None);
        let host = body.host_config.expect("host config");
        assert_eq!((host.nano_cpus, host.memory), (None, None));
    }

    #[test]
    fn a_missing_image_without_default_assert_invalid() {
        let task = TaskSpec::new(TaskId(1), Resources::new(100, 0));
        assert_invalid(backend().create_body(&launch(task)), "image");
    }

    #[test]
    fn images_are_checked() {
        for good in [
            "busybox",
            "localhost/busybox:latest",
            "registry.example.com:5000/team/app@sha256:0123abcd",
        ] {
            assert!(validate_image(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "busy box",
            "busybox;rm -rf /",
            "busybox\n",
            "bück",
            &"a".repeat(256),
        ] {
            assert_invalid(validate_image(bad), "image");
        }
    }

    #[test]
    fn task_names_are_checked() {
        for bad in ["two\nlines", "nul\0", "bell\x07", &"x".repeat(1025)] {
            let task = sleeper().with_name(bad);
            assert_invalid(backend().create_body(&launch(task)), "task name");
        }
        let free_text = sleeper().with_name("Ünïcode, spaces & \"quotes\" = fine");
        assert!(backend().create_body(&launch(free_text)).is_ok());
        assert!(validate_label_value("task name", &"x".repeat(1024)).is_ok());
    }

    #[test]
    fn commands_are_split_and_checked() {
        assert_eq!(parse_command(BACKEND, "   ").expect("valid"), None);
        assert_eq!(
            parse_command(BACKEND, "sh -c 'echo hi'").expect("valid"),
            Some(
                vec!["sh", "-c", "'echo", "hi'"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )
        );
        assert_invalid(parse_command(BACKEND, "sleep\u{0}30"), "command");
    }

    #[test]
    fn oversized_requests_are_invalid() {
        let task =
            TaskSpec::new(TaskId(1), Resources::new(u64::MAX, 1)).with_config("image", "busybox");
        assert_invalid(backend().create_body(&launch(task)), "CPU request");
        let task = TaskSpec::new(TaskId(1), Resources::new(1, u64::MAX / 2))
            .with_config("image", "busybox");
        assert_invalid(backend().create_body(&launch(task)), "memory request");
    }

    #[test]
    fn launching_on_another_node_or_with_gpus_is_refused_before_any_request() {
        let rt = runtime();
        let backend = backend().with_node_id(NodeId(3));
        let mut other_node = launch(sleeper());
        other_node.node = NodeId(4);
        let err = rt
            .block_on(backend.launch(&other_node))
            .expect_err("wrong node");
        assert!(matches!(err, BackendError::NotFound { .. }), "{err}");

        let mut with_gpu = launch(sleeper());
        with_gpu.node = NodeId(3);
        with_gpu.gpus = [0].into_iter().collect();
        let err = rt.block_on(backend.launch(&with_gpu)).expect_err("gpus");
        assert!(matches!(err, BackendError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn a_missing_socket_is_unreachable_and_retryable() {
        let rt = runtime();
        let err = rt
            .block_on(backend().launch(&launch(sleeper())))
            .expect_err("no daemon");
        assert!(matches!(err, BackendError::Unreachable { .. }), "{err}");
        assert!(err.is_retryable());
    }
}
