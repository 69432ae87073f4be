//! Leader election on an etcd lease, and the fence every write of the
//! leader carries.
//!
//! The leader is whoever created the key `PREFIX/leader`, attached to its
//! lease: the key goes when the lease lapses (the leader died, paused or
//! lost etcd), and the first instance to create it again leads. The key's
//! create revision is the term: every transaction of a leader compares it,
//! so a deposed leader's writes are refused by etcd itself, whatever the
//! deposed leader believes. Renewals every third of the TTL also give the
//! leader a local deadline (taken before each renewal is sent, on the
//! monotonic clock, which runs on while a process is paused): past it, the
//! instance stops acting before etcd is even asked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::{info, warn};

/// One leader's term: its lease, the revision that created the leader key,
/// and whether it still holds.
#[derive(Debug)]
pub(crate) struct Fence {
    key: Vec<u8>,
    lease: i64,
    revision: i64,
    deadline: Mutex<Instant>,
    lost: watch::Sender<Option<String>>,
}

impl Fence {
    /// The condition of every write: the leader key is still the one this
    /// term created.
    pub(crate) fn compare(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareOp::Equal, self.revision)
    }

    /// The term's revision.
    pub(crate) fn revision(&self) -> i64 {
        self.revision
    }

    /// The term's lease.
    #[cfg(test)]
    pub(crate) fn lease(&self) -> i64 {
        self.lease
    }

    /// Why the term ended, or `None` while it holds (the lease's local
    /// deadline not passed, nothing refused).
    pub(crate) fn ended(&self) -> Option<String> {
        if let Some(why) = self.lost.borrow().clone() {
            return Some(why);
        }
        if Instant::now() >= *self.deadline.lock() {
            self.end("the lease was not renewed before its deadline".into());
            return self.lost.borrow().clone();
        }
        None
    }

    /// Ends the term (once; the first reason is kept).
    pub(crate) fn end(&self, why: String) {
        self.lost.send_if_modified(|lost| {
            if lost.is_some() {
                return false;
            }
            warn!(revision = self.revision, reason = %why, "leadership lost");
            *lost = Some(why);
            true
        });
    }

    /// Resolves once the term has ended.
    pub(crate) async fn lost(&self) {
        let mut lost = self.lost.subscribe();
        // The sender lives in `self`: `wait_for` ends only when it holds.
        let _ = lost.wait_for(Option::is_some).await;
    }
}

/// The election's settings.
#[derive(Debug, Clone)]
pub(crate) struct Election {
    pub(crate) key: String,
    /// What this instance writes as the leader's address.
    pub(crate) advertise: String,
    pub(crate) ttl: Duration,
}

