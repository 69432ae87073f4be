//! Durable state: what the service has accepted and decided, so that a
//! restart after a crash carries on.
//!
//! [`Store`] is the interface; [`EmbeddedStore`] its default, a redb file
//! that needs no server. Writes are group-committed: every change handed in
//! while a commit is under way goes into the next one, so durability costs
//! one disk sync per batch, not per task. A call returns once its changes
//! are durable (with `durable = false`, once they are written, not synced).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use lepton::backend::Handle;
use lepton::{NodeId, TaskId, TaskSpec};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// A task's end, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// `completed`, `failed` or `cancelled`.
    pub state: String,
    /// Runs it had.
    pub attempts: u32,
    /// Why its runs failed, oldest first.
    pub reasons: Vec<String>,
}

/// One change to the stored state.
#[derive(Debug, Clone)]
pub enum Change {
    /// A task was accepted.
    Accepted(Box<TaskSpec>),
    /// A task's latest run (launched, or adopted).
    Run(Handle),
    /// A task ended.
    Finished(TaskId, Finished),
    /// A node was cordoned (`true`) or uncordoned.
    Cordoned(NodeId, bool),
    /// The policy now in use.
    Policy(String),
}

/// Everything stored, as loaded at start.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// Accepted tasks, by id.
    pub tasks: BTreeMap<TaskId, TaskSpec>,
    /// Each task's latest run.
    pub runs: BTreeMap<TaskId, Handle>,
    /// Tasks that ended.
    pub finished: BTreeMap<TaskId, Finished>,
    /// Cordoned nodes.
    pub cordoned: Vec<NodeId>,
    /// The policy, if one was set.
    pub policy: Option<String>,
}

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
#[error("store {path}: {message}")]
pub struct StoreError {
    /// The store's file.
    pub path: String,
    /// What failed.
    pub message: String,
}

/// Where the service keeps its state. Implement it to keep it elsewhere
/// (the embedded store is the default; a distributed one can take its
/// place).
pub trait Store: Send + Sync {
    /// Applies `changes` and returns once they are durable.
    ///
    /// # Errors
    /// [`StoreError`] when they could not be written; none of them is then
    /// acknowledged.
    fn apply(&self, changes: Vec<Change>) -> Result<(), StoreError>;

    /// Everything stored.
    ///
    /// # Errors
    /// [`StoreError`] when the state cannot be read.
    fn load(&self) -> Result<Stored, StoreError>;

