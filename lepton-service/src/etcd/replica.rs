//! One instance among several on one etcd cluster: it follows until
//! elected, leads while its term holds, and follows again when it loses it.
//!
//! Followers answer `/healthz` and `GET /v1/leader` themselves, pass every
//! other `GET` on to the leader (reads work on any instance), and refuse
//! writes with 503 naming the leader: only the leader schedules, launches
//! and writes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::RwLock;
use serde_json::json;
use tokio::sync::watch;
use tower::ServiceExt;
use tracing::{info, warn};

use super::election::Election;
use super::{connect, EtcdStore};
use crate::{http, lead, listen, Context, ServiceError};

/// What the outer routes read: the routes of the moment, who leads, and
/// this instance's address.
#[derive(Clone)]
struct Replica {
    routes: Arc<RwLock<Router>>,
    leader: watch::Receiver<Option<String>>,
    me: Arc<str>,
    /// Whether it serves as the leader now.
    leading: Arc<AtomicBool>,
}

/// Runs one instance until `shutdown`.
pub(crate) async fn serve(
    context: Arc<Context>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let section = context.config.etcd.clone().unwrap_or_default();
    let client = connect(&section).await.map_err(ServiceError::Start)?;
    let (listener, address) = listen(context.config.listen, tls.is_some()).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let election = Election {
        key: format!("{}leader", section.prefix),
        advertise: section
            .advertise
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{address}")),
        ttl: Duration::from_secs(section.lease_ttl_s),
    };
    let (leader, leader_seen) = watch::channel(None);
    let following = follower(leader_seen.clone(), forwarder());
    let replica = Replica {
        routes: Arc::new(RwLock::new(following.clone())),
        leader: leader_seen,
        me: Arc::from(election.advertise.as_str()),
        leading: Arc::new(AtomicBool::new(false)),
    };
    let outer = Router::new()
        .route("/v1/leader", get(who_leads))
        .fallback(dispatch)
        .with_state(replica.clone());
    let (stop_http, http_stopped) = watch::channel(false);
    let http = tokio::spawn({
        let context = Arc::clone(&context);
        async move {
            let mut stopped = http_stopped;
            let stopped = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            http::serve(listener, tls, outer, &context, stopped).await;
        }
    });
    ready(address);
    info!(me = %election.advertise, ttl_s = section.lease_ttl_s, "campaigning for leadership");
    tokio::pin!(shutdown);
    let result = loop {
        let fence = tokio::select! {
            () = &mut shutdown => break Ok(()),
            fence = election.campaign(&client, &leader) => fence,
        };
        let term = {
            let (context, section, fence) =
                (Arc::clone(&context), section.clone(), Arc::clone(&fence));
            tokio::task::spawn_blocking(move || {
                let store = EtcdStore::new(&section, fence)?;
                lead(&context, Arc::new(store))
            })
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))
            .and_then(|started| started)
        };
        let leading = match term {
            Ok(leading) => leading,
            // etcd failed under it: follow, and campaign again.
            Err(error) if fence.ended().is_some() || matches!(error, ServiceError::Store(_)) => {
                warn!(%error, "could not take over; following again");
                Election::resign(&client, &fence).await;
                leader.send_replace(None);
                continue;
            }
            Err(error) => {
                Election::resign(&client, &fence).await;
                break Err(error);
            }
        };
        *replica.routes.write() = leading.router.clone();
        replica.leading.store(true, Ordering::SeqCst);
        leader.send_replace(Some(election.advertise.clone()));
        info!(revision = fence.revision(), "leading");
        let stepped_down = tokio::select! {
            () = &mut shutdown => false,
            () = fence.lost() => true,
        };
        replica.leading.store(false, Ordering::SeqCst);
        *replica.routes.write() = following.clone();
        let _ = tokio::task::spawn_blocking(move || leading.stop()).await;
        if !stepped_down {
            Election::resign(&client, &fence).await;
            break Ok(());
        }
        leader.send_replace(None);
        warn!("stepped down: following");
        Election::release(&client, &fence);
    };
    let _ = stop_http.send(true);
    match http.await {
        Ok(()) => result,
        Err(e) => Err(ServiceError::Internal(e.to_string())),
    }
}

/// Hands the request to the routes of the moment: the leader's API, or
/// the follower's answer.
async fn dispatch(State(replica): State<Replica>, request: Request) -> Response {
    let routes = replica.routes.read().clone();
    match routes.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// `GET /v1/leader`: who leads, and whether it is this instance.
async fn who_leads(State(replica): State<Replica>) -> Json<serde_json::Value> {
    let leader = replica.leader.borrow().clone();
    let role = if replica.leading.load(Ordering::SeqCst) {
        "leader"
    } else {
        "follower"
    };
    Json(json!({"leader": leader, "this": &*replica.me, "role": role}))
}

/// A follower's routes: alive; reads are the leader's answers, passed on;
/// writes are refused, naming the leader.
fn follower(leader: watch::Receiver<Option<String>>, client: Forwarder) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(move |request: Request| {
            let leader = leader.borrow().clone();
            let client = client.clone();
            async move {
                match leader {
                    // Its own metrics are the leader's to give: not passed
                    // on; nor is a read passed on already (two instances
                    // that each think the other leads, for a moment).
                    Some(leader)
                        if request.method() == Method::GET
                            && request.uri().path() != "/metrics"
                            && !request.headers().contains_key(FORWARDED)
                            && leader.starts_with("http://") =>
                    {
                        forward(&client, &leader, request).await
                    }
                    leader => not_the_leader(leader, ""),
                }
            }
        })
}

/// An HTTP client for the reads a follower passes on.
type Forwarder = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    axum::body::Body,
>;

fn forwarder() -> Forwarder {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// Asks the leader at `leader` the same request (with the same token) and
/// answers with its answer.
async fn forward(client: &Forwarder, leader: &str, request: Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let Ok(uri) = format!("{leader}{path}").parse::<Uri>() else {
        return not_the_leader(Some(leader.to_owned()), "");
    };
    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    parts.headers.remove(header::HOST);
    parts
        .headers
        .insert(FORWARDED, axum::http::HeaderValue::from_static("1"));
    let asked = client.request(Request::from_parts(parts, body));
    match tokio::time::timeout(FORWARD_TIMEOUT, asked).await {
        Ok(Ok(answer)) => {
            let (parts, body) = answer.into_parts();
            Response::from_parts(parts, axum::body::Body::new(body))
        }
        Ok(Err(error)) => not_the_leader(
            Some(leader.to_owned()),
            &format!(": it did not answer ({error})"),
        ),
        Err(_) => not_the_leader(
            Some(leader.to_owned()),
            &format!(": it did not answer in {FORWARD_TIMEOUT:?}"),
        ),
    }
}

/// Marks a read a follower passed on.
const FORWARDED: &str = "x-lepton-forwarded";

/// How long a passed-on read may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

fn not_the_leader(leader: Option<String>, detail: &str) -> Response {
    let error = match &leader {
        Some(leader) => format!("not the leader, leader is {leader}{detail}"),
        None => "not the leader, and no leader is elected yet: retry shortly".to_owned(),
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": error, "leader": leader})),
    )
        .into_response()
}
