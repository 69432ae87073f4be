//! The state on etcd v3 (`store = "etcd"`), for several instances of the
//! service of which one leads.
//!
//! Keys, under the configured prefix: `tasks/ID`, `runs/ID`, `finished/ID`
//! (JSON, ids zero-padded so keys sort by id), `cordoned/NODE`, `policy`,
//! and `leader` (the elected instance's address, on its lease; see
//! [`election`]). Writes are group-committed as in the embedded store, in
//! transactions of at most `max_txn_ops` operations, each conditional on
//! the writer's term: a deposed leader's write is refused by etcd.

pub(crate) mod election;
pub(crate) mod replica;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions, Txn, TxnOp,
};
use lepton::{NodeId, TaskId};
use tokio::sync::mpsc;

use crate::config::EtcdSection;
use crate::store::{decode, json, Change, Store, StoreError, Stored};
use election::Fence;

/// How long one request to etcd may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one try of a write, a renewal or a campaign may take before it
/// is tried again (on another member: the client balances requests over
/// the endpoints). A member cut off from its peers answers at once that it
/// has no leader (`require_leader`) or, before it knows, not at all.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long to wait before a request that a member could not serve is
/// tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Whether `error` says only that the member asked cannot serve now, so
/// that the request is worth trying again (on another member): gRPC's
/// `UNAVAILABLE`, which etcd answers when it has no leader ("no leader",
/// "leader changed", "request timed out") and the client reports for a
/// member it cannot connect to.
pub(crate) fn unavailable(error: &etcd_client::Error) -> bool {
    /// gRPC's status code `UNAVAILABLE`.
    const UNAVAILABLE: i32 = 14;
    match error {
        etcd_client::Error::GRpcStatus(status) => i32::from(status.code()) == UNAVAILABLE,
        _ => false,
    }
}

/// A client of the cluster `section` names, with its credentials and TLS.
///
/// # Errors
/// What is wrong, naming the endpoints or the file.
pub(crate) async fn connect(section: &EtcdSection) -> Result<Client, String> {
    // A member that lost its leader refuses at once rather than waiting out
    // etcd's own timeout: the request goes to another member instead.
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_require_leader(true);
    if let Some(user) = &section.user {
        let password = section
            .password
            .clone()
            .or_else(|| std::env::var("LEPTON_ETCD_PASSWORD").ok())
            .unwrap_or_default();
        options = options.with_user(user.clone(), password);
    }
    if section.ca.is_some() || section.cert.is_some() {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| format!("etcd: cannot read {}: {e}", path.display()))
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &section.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&section.cert, &section.key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(tls);
    }
    let failed = |e: String| format!("etcd {}: {e}", section.endpoints.join(","));
    let client = tokio::time::timeout(
        REQUEST_TIMEOUT,
        Client::connect(&section.endpoints, Some(options)),
    )
    .await
    .map_err(|_| failed(format!("no answer in {REQUEST_TIMEOUT:?}")))?
    .map_err(|e| failed(e.to_string()))?;
    // One read, so that a cluster that cannot be reached (or refuses the
    // TLS or the credentials) is an error now, not a silent retry later;
    // one member without a leader (cut off from the others) is not the
    // cluster.
    let key = format!("{}leader", section.prefix);
    answered(|| {
        let (mut client, key) = (client.clone(), key.clone());
        async move { client.get(key, None).await }
    })
    .await
    .map_err(failed)?;
    Ok(client)
}

