//! `lepton serve` and its client: `submit`, `tasks`, `nodes`, `drain`.

use std::path::PathBuf;

use clap::Args;
use lepton_service::ServiceConfig;
use serde_json::Value;

use super::say;
use super::{CliError, Format, OutputArgs};

/// Runs Lepton as a service: the HTTP API (docs/SERVICE.md), the local
/// backend and durable state.
///
/// With no --config it starts on built-in defaults: 127.0.0.1:7700, state
/// under ./lepton-data, tasks run as processes on this machine, policy
/// bestfit. SIGINT or SIGTERM stops it; runs keep going and are adopted
/// by the next start.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A TOML configuration file (docs/SERVICE.md lists every key).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen here instead (e.g. 127.0.0.1:7701; port 0 picks a free one,
    /// printed at start).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Keep state, runs and logs here instead.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub(crate) fn serve(args: ServeArgs) -> Result<(), CliError> {
    let mut config = match &args.config {
        Some(path) => ServiceConfig::from_path(path).map_err(|e| CliError::Usage(e.to_string()))?,
        None => ServiceConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEPTON_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Scenario(format!("cannot start the runtime: {e}")))?;
    runtime
        .block_on(lepton_service::serve(
            config,
            |address| eprintln!("lepton serve: listening on {scheme}://{address}"),
            async {
                let interrupt = tokio::signal::ctrl_c();
                let terminate = async {
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(mut signal) => {
                            signal.recv().await;
                        }
                        Err(_) => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = interrupt => {}
                    () = terminate => {}
                }
            },
        ))
        .map_err(|e| CliError::Scenario(e.to_string()))
}

/// Where the service is, and the token to show it.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The service's address: `http://` or `https://` and host:port (a
    /// bare host:port is `http://`).
    #[arg(long, env = "LEPTON_ADDR", default_value = "http://127.0.0.1:7700")]
    addr: String,
    /// The bearer token (else LEPTON_TOKEN).
    #[arg(long, env = "LEPTON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The CA certificate (PEM) an `https://` service's certificate is
    /// checked against, in place of the public authorities (a self-signed
    /// certificate is its own CA).
    #[arg(long, env = "LEPTON_CA_CERT", value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
}

/// `addr` as a base URL: a scheme of `http` or `https` (none: `http`), no
/// trailing slash.
fn base_url(addr: &str) -> Result<String, CliError> {
    let (scheme, host) = match addr.trim().split_once("://") {
        None => ("http", addr.trim()),
        Some((scheme @ ("http" | "https"), host)) => (scheme, host),
        Some(_) => ("", ""),
    };
    let host = host.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        return Err(CliError::Usage(format!(
            "--addr {addr:?}: expected http://HOST:PORT, https://HOST:PORT or HOST:PORT"
        )));
    }
    Ok(format!("{scheme}://{host}"))
}

/// An agent trusting `ca_cert` only, or the public authorities without it.
fn agent(ca_cert: Option<&std::path::Path>) -> Result<ureq::Agent, CliError> {
    use rustls_pki_types::pem::PemObject;
    let Some(path) = ca_cert else {
        return Ok(ureq::Agent::new());
    };
    let bad =
        |e: &dyn std::fmt::Display| CliError::Usage(format!("--ca-cert {}: {e}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in the file"));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(ureq::AgentBuilder::new()
        .tls_config(std::sync::Arc::new(config))
        .build())
}

impl ClientArgs {
    /// Sends a request; the JSON answer, or an error with the service's
    /// own message. A follower of a replicated service (`store = "etcd"`)
    /// that refuses a write names its leader: the request goes there once.
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Result<Value, CliError> {
        let mut base = base_url(&self.addr)?;
        let agent = agent(self.ca_cert.as_deref())?;
        let mut redirected = false;
        loop {
            let url = format!("{base}{path}");
            let request = self.request(&agent, &url, method);
            let response = match body {
                Some(body) => request.send_string(body),
                None => request.call(),
            };
            match response {
                Ok(response) => {
                    return response
                        .into_json()
                        .map_err(|e| CliError::Output(format!("{url}: not JSON: {e}")))
                }
                Err(ureq::Error::Status(code, response)) => {
                    let text = response.into_string().unwrap_or_default();
                    let answer = serde_json::from_str::<Value>(&text).ok();
                    let leader = answer
                        .as_ref()
                        .and_then(|v| v["leader"].as_str())
                        .map(|l| l.trim_end_matches('/').to_owned());
                    if let (503, Some(leader), false) = (code, &leader, redirected) {
                        if *leader != base {
                            eprintln!("{base} follows; sending to the leader, {leader}");
                            base.clone_from(leader);
                            redirected = true;
                            continue;
                        }
                    }
                    let message = answer
                        .and_then(|v| v["error"].as_str().map(str::to_owned))
                        .unwrap_or(text);
                    return Err(CliError::Usage(format!("{url}: {code}: {message}")));
                }
                Err(error) => {
                    return Err(CliError::Usage(format!(
                        "{url}: {error} (is `lepton serve` running there?)"
                    )))
                }
            }
        }
    }

