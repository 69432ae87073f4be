//! The service's load figure: acknowledged submissions per second and the
//! latency of each request, from 8 concurrent clients on loopback, with
//! the embedded store durable (each commit synced to disk) and not, and,
//! in a build with the `etcd` feature and `LEPTON_ETCD_ENDPOINTS` set (`bash
//! scripts/backends.sh start etcd`), with the etcd store.
//!
//! The node is cordoned first, so the tasks stay queued: the figure is
//! what accepting costs (parse, validate, store, queue), not running
//! processes.
//!
//! ```sh
//! cargo run --release -p lepton-service --example load              # 100 tasks a request
//! cargo run --release -p lepton-service --example load -- 1 2000    # one task a request
//! cargo run --release -p lepton-service --features etcd --example load   # and etcd
//! ```
//!
//! Arguments: tasks per request (default 100) and requests per client
//! (default 100).

use std::time::{Duration, Instant};

use lepton_service::ServiceConfig;

const CLIENTS: u64 = 8;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("whole numbers: tasks per request, requests per client")
        })
        .collect();
    let batch = args.first().copied().unwrap_or(100).max(1);
    let requests = args.get(1).copied().unwrap_or(100).max(1);
    println!(
        "{CLIENTS} clients x {requests} requests x {batch} tasks = {} tasks per run",
        CLIENTS * requests * batch
    );
    println!(
        "{:<10} {:>12} {:>14} {:>10} {:>10} {:>10}",
        "store", "tasks/s", "requests/s", "p50 ms", "p99 ms", "max ms"
    );
    let mut stores = vec![Store::Durable, Store::NotSynced];
    if cfg!(feature = "etcd") {
        match std::env::var("LEPTON_ETCD_ENDPOINTS") {
            Ok(endpoints) => stores.push(Store::Etcd(endpoints)),
            Err(_) => eprintln!("LEPTON_ETCD_ENDPOINTS is not set: no etcd run"),
        }
    }
    for store in stores {
        run(&store, batch, requests);
    }
}

enum Store {
    Durable,
    NotSynced,
    /// The etcd store on these endpoints (comma-separated).
    Etcd(String),
}

fn run(store: &Store, batch: u64, requests: u64) {
    let name = match store {
        Store::Durable => "durable",
        Store::NotSynced => "not synced",
        Store::Etcd(_) => "etcd",
    };
    let tag = name.replace(' ', "-");
    let dir = std::env::temp_dir().join(format!("lepton-load-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = ServiceConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: dir.clone(),
        durable: !matches!(store, Store::NotSynced),
        max_tasks_per_request: batch as usize,
        ..ServiceConfig::default()
    };
    if let Store::Etcd(endpoints) = store {
        config.store = lepton_service::StoreKind::Etcd;
        config.etcd = Some(lepton_service::EtcdSection {
            endpoints: endpoints.split(',').map(str::to_owned).collect(),
            prefix: format!("/lepton-load-{}/", std::process::id()),
            // What `scripts/backends.sh` starts etcd with.
            max_txn_ops: 1_024,
            ..lepton_service::EtcdSection::default()
        });
    }
    let service = lepton_service::start(config, 2).expect("the service starts");
    let base = format!("http://{}", service.address());
    // A replicated instance serves once it leads.
    while !ureq::get(&format!("{base}/v1/leader"))
        .call()
        .ok()
        .and_then(|r| r.into_json::<serde_json::Value>().ok())
        .is_some_and(|answer| answer["role"] == "leader")
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    ureq::post(&format!("{base}/v1/nodes/0/cordon"))
        .call()
        .expect("cordon");
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let url = format!("{base}/v1/tasks");
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                let mut latencies = Vec::with_capacity(requests as usize);
                for request in 0..requests {
                    let first = (client * requests + request) * batch;
                    let tasks: Vec<String> = (first..first + batch)
                        .map(|id| {
                            format!(
                                r#"{{"id":{id},"request":{{"cpu_milli":10,"memory_mib":8}},"config":{{"command":"true"}}}}"#
                            )
                        })
                        .collect();
                    let body = format!("[{}]", tasks.join(","));
                    let sent = Instant::now();
                    let response = agent
                        .post(&url)
                        .set("Content-Type", "application/json")
                        .send_string(&body)
                        .expect("accepted");
                    assert_eq!(response.status(), 202);
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client"))
        .collect();
    let wall = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let total = (CLIENTS * requests) as f64;
    println!(
        "{:<10} {:>12.0} {:>14.0} {:>10.2} {:>10.2} {:>10.2}",
        name,
        total * batch as f64 / wall,
        total / wall,
        ms(at(0.50)),
        ms(at(0.99)),
        ms(at(1.0))
    );
    service.stop().expect("stopped");
    let _ = std::fs::remove_dir_all(dir);
}
