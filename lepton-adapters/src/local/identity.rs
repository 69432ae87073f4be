//! Who a run's command runs as, and what it sees of the backend's process.
//!
//! A backend running as root runs each command as an unprivileged user
//! (`nobody` by default, as Nomad's `exec` driver does): the wrapper joins
//! the run's cgroups as root, then starts the command through `setpriv`
//! with that user's uid and gid, no supplementary groups and
//! `no_new_privs` (a setuid binary cannot give root back). The user cannot
//! write the cgroup files, so it cannot leave its group or raise its
//! limits. A backend not running as root cannot switch users: its commands
//! run as itself, and [`LocalBackend::isolation`](super::LocalBackend::isolation)
//! says so.
//!
//! Whoever it runs as, a command gets a clean environment: `PATH`,
//! `LEPTON_TASK` and `LEPTON_RUN`, and the variables the task declares as
//! `env.NAME` config keys — nothing of the backend's own (a service's
//! `LEPTON_TOKEN` among it).

use std::collections::BTreeMap;

use lepton_core::backend::BackendError;
use lepton_core::TaskSpec;

use crate::shared::errors::invalid;

use super::BACKEND;

/// The `PATH` a command starts with, unless the task declares its own.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A config key naming an environment variable: `env.NAME`.
const ENV_PREFIX: &str = "env.";

/// The user commands run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// Switched to this user (the backend runs as root).
    User {
        name: String,
        uid: u32,
        gid: u32,
        /// util-linux's `setpriv`, by its absolute path (a task may set
        /// its own `PATH`).
        setpriv: String,
    },
    /// The backend's own user; `why` it did not switch.
    Own { uid: u32, why: String },
}

impl Identity {
    /// The identity for `user` (`None`: the backend's own).
    ///
    /// # Errors
    /// [`BackendError::Invalid`] for a user this machine does not have.
    pub(crate) fn resolve(user: Option<&str>) -> Result<Identity, BackendError> {
        let own = nix::unistd::geteuid().as_raw();
        let Some(name) = user else {
            return Ok(Identity::Own {
                uid: own,
                why: "no user configured".into(),
            });
        };
        let found = nix::unistd::User::from_name(name)
            .map_err(|e| BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: format!("look up user {name:?}"),
                detail: e.to_string(),
            })?
            .ok_or_else(|| invalid(BACKEND, "user", name, "a user of this machine"))?;
        let uid = found.uid.as_raw();
        if own != 0 || uid == own {
            let why = if uid == own {
                format!("{name} is this process's own user")
            } else {
                format!("not running as root, so cannot switch to {name}")
            };
            return Ok(Identity::Own { uid: own, why });
        }
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .ok_or_else(|| BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: format!("run tasks as {name}"),
                detail: "setpriv (util-linux) is not installed".into(),
            })?;
        Ok(Identity::User {
            name: name.to_owned(),
            uid,
            gid: found.gid.as_raw(),
            setpriv: setpriv.to_owned(),
        })
    }

    /// What a command is started with before its own argv.
    pub(crate) fn prefix(&self) -> Vec<String> {
        match self {
            Identity::User {
                uid, gid, setpriv, ..
            } => vec![
                setpriv.clone(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--no-new-privs".into(),
                "--".into(),
            ],
            Identity::Own { .. } => Vec::new(),
        }
    }

    /// Says who commands run as, and why.
    pub(crate) fn describe(&self) -> String {
        match self {
            Identity::User { name, uid, .. } => {
                format!("tasks run as {name} (uid {uid}), without supplementary groups")
            }
            Identity::Own { uid, why } => {
                format!("tasks run as this process's user (uid {uid}): {why}")
            }
        }
    }
}

/// The environment of `task`'s command, but for `LEPTON_RUN` (set by the
/// wrapper's caller): `PATH`, `LEPTON_TASK` and its `env.NAME` keys.
///
/// # Errors
/// [`BackendError::Invalid`] for a name that is not a variable name, or one
/// of the reserved `LEPTON_` names.
pub(crate) fn environment(task: &TaskSpec) -> Result<BTreeMap<String, String>, BackendError> {
    let mut env = BTreeMap::from([
        ("PATH".to_owned(), PATH.to_owned()),
        ("LEPTON_TASK".to_owned(), task.id.0.to_string()),
    ]);
    for (key, value) in &task.config {
        let Some(name) = key.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(invalid(
                BACKEND,
                "config key",
                key.clone(),
                "env.NAME with NAME a variable name ([A-Za-z_][A-Za-z0-9_]*)",
            ));
        }
        if name.starts_with("LEPTON_") {
            return Err(invalid(
                BACKEND,
                "config key",
                key.clone(),
                "env.NAME with NAME not starting with LEPTON_ (reserved for the backend)",
            ));
        }
        env.insert(name.to_owned(), value.clone());
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lepton_core::{Resources, TaskId};

    #[test]
    fn a_task_declares_its_variables_and_none_of_the_reserved_ones() {
        let task = TaskSpec::new(TaskId(7), Resources::new(1, 1))
            .with_config("command", "env")
            .with_config("env.GREETING", "hello")
            .with_config("env.PATH", "/opt/bin");
        let env = environment(&task).unwrap();
        assert_eq!(env["GREETING"], "hello");
        assert_eq!(env["PATH"], "/opt/bin");
        assert_eq!(env["LEPTON_TASK"], "7");
        assert_eq!(env.len(), 3);
        for bad in ["env.LEPTON_TOKEN", "env.1X", "env.A-B", "env."] {
            let task = TaskSpec::new(TaskId(7), Resources::new(1, 1)).with_config(bad, "x");
            let error = environment(&task).unwrap_err().to_string();
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }

    #[test]
    fn an_unknown_user_is_named() {
        let error = Identity::resolve(Some("no-such-user-lepton"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no-such-user-lepton"), "{error}");
    }

    #[test]
    fn root_switches_to_the_user_and_others_say_why_not() {
        let identity = Identity::resolve(Some("nobody")).unwrap();
        if nix::unistd::geteuid().is_root() {
            assert!(matches!(&identity, Identity::User { name, .. } if name == "nobody"));
            assert!(identity.prefix()[0].ends_with("/setpriv"));
        } else {
            assert!(
                identity.describe().contains("not running as root"),
                "{identity:?}"
            );
            assert!(identity.prefix().is_empty());
        }
        let own = Identity::resolve(None).unwrap();
        assert!(own.prefix().is_empty());
    }
}
