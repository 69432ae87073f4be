//! The HTTP API, versioned under `/v1`, JSON in and out; docs/SERVICE.md
//! describes every route.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lepton::backend::Backend;
use lepton::scheduler::Refusals;
use lepton::{NodeId, TaskId, TaskSpec};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::engine::{state_index, Command, EngineHandle, Order, PageRequest, STATES};
use crate::store::{Change, Store};
use crate::ServiceError;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) engine: EngineHandle,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) store: Arc<dyn Store>,
    /// Ids accepted or being accepted: a second submission of one is refused
    /// before anything is stored.
    pub(crate) claimed: Arc<Mutex<HashSet<TaskId>>>,
    pub(crate) max_tasks_per_request: usize,
    /// The backends, asked whether a submitted task could ever run.
    pub(crate) backends: Arc<[Arc<dyn Backend>]>,
    /// This service's OpenAPI description.
    pub(crate) openapi: Arc<str>,
    /// The tenant queues (holding no task): what a submission's `queue`
    /// is checked against.
    pub(crate) queues: Arc<lepton::admission::Admission>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// The routes, with the body limit; [`crate::http`] authenticates.
pub(crate) fn router(api: Api, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/tasks", post(submit).get(list_tasks))
        .route("/v1/tasks/{id}", get(get_task))
        .route("/v1/tasks/{id}/cancel", post(cancel))
        .route("/v1/plan", post(plan))
        .route("/v1/queues", get(list_queues))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{id}/cordon", post(cordon))
        .route("/v1/nodes/{id}/uncordon", post(uncordon))
        .route("/v1/nodes/{id}/drain", post(drain))
        .route("/v1/policy", get(get_policy).put(set_policy))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        // Who leads: this instance, on the embedded store (with
        // `store = "etcd"` the replica's own route answers instead).
        .route(
            "/v1/leader",
            get(|| async { Json(json!({"role": "leader", "leader": null, "this": null})) }),
        )
        // The page holds no data; it asks the API, with the token.
        .route("/", get(dashboard))
        .fallback(|| async { ServiceError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|request: Request| async move {
            ServiceError::MethodNotAllowed(format!(
                "{} {}: not a method of this route",
                request.method(),
                request.uri().path()
            ))
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(api)
}

/// `POST /v1/tasks`: one task spec or an array of them (the `spec` objects
/// of the JSON workload format). Answered once every task is durably
/// stored; all or none are accepted.
async fn submit(
    State(api): State<Api>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServiceError> {
    let body = body.map_err(rejected)?;
    let specs = runnable_tasks(&api, &body)?;
    claim(&api, &specs)?;
    let changes = specs
        .iter()
        .map(|spec| Change::Accepted(Box::new(spec.clone())))
        .collect();
    let store = Arc::clone(&api.store);
    let stored = tokio::task::spawn_blocking(move || store.apply(changes))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()));
    if let Err(error) = stored.and_then(|stored| stored.map_err(ServiceError::from)) {
        let mut claimed = api.claimed.lock();
        for spec in &specs {
            claimed.remove(&spec.id);
        }
        return Err(error);
    }
    // Stored: from here the task is the service's, through any restart.
    let ids = queue(&api, &specs);
    api.metrics.accepted(ids.len() as u64);
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": ids }))).into_response())
}

/// `POST /v1/plan`: where the body's tasks would go if submitted now,
/// which running tasks they would preempt and why the rest would wait;
/// nothing is submitted or changed.
async fn plan(
    State(api): State<Api>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServiceError> {
    let body = body.map_err(rejected)?;
    // What submit would refuse, a plan refuses too.
    let specs = runnable_tasks(&api, &body)?;
    unclaimed(&api.claimed.lock(), &specs)?;
    let plan = ask_for(&api, |reply| Command::Plan(specs, reply)).await??;
    let placed: Vec<Value> = plan
        .placed
        .iter()
        .map(|p| {
            let preempts: Vec<u64> = p.preempts.iter().map(|t| t.0).collect();
            json!({"task": p.task.0, "node": p.node.0, "gpus": p.gpus.to_vec(), "preempts": preempts})
        })
        .collect();
    let waiting: Vec<Value> = plan
        .waiting
        .iter()
        .map(|e| {
            let mut waits = json!({"task": e.task.0, "summary": e.to_string()});
            if let Some(refusals) = &e.refusals {
                waits["available_nodes"] = json!(refusals.available);
                waits["reasons"] = reasons(refusals);
            }
            waits
        })
        .collect();
    Ok(Json(json!({"placed": placed, "waiting": waiting})).into_response())
}

/// The valid task specs of a submission's body (one object or an array of
/// at most `max` of them), or a 400 naming the field at fault.
fn parse_tasks(body: &[u8], max: usize) -> Result<Vec<TaskSpec>, ServiceError> {
    let bad = |field: String, message: String| ServiceError::BadRequest { field, message };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad("body".into(), format!("not JSON: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        one @ Value::Object(_) => vec![one],
        other => {
            return Err(bad(
                "body".into(),
                format!(
                    "expected a task object or an array of them, got {}",
                    kind(&other)
                ),
            ))
        }
    };
    if items.is_empty() {
        return Err(bad(
            "body".into(),
            "an empty array: no task to submit".into(),
        ));
    }
    if items.len() > max {
        return Err(bad(
            "body".into(),
            format!("{} tasks in one request; at most {max}", items.len()),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let spec: TaskSpec =
                serde_json::from_value(item).map_err(|e| bad(format!("[{i}]"), e.to_string()))?;
            spec.validate()
                .map_err(|e| bad(format!("[{i}]"), e.to_string()))?;
            Ok(spec)
        })
        .collect()
}

/// Whether some backend could ever run `spec`; if none, why each would not.
fn runnable(backends: &[Arc<dyn Backend>], spec: &TaskSpec) -> Result<(), String> {
    let mut refusals = Vec::new();
    for backend in backends {
        match backend.validate(spec) {
            Ok(()) => return Ok(()),
            Err(error) => refusals.push(error.to_string()),
        }
    }
    Err(format!("no backend can run it: {}", refusals.join("; ")))
}

/// Claims every id of `specs`, or none: an id already submitted (or twice
/// in `specs`) is a 409.
fn claim(api: &Api, specs: &[TaskSpec]) -> Result<(), ServiceError> {
    let mut claimed = api.claimed.lock();
    let ids = unclaimed(&claimed, specs)?;
    claimed.extend(ids);
    Ok(())
}

/// The ids of `specs`, or a 409 for the first already submitted or given
/// twice.
fn unclaimed(
    claimed: &HashSet<TaskId>,
    specs: &[TaskSpec],
) -> Result<HashSet<TaskId>, ServiceError> {
    let mut seen = HashSet::new();
    for spec in specs {
        if claimed.contains(&spec.id) || !seen.insert(spec.id) {
            return Err(ServiceError::Conflict(format!(
                "task id {} is already submitted",
                spec.id.0
            )));
        }
    }
    Ok(seen)
}

/// The body's task specs, each valid, taken by the queue it names and
/// runnable by some backend, or a 400 naming the one at fault.
fn runnable_tasks(api: &Api, body: &[u8]) -> Result<Vec<TaskSpec>, ServiceError> {
    let specs = parse_tasks(body, api.max_tasks_per_request)?;
    for (i, spec) in specs.iter().enumerate() {
        if let Some(queue) = &spec.queue {
            api.queues
                .check(queue, spec)
                .map_err(|e| ServiceError::BadRequest {
                    field: format!("[{i}].queue"),
                    message: e.to_string(),
                })?;
        }
        runnable(&api.backends, spec).map_err(|message| ServiceError::BadRequest {
            field: format!("[{i}]"),
            message,
        })?;
    }
    Ok(specs)
}

/// Hands stored `specs` to the scheduler and the view; their ids.
fn queue(api: &Api, specs: &[TaskSpec]) -> Vec<u64> {
    let mut view = api.engine.view.write();
    let mut ids = Vec::with_capacity(specs.len());
    for spec in specs {
        if let Err(error) = api.engine.submitter.submit(spec) {
            // Cannot happen for a valid, unclaimed id; the store has it and
            // a restart takes it in.
            tracing::warn!(task = %spec.id, %error, "stored but not queued");
        }
        view.insert(crate::engine::TaskView {
            id: spec.id.0,
            name: spec.name.clone(),
            state: "queued",
            priority: spec.priority.0,
            queue: spec.queue.clone(),
            attempts: 0,
            node: None,
            limits: None,
            reasons: Vec::new(),
        });
        ids.push(spec.id.0);
    }
    ids
}

/// A body that could not be read: too large (413), or cut short.
fn rejected(rejection: BytesRejection) -> ServiceError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ServiceError::TooLarge(format!("body: {}", rejection.body_text()))
    } else {
        ServiceError::BadRequest {
            field: "body".into(),
            message: rejection.body_text(),
        }
    }
}

/// The dashboard: one page, its script inline, embedded in the binary.
const DASHBOARD: &str = include_str!("../assets/dashboard.html");

/// `GET /`: the dashboard.
async fn dashboard() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DASHBOARD,
    )
        .into_response()
}

/// The API's OpenAPI 3 description, embedded.
const OPENAPI: &str = include_str!("../assets/openapi.json");

/// The shipped OpenAPI description with the names of the policies this
/// service can swap to (`rule` only with rules, `drl` only in a build with
/// it) and of its tenant queues (a task's `queue`, absent when there are
/// none), so that a client generated from it sends only names it accepts.
pub(crate) fn openapi_document(
    policies: &lepton::policies::PolicyContext,
    queues: &lepton::admission::Admission,
) -> Result<Arc<str>, ServiceError> {
    let broken = |e: &dyn std::fmt::Display| ServiceError::Start(format!("openapi.json: {e}"));
    let mut document: Value = serde_json::from_str(OPENAPI).map_err(|e| broken(&e))?;
    let names: Vec<String> = lepton::policies::policy_names()
        .into_iter()
        .filter(|name| lepton::policies::build(name, policies).is_ok())
        .collect();
    let slot = document
        .pointer_mut("/components/schemas/PolicyName/enum")
        .ok_or_else(|| broken(&"no components.schemas.PolicyName.enum"))?;
    *slot = json!(names);
    let spec = document
        .pointer_mut("/components/schemas/TaskSpec/properties")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| broken(&"no components.schemas.TaskSpec.properties"))?;
    let queues: Vec<&str> = queues.queues().map(|q| q.name.as_str()).collect();
    if queues.is_empty() {
        spec.remove("queue");
    } else if let Some(queue) = spec.get_mut("queue") {
        queue["enum"] = json!(queues);
    }
    Ok(Arc::from(document.to_string()))
}

