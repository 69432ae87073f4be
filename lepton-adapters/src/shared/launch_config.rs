//! What a backend reads from a launch before it starts anything: the
//! task's image and command from its config, and whether it asks for GPUs
//! the backend cannot attach. Each refusal names the value and why.

use lepton_core::backend::{BackendError, Launch};
use lepton_core::TaskSpec;

#[cfg(any(feature = "docker", feature = "local", feature = "aws"))]
use crate::shared::errors::invalid;

/// What a task runs: the `image` in its config, or else the backend's
/// default; with neither, the task is refused.
#[cfg(any(feature = "docker", feature = "aws"))]
pub(crate) fn task_image<'a>(
    backend: &str,
    task: &'a TaskSpec,
    default: Option<&'a String>,
) -> Result<&'a String, BackendError> {
    task.config.get("image").or(default).ok_or_else(|| {
        invalid(
            backend,
            "image",
            "",
            "the task's config has no `image` and the backend no default image",
        )
    })
}

/// A task's `command` config as an argument vector: whitespace-separated
/// words, none holding a control character, never parsed by a shell. An
/// empty command is `None` (the image's own, for a container).
#[cfg(any(feature = "docker", feature = "local"))]
pub(crate) fn parse_command(
    backend: &str,
    command: &str,
) -> Result<Option<Vec<String>>, BackendError> {
    if command
        .chars()
        .any(|c| c.is_control() && !c.is_whitespace())
    {
        return Err(invalid(
            backend,
            "command",
            command,
            "contains a control character",
        ));
    }
    let argv: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    Ok((!argv.is_empty()).then_some(argv))
}

/// Refuses a launch given GPUs, or of a task that asks for them, which
/// `backend` does not offer (`devices` names what it would have had to
/// attach: "GPU devices").
pub(crate) fn refuse_gpu_launch(
    backend: &str,
    launch: &Launch,
    devices: &'static str,
) -> Result<(), BackendError> {
    if launch.gpus.is_empty() {
        refuse_gpus(backend, &launch.task, devices)
    } else {
        Err(unsupported(backend, devices))
    }
}

/// Refuses a task that asks for GPUs, which `backend` does not offer
/// (`devices` names what it would have had to attach: "GPU devices").
pub(crate) fn refuse_gpus(
    backend: &str,
    task: &TaskSpec,
    devices: &'static str,
) -> Result<(), BackendError> {
    if task.gpu.is_none() {
        Ok(())
    } else {
        Err(unsupported(backend, devices))
    }
}

fn unsupported(backend: &str, devices: &'static str) -> BackendError {
    BackendError::Unsupported {
        backend: backend.to_owned(),
        operation: devices,
    }
}