    fn request(&self, agent: &ureq::Agent, url: &str, method: &str) -> ureq::Request {
        let request = agent
            .request(method, url)
            .set("Content-Type", "application/json");
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }
}

/// Submits tasks: a file (or `-` for stdin) holding a task spec, an array
/// of them, or a JSON workload (its tasks' specs are submitted).
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// The file, or `-` for standard input.
    file: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) fn submit(args: SubmitArgs) -> Result<(), CliError> {
    let body = read_tasks(&args.file)?;
    let answer = args
        .client
        .call("POST", "/v1/tasks", Some(&body.to_string()))?;
    let count = answer["accepted"].as_array().map_or(0, Vec::len);
    say!("{count} tasks accepted")
}

/// The task specs in `file` (or `-`, standard input): a spec, an array of
/// them, or a JSON workload's tasks' specs.
fn read_tasks(file: &str) -> Result<Value, CliError> {
    let max = lepton::sim::MAX_INPUT_BYTES;
    let bytes = if file == "-" {
        // A terminal, too: read up to one byte past the bound.
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin(), max + 1),
            &mut bytes,
        )
        .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
        if bytes.len() as u64 > max {
            return Err(CliError::Usage(format!(
                "standard input: larger than {} MiB, the most read",
                max >> 20
            )));
        }
        bytes
    } else {
        lepton::policies::files::read_bounded(std::path::Path::new(file), max)
            .map_err(|e| CliError::Usage(format!("cannot read {file}: {e}")))?
    };
    let text =
        String::from_utf8(bytes).map_err(|e| CliError::Usage(format!("{file}: not UTF-8: {e}")))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{file}: not JSON: {e}")))?;
    // A workload: its tasks' specs.
    Ok(match value.get("tasks").and_then(Value::as_array) {
        Some(tasks) => Value::Array(tasks.iter().map(|t| t["spec"].clone()).collect()),
        None => value,
    })
}

/// A dry run: where the tasks in a file would go if submitted now, which
/// running tasks they would preempt, and why the others would wait.
/// Nothing is submitted.
#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// The file (as `lepton submit` reads), or `-` for standard input.
    file: String,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn plan(args: PlanArgs) -> Result<(), CliError> {
    let body = read_tasks(&args.file)?;
    let plan = args
        .client
        .call("POST", "/v1/plan", Some(&body.to_string()))?;
    if args.output.output == Format::Json {
        return say!("{plan}");
    }
    for placed in plan["placed"].as_array().into_iter().flatten() {
        let mut line = format!("task {} -> node {}", placed["task"], placed["node"]);
        let gpus = placed["gpus"].as_array().map_or(0, Vec::len);
        if gpus > 0 {
            line += &format!(", GPUs {}", placed["gpus"]);
        }
        if placed["preempts"].as_array().is_some_and(|p| !p.is_empty()) {
            line += &format!(", preempting {}", placed["preempts"]);
        }
        say!("{line}")?;
    }
    for waiting in plan["waiting"].as_array().into_iter().flatten() {
        say!("{}", waiting["summary"].as_str().unwrap_or(""))?;
    }
    Ok(())
}