    /// Whether this instance may still write: asked before every step of
    /// the control loop, so that an instance that lost the right (a
    /// deposed leader of a shared store) launches nothing more. A store of
    /// its own always may.
    ///
    /// # Errors
    /// [`StoreError`] saying why it may not.
    fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

const TASKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("tasks");
const RUNS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("runs");
const FINISHED: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("finished");
const CORDONED: TableDefinition<'_, u64, bool> = TableDefinition::new("cordoned");
const META: TableDefinition<'_, &str, &str> = TableDefinition::new("meta");

/// A batch waiting for the writer, and whom to tell.
type Request = (Vec<Change>, mpsc::SyncSender<Result<(), String>>);

/// The embedded store: one redb file, written by one thread that commits
/// every pending batch at once.
#[derive(Debug)]
pub struct EmbeddedStore {
    path: String,
    database: std::sync::Arc<Database>,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`; `durable` syncs each commit
    /// to disk (off: faster, and a machine crash may lose the last
    /// commits; a process crash loses nothing).
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or created.
    pub fn open(path: &Path, durable: bool) -> Result<EmbeddedStore, StoreError> {
        let name = path.display().to_string();
        let fail = |message: String| StoreError {
            path: name.clone(),
            message,
        };
        let database = Database::create(path).map_err(|e| fail(e.to_string()))?;
        // The state is the service's alone.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| fail(e.to_string()))?;
        // Every table exists from the start, so reads never miss one.
        let setup = database.begin_write().map_err(|e| fail(e.to_string()))?;
        {
            setup.open_table(TASKS).map_err(|e| fail(e.to_string()))?;
            setup.open_table(RUNS).map_err(|e| fail(e.to_string()))?;
            setup
                .open_table(FINISHED)
                .map_err(|e| fail(e.to_string()))?;
            setup
                .open_table(CORDONED)
                .map_err(|e| fail(e.to_string()))?;
            setup.open_table(META).map_err(|e| fail(e.to_string()))?;
        }
        setup.commit().map_err(|e| fail(e.to_string()))?;
        let database = std::sync::Arc::new(database);
        let (requests, inbox) = mpsc::channel::<Request>();
        let writer_db = std::sync::Arc::clone(&database);
        let writer = std::thread::Builder::new()
            .name("lepton-store".into())
            .spawn(move || write_loop(&writer_db, &inbox, durable))
            .map_err(|e| fail(format!("cannot start the writer: {e}")))?;
        Ok(EmbeddedStore {
            path: name,
            database,
            requests: Some(requests),
            writer: Some(writer),
        })
    }

    fn error(&self, message: impl ToString) -> StoreError {
        StoreError {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has written all.
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Commits every batch waiting, one transaction for all of them.
fn write_loop(database: &Database, inbox: &mpsc::Receiver<Request>, durable: bool) {
    while let Ok(first) = inbox.recv() {
        let mut batch = vec![first];
        while let Ok(more) = inbox.try_recv() {
            batch.push(more);
            if batch.len() >= 4_096 {
                break;
            }
        }
        let result = commit(database, &batch, durable);
        for (_, reply) in batch {
            let _ = reply.send(result.clone());
        }
    }
}

fn commit(database: &Database, batch: &[Request], durable: bool) -> Result<(), String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let mut txn = database.begin_write().map_err(|e| text(&e))?;
    txn.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    });
    {
        let mut tasks = txn.open_table(TASKS).map_err(|e| text(&e))?;
        let mut runs = txn.open_table(RUNS).map_err(|e| text(&e))?;
        let mut finished = txn.open_table(FINISHED).map_err(|e| text(&e))?;
        let mut cordoned = txn.open_table(CORDONED).map_err(|e| text(&e))?;
        let mut meta = txn.open_table(META).map_err(|e| text(&e))?;
        for change in batch.iter().flat_map(|(changes, _)| changes) {
            let written = match change {
                Change::Accepted(spec) => tasks.insert(spec.id.0, json(spec).as_slice()).map(drop),
                Change::Run(handle) => runs
                    .insert(handle.run.task.0, json(handle).as_slice())
                    .map(drop),
                Change::Finished(task, end) => {
                    finished.insert(task.0, json(end).as_slice()).map(drop)
                }
                Change::Cordoned(node, true) => cordoned.insert(node.0, true).map(drop),
                Change::Cordoned(node, false) => cordoned.remove(node.0).map(drop),
                Change::Policy(name) => meta.insert("policy", name.as_str()).map(drop),
            };
            written.map_err(|e| text(&e))?;
        }
    }
    txn.commit().map_err(|e| text(&e))
}

/// Serializes what the service itself built; it always serializes.
pub(crate) fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Reads back what [`json`] wrote; `what` names it in the error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{what}: {e}"))
}

impl Store for EmbeddedStore {
    fn apply(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .as_ref()
            .ok_or_else(|| self.error("closed"))?
            .send((changes, reply))
            .map_err(|_| self.error("the writer stopped"))?;
        answer
            .recv()
            .map_err(|_| self.error("the writer stopped"))?
            .map_err(|e| self.error(e))
    }

    fn load(&self) -> Result<Stored, StoreError> {
        let txn = self.database.begin_read().map_err(|e| self.error(e))?;
        let mut stored = Stored::default();
        let read = |name: &str, e: &dyn std::fmt::Display| self.error(format!("{name}: {e}"));
        let table = txn.open_table(TASKS).map_err(|e| read("tasks", &e))?;
        for entry in table.iter().map_err(|e| read("tasks", &e))? {
            let (key, value) = entry.map_err(|e| read("tasks", &e))?;
            let spec: TaskSpec = decode("tasks", value.value()).map_err(|e| self.error(e))?;
            stored.tasks.insert(TaskId(key.value()), spec);
        }
        let table = txn.open_table(RUNS).map_err(|e| read("runs", &e))?;
        for entry in table.iter().map_err(|e| read("runs", &e))? {
            let (key, value) = entry.map_err(|e| read("runs", &e))?;
            let handle: Handle = decode("runs", value.value()).map_err(|e| self.error(e))?;
            stored.runs.insert(TaskId(key.value()), handle);
        }
        let table = txn.open_table(FINISHED).map_err(|e| read("finished", &e))?;
        for entry in table.iter().map_err(|e| read("finished", &e))? {
            let (key, value) = entry.map_err(|e| read("finished", &e))?;
            let end: Finished = decode("finished", value.value()).map_err(|e| self.error(e))?;
            stored.finished.insert(TaskId(key.value()), end);
        }
        let table = txn.open_table(CORDONED).map_err(|e| read("cordoned", &e))?;
        for entry in table.iter().map_err(|e| read("cordoned", &e))? {
            let (key, _) = entry.map_err(|e| read("cordoned", &e))?;
            stored.cordoned.push(NodeId(key.value()));
        }
        let table = txn.open_table(META).map_err(|e| read("meta", &e))?;
        stored.policy = table
            .get("policy")
            .map_err(|e| read("meta", &e))?
            .map(|v| v.value().to_owned());
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lepton::{Resources, Run};

    fn path(name: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("lepton-store-{name}-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn what_was_applied_is_loaded_after_a_reopen() {
        let path = path("reopen");
        let spec = TaskSpec::new(TaskId(3), Resources::new(100, 16)).with_config("command", "true");
        let handle = Handle {
            run: Run {
                task: TaskId(3),
                attempt: 2,
            },
            node: NodeId(0),
            id: "1234".into(),
        };
        {
            let store = EmbeddedStore::open(&path, true).expect("open");
            store
                .apply(vec![
                    Change::Accepted(Box::new(spec.clone())),
                    Change::Run(handle.clone()),
                    Change::Cordoned(NodeId(4), true),
                    Change::Cordoned(NodeId(5), true),
                    Change::Cordoned(NodeId(5), false),
                    Change::Policy("spread".into()),
                ])
                .expect("apply");
            store
                .apply(vec![Change::Finished(
                    TaskId(3),
                    Finished {
                        state: "completed".into(),
                        attempts: 2,
                        reasons: vec!["exit code 1".into()],
                    },
                )])
                .expect("apply");
        }
        let store = EmbeddedStore::open(&path, true).expect("reopen");
        let stored = store.load().expect("load");
        assert_eq!(
            stored
                .tasks
                .get(&TaskId(3))
                .map(|t| serde_json::to_string(t).unwrap()),
            Some(serde_json::to_string(&spec).unwrap())
        );
        assert_eq!(stored.runs.get(&TaskId(3)), Some(&handle));
        assert_eq!(stored.finished[&TaskId(3)].attempts, 2);
        assert_eq!(stored.cordoned, vec![NodeId(4)]);
        assert_eq!(stored.policy.as_deref(), Some("spread"));
    }

    #[test]
    fn concurrent_batches_are_all_committed() {
        let path = path("concurrent");
        let store = std::sync::Arc::new(EmbeddedStore::open(&path, true).expect("open"));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let store = std::sync::Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..50u64 {
                        let id = TaskId(t * 1_000 + i);
                        let spec = TaskSpec::new(id, Resources::new(1, 1));
                        store
                            .apply(vec![Change::Accepted(Box::new(spec))])
                            .expect("apply");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("a writer thread");
        }
        assert_eq!(store.load().expect("load").tasks.len(), 400);
    }
}
