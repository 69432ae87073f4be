//! CPU and memory limits through cgroups: v2 where its unified hierarchy
//! offers the `cpu` and `memory` controllers, else v1's `cpu` and `memory`
//! hierarchies (hybrid machines, such as this project's, offer only those),
//! else none — which the backend says, as a node label and at start.

use std::path::{Path, PathBuf};

/// Where runs' groups are created, under each hierarchy.
const GROUP: &str = "lepton";

/// The CFS period used for CPU quotas, in microseconds.
const PERIOD_US: u64 = 100_000;

/// The cgroup layout found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cgroups {
    /// The unified hierarchy, with `cpu` and `memory` enabled for children
    /// of `root` (the `lepton` group).
    V2 { root: PathBuf },
    /// The `cpu` and `memory` hierarchies, each with a `lepton` group.
    V1 { cpu: PathBuf, memory: PathBuf },
}

impl Cgroups {
    /// Finds a writable cgroup layout with CPU and memory controllers, and
    /// creates the `lepton` group in it. `Err` says why there is none.
    pub(crate) fn detect(mount: &Path) -> Result<Cgroups, String> {
        match Self::detect_v2(mount) {
            Ok(found) => Ok(found),
            Err(v2) => {
                Self::detect_v1(mount).map_err(|v1| format!("cgroup v2: {v2}; cgroup v1: {v1}"))
            }
        }
    }

    fn detect_v2(mount: &Path) -> Result<Cgroups, String> {
        // Pure v2 mounts at the root; hybrid machines mount it at `unified`.
        let candidates = [mount.to_path_buf(), mount.join("unified")];
        let mut why = String::from("no cgroup2 hierarchy");
        for base in candidates {
            let Ok(controllers) = std::fs::read_to_string(base.join("cgroup.controllers")) else {
                continue;
            };
            let offered: Vec<&str> = controllers.split_whitespace().collect();
            if !(offered.contains(&"cpu") && offered.contains(&"memory")) {
                why = format!(
                    "{} offers controllers [{}], not cpu and memory",
                    base.display(),
                    offered.join(" ")
                );
                continue;
            }
            let root = base.join(GROUP);
            create_dir(&root)?;
            // Children of the root get cpu and memory; the parent must
            // delegate them first.
            write(&base.join("cgroup.subtree_control"), "+cpu +memory")?;
            write(&root.join("cgroup.subtree_control"), "+cpu +memory")?;
            return Ok(Cgroups::V2 { root });
        }
        Err(why)
    }

    fn detect_v1(mount: &Path) -> Result<Cgroups, String> {
        let cpu = mount.join("cpu");
        let memory = mount.join("memory");
        for hierarchy in [&cpu, &memory] {
            if !hierarchy.join("cgroup.procs").exists() {
                return Err(format!("no hierarchy at {}", hierarchy.display()));
            }
        }
        let (cpu, memory) = (cpu.join(GROUP), memory.join(GROUP));
        create_dir(&cpu)?;
        create_dir(&memory)?;
        Ok(Cgroups::V1 { cpu, memory })
    }

    /// `v1` or `v2`.
    pub(crate) fn version(&self) -> &'static str {
        match self {
            Cgroups::V2 { .. } => "v2",
            Cgroups::V1 { .. } => "v1",
        }
    }

    /// Creates the group `name` with these limits (0: none) and returns the
    /// `cgroup.procs` files a process writes its pid to, to join it.
    pub(crate) fn create(
        &self,
        name: &str,
        cpu_milli: u64,
        memory_mib: u64,
    ) -> Result<Vec<PathBuf>, String> {
        let quota = (cpu_milli > 0).then(|| (cpu_milli * PERIOD_US / 1_000).max(1_000));
        let bytes = (memory_mib > 0).then(|| memory_mib.saturating_mul(1 << 20));
        match self {
            Cgroups::V2 { root } => {
                let group = root.join(name);
                create_dir(&group)?;
                if let Some(quota) = quota {
                    write(&group.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?;
                }
                if let Some(bytes) = bytes {
                    write(&group.join("memory.max"), &bytes.to_string())?;
                }
                Ok(vec![group.join("cgroup.procs")])
            }
            Cgroups::V1 { cpu, memory } => {
                let (cpu, memory) = (cpu.join(name), memory.join(name));
                create_dir(&cpu)?;
                create_dir(&memory)?;
                if let Some(quota) = quota {
                    write(&cpu.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                    write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                if let Some(bytes) = bytes {
                    write(&memory.join("memory.limit_in_bytes"), &bytes.to_string())?;
                }
                Ok(vec![cpu.join("cgroup.procs"), memory.join("cgroup.procs")])
            }
        }
    }

    /// Removes the group `name` (its processes must have ended); a group
    /// already gone is fine.
    pub(crate) fn remove(&self, name: &str) {
        for group in self.groups(name) {
            // A group is removed with rmdir, never by deleting its files.
            let _ = std::fs::remove_dir(group);
        }
    }

    /// The processes in group `name` (all of its hierarchies).
    pub(crate) fn members(&self, name: &str) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .groups(name)
            .iter()
            .filter_map(|group| std::fs::read_to_string(group.join("cgroup.procs")).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|line| line.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Whether the kernel's OOM killer killed a process of group `name`.
    pub(crate) fn oom_killed(&self, name: &str) -> bool {
        let file = match self {
            Cgroups::V2 { root } => root.join(name).join("memory.events"),
            Cgroups::V1 { memory, .. } => memory.join(name).join("memory.oom_control"),
        };
        std::fs::read_to_string(file).is_ok_and(|text| {
            text.lines().any(|line| {
                line.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
    }

    /// The memory limit of group `name` as the kernel holds it, in bytes.
    pub(crate) fn memory_limit(&self, name: &str) -> Option<u64> {
        let file = match self {
            Cgroups::V2 { root } => root.join(name).join("memory.max"),
            Cgroups::V1 { memory, .. } => memory.join(name).join("memory.limit_in_bytes"),
        };
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// The directories of group `name`, one per hierarchy.
    fn groups(&self, name: &str) -> Vec<PathBuf> {
        match self {
            Cgroups::V2 { root } => vec![root.join(name)],
            Cgroups::V1 { cpu, memory } => vec![cpu.join(name), memory.join(name)],
        }
    }
}

fn create_dir(path: &Path) -> Result<(), String> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}
