//! HTTPS with a given certificate and key: curl (with the certificate as
//! its only trusted root) reaches the API; plain HTTP does not; a bad key
//! file stops the start, naming it.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use lepton_service::TlsSection;
use support::TestService;

/// `curl` with `args`: its exit status, stdout and stderr.
fn curl(args: &[&str]) -> (bool, String, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl (scripts/test.sh installs it)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_api_is_served_over_tls_with_the_given_certificate() {
    let dir = std::env::temp_dir().join(format!("lepton-service-tls-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();

    let tls = TlsSection {
        cert: cert_path.clone(),
        key: key_path.clone(),
    };
    let service = TestService::start("tls", |config| {
        config.tls = Some(tls);
        config.token = Some("s3cret".into());
    });
    let port = service.address.port();
    let https = |path: &str| format!("https://localhost:{port}{path}");
    let ca = cert_path.to_str().unwrap();

    let (ok, body, err) = curl(&["--cacert", ca, &https("/healthz")]);
    assert!(ok && body == "ok\n", "{body} {err}");
    let task = r#"{"id": 1, "request": {"cpu_milli": 10}, "config": {"command": "true"}}"#;
    let (ok, body, err) = curl(&[
        "--cacert",
        ca,
        "-H",
        "Authorization: Bearer s3cret",
        "-H",
        "Content-Type: application/json",
        "-d",
        task,
        &https("/v1/tasks"),
    ]);
    assert!(ok && body.contains("\"accepted\":[1]"), "{body} {err}");
    // Without trusting the certificate, curl refuses it.
    let (ok, _, err) = curl(&[&https("/healthz")]);
    assert!(!ok, "an untrusted certificate was accepted: {err}");
    // Plain HTTP gets no answer.
    let (ok, body, _) = curl(&[&format!("http://127.0.0.1:{port}/healthz")]);
    assert!(!ok || body != "ok\n", "plain HTTP answered: {body}");

    // A key file that is not a key stops the start, naming it.
    std::fs::write(&key_path, "not a key").unwrap();
    let config = lepton_service::ServiceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("data"),
        tls: Some(TlsSection {
            cert: cert_path,
            key: key_path.clone(),
        }),
        ..lepton_service::ServiceConfig::default()
    };
    let error = lepton_service::start(config, 1).unwrap_err().to_string();
    assert!(error.contains(&key_path.display().to_string()), "{error}");
}