/// What etcd answered to the request `ask` makes, made again while the
/// member asked cannot serve it ([`unavailable`], or no answer within
/// [`ATTEMPT_TIMEOUT`]): the client balances requests over the endpoints,
/// so the next try may go to another. Why there is no answer when etcd
/// refuses the request, or none came within [`REQUEST_TIMEOUT`].
async fn answered<T, F>(mut ask: impl FnMut() -> F) -> Result<T, String>
where
    F: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let started = std::time::Instant::now();
    loop {
        let error = match tokio::time::timeout(ATTEMPT_TIMEOUT, ask()).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(error)) if !unavailable(&error) => return Err(error.to_string()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer in {ATTEMPT_TIMEOUT:?}"),
        };
        if started.elapsed() >= REQUEST_TIMEOUT {
            return Err(error);
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// What the store's thread is asked.
enum Job {
    Write(Vec<Change>, std::sync::mpsc::SyncSender<Result<(), String>>),
    Check(std::sync::mpsc::SyncSender<Result<(), String>>),
    Load(std::sync::mpsc::SyncSender<Result<Stored, String>>),
}

/// The etcd store of one leader's term: every write is fenced by it.
#[derive(Debug)]
pub(crate) struct EtcdStore {
    name: String,
    jobs: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
    fence: Arc<Fence>,
}

impl EtcdStore {
    /// The store of the term `fence` on the cluster `section` names. It
    /// has a client of its own, on its own thread.
    ///
    /// # Errors
    /// [`StoreError`] when the thread cannot start or etcd cannot be
    /// reached.
    pub(crate) fn new(section: &EtcdSection, fence: Arc<Fence>) -> Result<EtcdStore, StoreError> {
        let name = format!("etcd {}", section.endpoints.join(","));
        let fail = |message: String| StoreError {
            path: name.clone(),
            message,
        };
        let (jobs, inbox) = mpsc::unbounded_channel();
        let (started, connected) = std::sync::mpsc::sync_channel(1);
        let section = section.clone();
        let writer_fence = Arc::clone(&fence);
        let thread = std::thread::Builder::new()
            .name("lepton-etcd".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return; // `started` drops: "the writer stopped".
                };
                runtime.block_on(async move {
                    let client = match connect(&section).await {
                        Ok(client) => client,
                        Err(error) => {
                            let _ = started.send(Err(error));
                            return;
                        }
                    };
                    let _ = started.send(Ok(()));
                    Writer {
                        client,
                        prefix: section.prefix.clone(),
                        max_txn_ops: section.max_txn_ops,
                        fence: writer_fence,
                    }
                    .run(inbox)
                    .await;
                });
            })
            .map_err(|e| fail(format!("cannot start the writer: {e}")))?;
        connected
            .recv()
            .map_err(|_| fail("the writer stopped".into()))?
            .map_err(fail)?;
        Ok(EtcdStore {
            name,
            jobs: Some(jobs),
            thread: Some(thread),
            fence,
        })
    }

    fn error(&self, message: impl ToString) -> StoreError {
        StoreError {
            path: self.name.clone(),
            message: message.to_string(),
        }
    }

    /// Hands `job` to the thread and waits for its answer.
    fn ask<T>(
        &self,
        job: impl FnOnce(std::sync::mpsc::SyncSender<Result<T, String>>) -> Job,
    ) -> Result<T, StoreError> {
        if let Some(why) = self.fence.ended() {
            return Err(self.error(not_leader(&why)));
        }
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .ok_or_else(|| self.error("closed"))?
            .send(job(reply))
            .map_err(|_| self.error("the writer stopped"))?;
        answer
            .recv()
            .map_err(|_| self.error("the writer stopped"))?
            .map_err(|e| self.error(e))
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Store for EtcdStore {
    fn apply(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.ask(|reply| Job::Write(changes, reply))
    }

    fn load(&self) -> Result<Stored, StoreError> {
        self.ask(Job::Load)
    }

    fn check(&self) -> Result<(), StoreError> {
        self.ask(Job::Check)
    }
}

fn not_leader(why: &str) -> String {
    format!("not the leader any more ({why}): nothing was written")
}

/// The store's thread: its own runtime, one batch at a time.
struct Writer {
    client: Client,
    prefix: String,
    max_txn_ops: usize,
    fence: Arc<Fence>,
}

impl Writer {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = inbox.recv().await {
            let mut writes = Vec::new();
            let mut waiting = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Write(changes, reply) => {
                        writes.extend(changes);
                        waiting.push(reply);
                    }
                    Job::Check(reply) => waiting.push(reply),
                    Job::Load(reply) => {
                        let _ = reply.send(self.load().await);
                    }
                }
                if writes.len() < 4_096 {
                    next = inbox.try_recv().ok();
                }
            }
            if waiting.is_empty() {
                continue;
            }
            let result = self.commit(writes).await;
            for reply in waiting {
                let _ = reply.send(result.clone());
            }
        }
    }

    fn key(&self, kind: &str, id: u64) -> String {
        format!("{}{kind}/{id:020}", self.prefix)
    }

    /// Writes `changes` in fenced transactions (one with no operation when
    /// there are none: the check that the term holds).
    async fn commit(&mut self, changes: Vec<Change>) -> Result<(), String> {
        // etcd refuses a key twice in one transaction: the last change of
        // each key is the one to write.
        let mut latest: BTreeMap<String, TxnOp> = BTreeMap::new();
        for change in &changes {
            // Each change: its key, and its value (none: the key goes).
            let (key, value) = match change {
                Change::Accepted(spec) => (self.key("tasks", spec.id.0), Some(json(spec))),
                Change::Run(handle) => (self.key("runs", handle.run.task.0), Some(json(handle))),
                Change::Finished(task, end) => (self.key("finished", task.0), Some(json(end))),
                Change::Cordoned(node, cordoned) => (
                    self.key("cordoned", node.0),
                    cordoned.then(|| b"1".to_vec()),
                ),
                Change::Policy(name) => (
                    format!("{}policy", self.prefix),
                    Some(name.clone().into_bytes()),
                ),
            };
            let op = match value {
                Some(value) => TxnOp::put(key.clone(), value, None),
                None => TxnOp::delete(key.clone(), None),
            };
            latest.insert(key, op);
        }
        let ops: Vec<TxnOp> = latest.into_values().collect();
        // The fence's compare counts as an operation.
        let per_txn = self.max_txn_ops.saturating_sub(1).max(1);
        let mut chunks: Vec<Vec<TxnOp>> = ops.chunks(per_txn).map(<[TxnOp]>::to_vec).collect();
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        for chunk in chunks {
            let txn = Txn::new().when([self.fence.compare()]).and_then(chunk);
            // Tried again while the term lasts: a put or delete of the
            // latest values applies the same however often it lands.
            let started = std::time::Instant::now();
            let answer = loop {
                let error =
                    match tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.txn(txn.clone())).await
                    {
                        Ok(Ok(answer)) => break answer,
                        Ok(Err(error)) => error.to_string(),
                        Err(_) => format!("no answer in {ATTEMPT_TIMEOUT:?}"),
                    };
                if started.elapsed() >= REQUEST_TIMEOUT || self.fence.ended().is_some() {
                    return Err(error);
                }
            };
            if !answer.succeeded() {
                let why = format!(
                    "another instance leads: the leader key is no longer term {}",
                    self.fence.revision()
                );
                self.fence.end(why.clone());
                return Err(not_leader(&why));
            }
        }
        Ok(())
    }

    /// Everything under the prefix, a page at a time.
    async fn load(&mut self) -> Result<Stored, String> {
        let mut stored = Stored::default();
        let end = prefix_end(self.prefix.as_bytes());
        let mut from = self.prefix.clone().into_bytes();
        loop {
            let page = answered(|| {
                let (mut client, from) = (self.client.clone(), from.clone());
                let options = GetOptions::new().with_range(end.clone()).with_limit(1_000);
                async move { client.get(from, Some(options)).await }
            })
            .await?;
            for kv in page.kvs() {
                let key = String::from_utf8_lossy(kv.key());
                let rest = &key[self.prefix.len().min(key.len())..];
                self.read(&mut stored, rest, kv.value())?;
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(stored),
            }
        }
    }

    /// Takes one key (without the prefix) into `stored`.
    fn read(&self, stored: &mut Stored, key: &str, value: &[u8]) -> Result<(), String> {
        if key == "policy" {
            stored.policy = Some(String::from_utf8_lossy(value).into_owned());
            return Ok(());
        }
        let Some((kind, id)) = key.split_once('/') else {
            return Ok(()); // `leader`, or keys of a later version.
        };
        let Ok(id) = id.parse::<u64>() else {
            return Err(format!("{}{key}: not an id", self.prefix));
        };
        match kind {
            "tasks" => {
                stored.tasks.insert(TaskId(id), decode("tasks", value)?);
            }
            "runs" => {
                stored.runs.insert(TaskId(id), decode("runs", value)?);
            }
            "finished" => {
                stored
                    .finished
                    .insert(TaskId(id), decode("finished", value)?);
            }
            "cordoned" => stored.cordoned.push(NodeId(id)),
            _ => {}
        }
        Ok(())
    }
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // Every key: etcd's "to the end".
}