impl Election {
    /// How often a follower looks whether the key is gone.
    fn poll(&self) -> Duration {
        (self.ttl / 20).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// Waits until this instance leads, publishing the current leader's
    /// address in `leader` meanwhile (and none once elected: the caller
    /// names itself when it serves as the leader); starts renewing the
    /// lease.
    pub(crate) async fn campaign(
        &self,
        client: &Client,
        leader: &watch::Sender<Option<String>>,
    ) -> Arc<Fence> {
        let mut client = client.clone();
        let mut logged = false;
        loop {
            let attempt = tokio::time::timeout(super::ATTEMPT_TIMEOUT, self.try_lead(&mut client));
            let attempt = attempt.await.unwrap_or_else(|_| {
                Err(etcd_client::Error::InvalidArgs(format!(
                    "no answer in {:?}",
                    super::ATTEMPT_TIMEOUT
                )))
            });
            match attempt {
                Ok(Ok(fence)) => {
                    // Named the leader once it serves as one (the caller's
                    // part): until then it answers as a follower.
                    leader.send_replace(None);
                    info!(revision = fence.revision, "elected leader");
                    tokio::spawn(renew(client, Arc::clone(&fence), self.ttl));
                    return fence;
                }
                Ok(Err(current)) => {
                    // Its own address: the key of this instance's previous
                    // run (killed, restarted), until that lease lapses.
                    let current = current.filter(|address| *address != self.advertise);
                    leader.send_if_modified(|known| {
                        let changed = known.as_ref() != current.as_ref();
                        *known = current.clone();
                        changed
                    });
                    logged = false;
                }
                Err(error) if !logged => {
                    warn!(%error, "etcd unreachable; still campaigning");
                    logged = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(self.poll()).await;
        }
    }

    /// One attempt: this instance's term, or the current leader's address.
    async fn try_lead(
        &self,
        client: &mut Client,
    ) -> Result<Result<Arc<Fence>, Option<String>>, etcd_client::Error> {
        let current = client.get(self.key.as_str(), None).await?;
        if let Some(kv) = current.kvs().first() {
            return Ok(Err(Some(String::from_utf8_lossy(kv.value()).into_owned())));
        }
        // The deadline counts from before the lease exists: never later
        // than etcd's own.
        let asked = Instant::now();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let lease = client.lease_grant(ttl, None).await?.id();
        let claim = Txn::new()
            .when([Compare::create_revision(
                self.key.as_str(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                self.key.as_str(),
                self.advertise.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let answer = client.txn(claim).await?;
        if !answer.succeeded() {
            let _ = client.lease_revoke(lease).await;
            return Ok(Err(None));
        }
        let revision = answer.header().map_or(0, |h| h.revision());
        Ok(Ok(Arc::new(Fence {
            key: self.key.clone().into_bytes(),
            lease,
            revision,
            deadline: Mutex::new(asked + self.ttl),
            lost: watch::channel(None).0,
        })))
    }

    /// Gives the term up (at shutdown): the key goes at once, so another
    /// instance leads without waiting out the lease.
    pub(crate) async fn resign(client: &Client, fence: &Fence) {
        fence.end("resigned".into());
        // Bounded: cut off from etcd, the lease lapses by itself.
        revoke(client, fence.lease, super::ATTEMPT_TIMEOUT).await;
    }

    /// After a term that ended without resigning (its lease not renewed in
    /// time, or another instance leads): its lease taken back in the
    /// background, for up to [`REQUEST_TIMEOUT`](super::REQUEST_TIMEOUT).
    /// The lease can outlive the term at etcd by seconds — a newly
    /// elected etcd leader extends every lease by its TTL — and the next
    /// leader waits for its key to go.
    pub(crate) fn release(client: &Client, fence: &Fence) {
        let (client, lease) = (client.clone(), fence.lease);
        tokio::spawn(async move { revoke(&client, lease, super::REQUEST_TIMEOUT).await });
    }
}

/// Revokes `lease`, asking again while the member asked cannot serve it (a
/// member cut off from the others answers at once that it has no leader;
/// the next try may go to another), for at most `within`.
async fn revoke(client: &Client, lease: i64, within: Duration) {
    let mut client = client.clone();
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let attempt = left.min(super::ATTEMPT_TIMEOUT);
        match tokio::time::timeout(attempt, client.lease_revoke(lease)).await {
            // Revoked, or refused for good (already gone).
            Ok(Ok(_)) => return,
            Ok(Err(error)) if !super::unavailable(&error) => return,
            Ok(Err(_)) | Err(_) => {}
        }
        if Instant::now() + super::RETRY_PAUSE >= until {
            return;
        }
        tokio::time::sleep(super::RETRY_PAUSE).await;
    }
}

/// Renews the lease every third of `ttl` until the term ends; a renewal
/// that etcd refuses (the lease is gone) or none before the deadline ends
/// it. A renewal that fails (a member cut off, a slow answer) is tried
/// again at once, on a new stream.
async fn renew(mut client: Client, fence: Arc<Fence>, ttl: Duration) {
    let mut keeper = None;
    let mut wait = ttl / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = fence.lost() => return,
        }
        if fence.ended().is_some() {
            return;
        }
        let sent = Instant::now();
        wait = Duration::from_millis(50);
        let renewed = tokio::time::timeout((ttl / 3).min(super::ATTEMPT_TIMEOUT), async {
            let (keeper, stream) = match keeper.as_mut() {
                Some(open) => open,
                None => keeper.insert(client.lease_keep_alive(fence.lease).await?),
            };
            keeper.keep_alive().await?;
            stream.message().await
        })
        .await;
        match renewed {
            Ok(Ok(Some(answer))) if answer.ttl() > 0 => {
                let granted = Duration::from_secs(u64::try_from(answer.ttl()).unwrap_or(0));
                *fence.deadline.lock() = sent + granted;
                wait = ttl / 3;
            }
            Ok(Ok(Some(_))) => {
                fence.end("etcd says the lease has expired".into());
                return;
            }
            other => {
                // A member down or a slow answer: a new stream next time,
                // until the deadline says otherwise.
                keeper = None;
                let error = match other {
                    Ok(Ok(_)) => "the renewal stream closed".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "no answer in time".to_owned(),
                };
                warn!(%error, "lease renewal failed");
            }
        }
    }
}
