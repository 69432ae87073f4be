//! `lepton serve` on the library's other backends, each against a real
//! server: libvirt's test driver (no daemon needed) and EC2 on moto
//! (started by `bash scripts/backends.sh start aws`; its endpoint in
//! `LEPTON_AWS_ENDPOINT`). A missing server fails the test.

#![allow(clippy::unwrap_used)]

mod support;

#[cfg(any(feature = "libvirt", feature = "aws"))]
use support::{eventually, TestService};

#[cfg(any(feature = "libvirt", feature = "aws"))]
fn state(service: &TestService, id: u64) -> serde_json::Value {
    let (status, body) = service.call("GET", &format!("/v1/tasks/{id}"), None, None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[cfg(feature = "libvirt")]
#[test]
fn a_task_runs_as_a_libvirt_domain_and_is_cancelled() {
    let service = TestService::start("libvirt", |config| {
        config.local.enabled = false;
        config.libvirt = vec![lepton_service::LibvirtSection {
            uri: "test:///default".into(),
            node: 800,
        }];
    });
    let task = r#"{"id": 8001, "request": {"cpu_milli": 1000, "memory_mib": 64}}"#;
    assert_eq!(service.call("POST", "/v1/tasks", None, Some(task)).0, 202);
    eventually("the domain runs", || {
        state(&service, 8001)["state"] == "running"
    });
    assert_eq!(state(&service, 8001)["node"], 800);
    let (status, body) = service.call("POST", "/v1/tasks/8001/cancel", None, Some("{}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(state(&service, 8001)["state"], "cancelled");
}

#[cfg(feature = "aws")]
#[test]
fn a_task_runs_as_an_ec2_instance_and_a_restart_adopts_it() {
    let endpoint = std::env::var("LEPTON_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "LEPTON_AWS_ENDPOINT is not set: run `bash scripts/backends.sh start aws` and \
             `eval \"$(bash scripts/backends.sh env)\"` first"
        )
    });
    let cluster = format!("service-{}", std::process::id());
    let configure = |config: &mut lepton_service::ServiceConfig| {
        config.local.enabled = false;
        config.aws = vec![lepton_service::AwsSection {
            region: "us-east-1".into(),
            endpoint: Some(endpoint.clone()),
            image: Some("ami-12c6146b".into()),
            cluster: Some(cluster.clone()),
            instance_types: Some(vec!["t3.micro".into()]),
            max_instances_per_type: None,
        }];
    };
    let service = TestService::start("aws", configure);
    let task = r#"{"id": 6001, "request": {"cpu_milli": 1000, "memory_mib": 512},
                   "constraints": {"node_selector": {"aws.instance-type": "t3.micro"}}}"#;
    let (status, body) = service.call("POST", "/v1/tasks", None, Some(task));
    assert_eq!(status, 202, "{body}");
    eventually("the instance runs", || {
        state(&service, 6001)["state"] == "running"
    });
    let dir = service.dir.clone();
    drop(service);
    let service = TestService::start_in(dir, configure);
    let adopted = state(&service, 6001);
    assert_eq!(
        (adopted["state"].as_str(), adopted["attempts"].as_u64()),
        (Some("running"), Some(1)),
        "{adopted}"
    );
    let (status, _) = service.call("POST", "/v1/tasks/6001/cancel", None, Some("{}"));
    assert_eq!(status, 200);
}

#[test]
fn a_configuration_without_any_backend_is_refused() {
    let config = lepton_service::ServiceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: std::env::temp_dir().join(format!("lepton-service-none-{}", std::process::id())),
        local: lepton_service::LocalSection {
            enabled: false,
            ..lepton_service::LocalSection::default()
        },
        ..lepton_service::ServiceConfig::default()
    };
    let error = lepton_service::start(config, 1).unwrap_err().to_string();
    assert!(error.contains("no backend"), "{error}");
}