#[cfg(test)]
mod tests {
    //! Against the real 3-member cluster of `bash scripts/backends.sh start
    //! etcd` (`LEPTON_ETCD_ENDPOINTS`); a missing cluster fails the tests.
    #![allow(clippy::unwrap_used)]

    use super::election::Election;
    use super::*;
    use crate::store::Finished;
    use etcd_client::PutOptions;
    use lepton::{Resources, TaskSpec};
    use tokio::sync::watch;

    fn section(name: &str) -> EtcdSection {
        let endpoints = std::env::var("LEPTON_ETCD_ENDPOINTS").unwrap_or_else(|_| {
            panic!(
                "LEPTON_ETCD_ENDPOINTS is not set: run `bash scripts/backends.sh start etcd` and \
                 `eval \"$(bash scripts/backends.sh env)\"` first"
            )
        });
        EtcdSection {
            endpoints: endpoints.split(',').map(str::to_owned).collect(),
            prefix: format!("/lepton-test-{name}-{}/", std::process::id()),
            lease_ttl_s: 5,
            max_txn_ops: 8,
            ..EtcdSection::default()
        }
    }

    fn election(section: &EtcdSection, me: &str) -> Election {
        Election {
            key: format!("{}leader", section.prefix),
            advertise: me.to_owned(),
            ttl: Duration::from_secs(section.lease_ttl_s),
        }
    }

    /// The store of the term `fence` (made off the runtime: it blocks).
    async fn store_of(section: &EtcdSection, fence: &Arc<Fence>) -> Arc<EtcdStore> {
        let (section, fence) = (section.clone(), Arc::clone(fence));
        let store = tokio::task::spawn_blocking(move || EtcdStore::new(&section, fence).unwrap());
        Arc::new(store.await.unwrap())
    }

