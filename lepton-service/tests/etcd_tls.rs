//! The etcd store over TLS with a client certificate: a single etcd member
//! (Debian's `etcd`, installed by `bash scripts/backends.sh start etcd`)
//! started here on a free port with certificates made for the test,
//! requiring client certificates. The service leads and accepts a task
//! through it; without its certificate it does not start, and says why.

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lepton_service::{EtcdSection, ServiceConfig, StoreKind};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use support::{eventually, TestService};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA, and a server (127.0.0.1) and a client certificate it signed, as
/// PEM files in `dir`.
fn certificates(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    for (name, names, usage) in [
        (
            "server",
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        (
            "client",
            vec!["lepton".to_owned()],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

/// An etcd member on `port` speaking TLS only, requiring client
/// certificates; killed when dropped.
struct Etcd(Child);

impl Etcd {
    fn start(dir: &Path, port: u16) -> Etcd {
        let peer = free_port();
        let file = |name: &str| dir.join(name).display().to_string();
        let client_url = format!("https://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args([
                "--name",
                "tls",
                "--data-dir",
                &file("etcd-data"),
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("tls={peer_url}"),
                "--cert-file",
                &file("server.crt"),
                "--key-file",
                &file("server.key"),
                "--trusted-ca-file",
                &file("ca.crt"),
                "--client-cert-auth",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("etcd.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("etcd: {e}: run `bash scripts/backends.sh start etcd` to install it")
            });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "etcd did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Etcd(child)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_etcd_store_speaks_tls_with_a_client_certificate() {
    let dir = std::env::temp_dir().join(format!("lepton-etcd-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    let port = free_port();
    let _etcd = Etcd::start(&dir, port);
    let section = EtcdSection {
        endpoints: vec![format!("https://127.0.0.1:{port}")],
        lease_ttl_s: 2,
        ca: Some(dir.join("ca.crt")),
        cert: Some(dir.join("client.crt")),
        key: Some(dir.join("client.key")),
        ..EtcdSection::default()
    };
    let with = |section: EtcdSection| {
        move |config: &mut ServiceConfig| {
            config.store = StoreKind::Etcd;
            config.etcd = Some(section);
        }
    };
    let service = TestService::start("etcd-tls", with(section.clone()));
    eventually("it leads", || {
        let (_, body) = service.call("GET", "/v1/leader", None, None);
        body.contains("\"role\":\"leader\"")
    });
    let task = r#"{"id": 5, "request": {"cpu_milli": 10, "memory_mib": 8}, "config": {"command": "true"}}"#;
    let (status, body) = service.call("POST", "/v1/tasks", None, Some(task));
    assert_eq!(status, 202, "{body}");
    eventually("the task completes", || {
        service
            .call("GET", "/v1/tasks/5", None, None)
            .1
            .contains("completed")
    });
    drop(service);

    // Without its certificate etcd refuses it: no start, and the reason.
    let mut config = ServiceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("no-cert"),
        ..ServiceConfig::default()
    };
    with(EtcdSection {
        cert: None,
        key: None,
        ..section
    })(&mut config);
    let error = lepton_service::start(config, 1).unwrap_err().to_string();
    assert!(
        error.contains(&format!("https://127.0.0.1:{port}")),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