/// `GET /v1/openapi.json`.
async fn openapi(State(api): State<Api>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        api.openapi.to_string(),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus' text format.
async fn metrics(State(api): State<Api>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.metrics.encode(),
    )
        .into_response()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An id in a path: a whole number, or a 400 naming it.
fn parse_id(text: &str, what: &str) -> Result<u64, ServiceError> {
    text.parse().map_err(|_| ServiceError::BadRequest {
        field: what.into(),
        message: format!("{text:?} is not a {what} (a whole number)"),
    })
}

async fn get_task(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Response, ServiceError> {
    let id = TaskId(parse_id(&id, "task id")?);
    let mut task = {
        let view = api.engine.view.read();
        let task = view
            .tasks
            .get(&id)
            .ok_or_else(|| ServiceError::NotFound(format!("no task {}", id.0)))?;
        serde_json::to_value(task).map_err(|e| ServiceError::Internal(e.to_string()))?
    };
    // A waiting task says why: the engine asks every node (O(nodes)).
    if task["state"] == "queued" {
        // The task as the view has it, should the loop not answer.
        let explanation = ask_for(&api, |reply| Command::Explain(id, reply))
            .await
            .ok()
            .flatten();
        if let Some(refusals) = explanation.as_ref().and_then(|e| e.refusals.as_ref()) {
            task["pending_reasons"] = reasons(refusals);
            task["available_nodes"] = json!(refusals.available);
        }
        if let Some(explanation) = explanation {
            if let Some(reason) = &explanation.queue {
                task["waiting_for_admission"] = json!(reason);
            }
            if let Some(reason) = &explanation.gang {
                task["waiting_for_gang"] = json!(reason);
            }
            task["pending_summary"] = json!(explanation.to_string());
        }
    }
    Ok(Json(task).into_response())
}

/// The most tasks one page of `GET /v1/tasks` holds.
const MAX_PAGE: usize = 1000;

/// `GET /v1/tasks`' query, each value as sent: parsed by [`ListQuery::page`]
/// so that a bad one is named in the 400.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    order: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

impl ListQuery {
    /// The page asked for, or a 400 naming the value at fault.
    fn page(&self) -> Result<PageRequest, ServiceError> {
        let bad = |field: &str, message: String| ServiceError::BadRequest {
            field: field.into(),
            message,
        };
        let state = match &self.state {
            None => None,
            Some(state) => Some(state_index(state).ok_or_else(|| {
                bad(
                    "state",
                    format!("{state:?} is not a state ({})", STATES.join(", ")),
                )
            })?),
        };
        let order = match self.order.as_deref() {
            None | Some("asc") => Order::Ascending,
            Some("desc") => Order::Descending,
            Some(other) => {
                return Err(bad(
                    "order",
                    format!("{other:?} is not an order (asc: oldest first, desc: newest first)"),
                ))
            }
        };
        let after = match &self.after {
            None => None,
            Some(after) => Some(after.parse().map_err(|_| {
                bad(
                    "after",
                    format!("{after:?} is not a task id (a whole number): pass a page's `next`"),
                )
            })?),
        };
        let limit = match &self.limit {
            None => None,
            Some(limit) => match limit.parse::<usize>() {
                Ok(n) if n <= MAX_PAGE => Some(n),
                Ok(n) => {
                    return Err(bad(
                        "limit",
                        format!(
                            "{n} is more than {MAX_PAGE}, the most tasks one page holds: \
                             page through them with `after`"
                        ),
                    ))
                }
                Err(_) => {
                    return Err(bad(
                        "limit",
                        format!("{limit:?} is not a whole number from 0 to {MAX_PAGE}"),
                    ))
                }
            },
        };
        Ok(PageRequest {
            state,
            order,
            after,
            limit,
        })
    }
}

/// `GET /v1/tasks`: a page of tasks (of one state, oldest or newest first,
/// from a cursor) with the counts by state. Answered from the view's
/// indexes: the cost is the page's, not the number of tasks'.
async fn list_tasks(
    State(api): State<Api>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ServiceError> {
    let Query(query) = query.map_err(|rejection| ServiceError::BadRequest {
        field: "query".into(),
        message: rejection.body_text(),
    })?;
    let request = query.page()?;
    let view = api.engine.view.read();
    let page = view.page(request);
    let counts: serde_json::Map<String, Value> = view
        .counts()
        .iter()
        .map(|(state, n)| (state.to_string(), json!(n)))
        .collect();
    Ok(Json(json!({
        "tasks": page.tasks,
        "counts": counts,
        "next": page.next,
    }))
    .into_response())
}

/// Sends a command to the loop and waits for its answer.
async fn ask(
    api: &Api,
    command: impl FnOnce(oneshot::Sender<Result<(), ServiceError>>) -> Command,
) -> Result<Response, ServiceError> {
    ask_for(api, command).await??;
    Ok(Json(json!({"ok": true})).into_response())
}

/// What the control loop answers to `command`, or a 500 if it stopped.
async fn ask_for<T>(
    api: &Api,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, ServiceError> {
    let stopped = || ServiceError::Internal("the control loop stopped".into());
    let (reply, answer) = oneshot::channel();
    api.engine
        .commands
        .send(command(reply))
        .await
        .map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())
}

/// Each reason nodes refuse a task, with how many gave it:
/// `[{"reason", "nodes"}]`, the most frequent first.
fn reasons(refusals: &Refusals) -> Value {
    let reasons: Vec<Value> = refusals
        .reasons
        .iter()
        .map(|(misfit, nodes)| json!({"reason": misfit.to_string(), "nodes": nodes}))
        .collect();
    Value::Array(reasons)
}

async fn cancel(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ServiceError> {
    let id = TaskId(parse_id(&id, "task id")?);
    if !api.engine.view.read().tasks.contains_key(&id) {
        return Err(ServiceError::NotFound(format!("no task {}", id.0)));
    }
    ask(&api, |reply| Command::Cancel(id, reply)).await
}

/// `GET /v1/queues`: each tenant queue's maxima, weight, holding, waiting
/// tasks and dominant share.
async fn list_queues(State(api): State<Api>) -> Response {
    Json(json!({ "queues": api.engine.view.read().queues })).into_response()
}

async fn list_nodes(State(api): State<Api>) -> Response {
    Json(json!({ "nodes": api.engine.view.read().nodes })).into_response()
}

fn known_node(api: &Api, id: &str) -> Result<NodeId, ServiceError> {
    let id = parse_id(id, "node id")?;
    if api.engine.view.read().nodes.iter().any(|n| n.id == id) {
        Ok(NodeId(id))
    } else {
        Err(ServiceError::NotFound(format!("no node {id}")))
    }
}

async fn cordon(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ServiceError> {
    let node = known_node(&api, &id)?;
    ask(&api, |reply| Command::Cordon(node, true, reply)).await
}

async fn uncordon(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Response, ServiceError> {
    let node = known_node(&api, &id)?;
    ask(&api, |reply| Command::Cordon(node, false, reply)).await
}

async fn drain(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ServiceError> {
    let node = known_node(&api, &id)?;
    ask(&api, |reply| Command::Drain(node, reply)).await
}

async fn get_policy(State(api): State<Api>) -> Response {
    let policies: Vec<_> = lepton::policies::policy_descriptions()
        .into_iter()
        .map(|(name, description)| json!({"name": name, "description": description}))
        .collect();
    Json(json!({ "name": api.engine.view.read().policy, "available": policies })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    name: String,
}

async fn set_policy(
    State(api): State<Api>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServiceError> {
    let body = body.map_err(rejected)?;
    let body: PolicyBody = serde_json::from_slice(&body).map_err(|e| ServiceError::BadRequest {
        field: "body".into(),
        message: e.to_string(),
    })?;
    ask(&api, |reply| Command::SetPolicy(body.name, reply)).await
}