    fn spec(id: u64) -> Change {
        Change::Accepted(Box::new(TaskSpec::new(TaskId(id), Resources::new(10, 1))))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_the_leader_writes_in_many_transactions_is_loaded_back() {
        let section = section("roundtrip");
        let client = connect(&section).await.unwrap();
        let (leader, _) = watch::channel(None);
        let fence = election(&section, "http://a")
            .campaign(&client, &leader)
            .await;
        let store = store_of(&section, &fence).await;
        let writer = Arc::clone(&store);
        let stored = tokio::task::spawn_blocking(move || {
            // 30 tasks with max_txn_ops = 8: several fenced transactions.
            writer.apply((1..=30).map(spec).collect()).unwrap();
            writer
                .apply(vec![
                    Change::Finished(
                        TaskId(7),
                        Finished {
                            state: "failed".into(),
                            attempts: 2,
                            reasons: vec!["exit code 3".into()],
                        },
                    ),
                    Change::Cordoned(NodeId(4), true),
                    Change::Cordoned(NodeId(5), true),
                    Change::Cordoned(NodeId(5), false),
                    Change::Policy("spread".into()),
                ])
                .unwrap();
            writer.check().unwrap();
            writer.load().unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            stored.tasks.keys().map(|t| t.0).collect::<Vec<_>>(),
            (1..=30).collect::<Vec<_>>()
        );
        assert_eq!(stored.finished[&TaskId(7)].reasons, vec!["exit code 3"]);
        assert_eq!(stored.cordoned, vec![NodeId(4)]);
        assert_eq!(stored.policy.as_deref(), Some("spread"));
        Election::resign(&client, &fence).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_instance_restarted_before_its_old_lease_lapsed_names_no_leader_then_leads() {
        let section = section("restarted");
        let mut client = connect(&section).await.unwrap();
        let key = format!("{}leader", section.prefix);
        // Its previous run's key, on a lease still running.
        let lease = client.lease_grant(30, None).await.unwrap().id();
        client
            .put(
                key.as_str(),
                "http://me",
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .unwrap();
        let (leader, seen) = watch::channel(Some("stale".to_owned()));
        let me = election(&section, "http://me");
        let campaign = me.campaign(&client, &leader);
        tokio::pin!(campaign);
        tokio::select! {
            _ = &mut campaign => panic!("elected while the old key holds"),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        // Not "leader is http://me" (itself, as a follower): none yet.
        assert_eq!(*seen.borrow(), None);
        client.clone().lease_revoke(lease).await.unwrap();
        let fence = tokio::time::timeout(Duration::from_secs(5), campaign)
            .await
            .expect("elected once the old lease is gone");
        Election::resign(&client, &fence).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fencing_refuses_a_deposed_leaders_writes_in_etcd_itself() {
        let section = section("fencing");
        let client = connect(&section).await.unwrap();
        let (leader, _) = watch::channel(None);
        let first = election(&section, "http://first")
            .campaign(&client, &leader)
            .await;
        let store = store_of(&section, &first).await;
        let writer = Arc::clone(&store);
        tokio::task::spawn_blocking(move || writer.apply(vec![spec(1)]).unwrap())
            .await
            .unwrap();

        // Its lease lapses behind its back (as when it is paused past the
        // TTL): the key goes, and a second instance is elected. The first
        // still believes its local deadline.
        client.clone().lease_revoke(first.lease()).await.unwrap();
        let second = election(&section, "http://second")
            .campaign(&client, &leader)
            .await;
        let key = client
            .clone()
            .get(format!("{}leader", section.prefix), None)
            .await
            .unwrap();
        assert_eq!(key.kvs()[0].value(), b"http://second");
        assert!(second.revision() > first.revision());

        let writer = Arc::clone(&store);
        let refused = tokio::task::spawn_blocking(move || writer.apply(vec![spec(2)]))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            refused.to_string().contains("not the leader any more"),
            "{refused}"
        );
        // The term is over for it, and etcd holds only what it wrote while
        // it led.
        assert!(first.ended().is_some());
        let second_store = store_of(&section, &second).await;
        let stored = tokio::task::spawn_blocking(move || second_store.load().unwrap())
            .await
            .unwrap();
        assert_eq!(
            stored.tasks.keys().map(|t| t.0).collect::<Vec<_>>(),
            vec![1]
        );
        // And it checks nothing more true: a check is refused too.
        let writer = Arc::clone(&store);
        assert!(tokio::task::spawn_blocking(move || writer.check())
            .await
            .unwrap()
            .is_err());
        Election::resign(&client, &second).await;
    }
}