/// Lists the tasks, with their states.
#[derive(Debug, Args)]
pub(crate) struct TasksArgs {
    /// Only tasks in this state: queued, running, completed, failed or
    /// cancelled.
    #[arg(long)]
    state: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn tasks(args: TasksArgs) -> Result<(), CliError> {
    let path = match &args.state {
        Some(state) => format!("/v1/tasks?state={state}"),
        None => "/v1/tasks".to_owned(),
    };
    let answer = args.client.call("GET", &path, None)?;
    if args.output.output == Format::Json {
        return say!("{answer}");
    }
    say!(
        "{:>10} {:<10} {:>8} {:>6}  {}",
        "id",
        "state",
        "attempts",
        "node",
        "name"
    )?;
    for task in answer["tasks"].as_array().into_iter().flatten() {
        say!(
            "{:>10} {:<10} {:>8} {:>6}  {}",
            task["id"].to_string(),
            task["state"].as_str().unwrap_or(""),
            task["attempts"].to_string(),
            task["node"]
                .as_u64()
                .map_or(String::new(), |n| n.to_string()),
            task["name"].as_str().unwrap_or("")
        )?;
    }
    say!("counts: {}", answer["counts"])
}

/// Lists the nodes, with their use.
#[derive(Debug, Args)]
pub(crate) struct NodesArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn nodes(args: NodesArgs) -> Result<(), CliError> {
    let answer = args.client.call("GET", "/v1/nodes", None)?;
    if args.output.output == Format::Json {
        return say!("{answer}");
    }
    say!(
        "{:>6} {:<12} {:<9} {:>14} {:>16} {:>6}",
        "id",
        "name",
        "state",
        "cpu used/m",
        "memory used/MiB",
        "tasks"
    )?;
    for node in answer["nodes"].as_array().into_iter().flatten() {
        say!(
            "{:>6} {:<12} {:<9} {:>14} {:>16} {:>6}",
            node["id"].to_string(),
            node["name"].as_str().unwrap_or(""),
            node["state"].as_str().unwrap_or(""),
            format!("{}/{}", node["cpu_used_milli"], node["cpu_milli"]),
            format!("{}/{}", node["memory_used_mib"], node["memory_mib"]),
            node["tasks"].to_string()
        )?;
    }
    Ok(())
}

/// Lists the tenant queues: maxima, what each holds, what waits.
#[derive(Debug, Args)]
pub(crate) struct QueuesArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn queues(args: QueuesArgs) -> Result<(), CliError> {
    let answer = args.client.call("GET", "/v1/queues", None)?;
    if args.output.output == Format::Json {
        return say!("{answer}");
    }
    say!(
        "{:<24} {:>6} {:>8} {:>20} {:>8} {:>8}",
        "queue",
        "weight",
        "share",
        "cpu used/max (m)",
        "gpu (m)",
        "waiting"
    )?;
    let max = |value: &serde_json::Value| value.as_u64().map_or("-".to_owned(), |v| v.to_string());
    for queue in answer["queues"].as_array().into_iter().flatten() {
        say!(
            "{:<24} {:>6} {:>8.3} {:>20} {:>8} {:>8}",
            queue["name"].as_str().unwrap_or(""),
            queue["weight"].as_f64().unwrap_or(1.0),
            queue["dominant_share"].as_f64().unwrap_or(0.0),
            format!(
                "{}/{}",
                queue["usage"]["cpu_milli"],
                max(&queue["max"]["cpu_milli"])
            ),
            format!(
                "{}/{}",
                queue["usage"]["gpu_milli"],
                max(&queue["max"]["gpu_milli"])
            ),
            queue["waiting"].to_string()
        )?;
    }
    Ok(())
}

/// Drains a node: cordons it and moves its tasks elsewhere.
#[derive(Debug, Args)]
pub(crate) struct DrainArgs {
    /// The node's id.
    node: u64,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) fn drain(args: DrainArgs) -> Result<(), CliError> {
    args.client.call(
        "POST",
        &format!("/v1/nodes/{}/drain", args.node),
        Some("{}"),
    )?;
    say!("node {} drained", args.node)
}

/// Says why a task waits: each node's refusal, counted per reason.
#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// The task's id.
    task: u64,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn explain(args: ExplainArgs) -> Result<(), CliError> {
    let task = args
        .client
        .call("GET", &format!("/v1/tasks/{}", args.task), None)?;
    if args.output.output == Format::Json {
        return say!("{task}");
    }
    if let Some(summary) = task["pending_summary"].as_str() {
        say!("{summary}")?;
        for reason in task["pending_reasons"].as_array().into_iter().flatten() {
            say!(
                "{:>8}  {}",
                reason["nodes"].to_string(),
                reason["reason"].as_str().unwrap_or("")
            )?;
        }
        return Ok(());
    }
    let state = task["state"].as_str().unwrap_or("unknown");
    match task["node"].as_u64() {
        Some(node) => say!("task {} is {state} on node {node}", args.task),
        None => say!("task {} is {state}", args.task),
    }
}
