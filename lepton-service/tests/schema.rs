//! The OpenAPI description and the server agree: schemathesis generates
//! requests from `GET /v1/openapi.json` (valid and invalid ones, and
//! sequences that follow the links between operations) and checks every
//! answer against the description — status codes, content types, bodies,
//! valid data accepted and invalid data refused. `scripts/test.sh`
//! installs schemathesis; `LEPTON_SCHEMATHESIS` names its executable
//! (default: `schemathesis` on the `PATH`).

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::TestService;

const TOKEN: &str = "schema-token";

#[test]
fn the_server_answers_as_its_openapi_description_says() {
    let service = TestService::start("schema", |config| {
        config.token = Some(TOKEN.into());
        config.queue = vec![lepton::admission::QueueSpec::new("team")];
    });
    // The tasks schemathesis submits are accepted and queued but never
    // run: their commands are whatever it generated. So the only node is
    // cordoned, and uncordoning (tested in api.rs) is left out.
    let (status, body) = service.call("POST", "/v1/nodes/0/cordon", Some(TOKEN), None);
    assert_eq!(status, 200, "{body}");
    // A task can match the schema and still be one no backend could ever
    // run (no `command` for the local backend, more than a whole node,
    // GPUs): what the backends can run is not a schema's to say, so a
    // submission may be refused with a 400 naming why.
    // The same holds for a plan of such tasks.
    let refusable = |path: &str| {
        format!(
            "[[operations]]\ninclude-path = \"{path}\"\ninclude-method = \"POST\"\n\
             checks.positive_data_acceptance.expected-statuses = \
             [\"2xx\", \"400\", \"401\", \"403\", \"404\", \"409\", \"429\"]\n"
        )
    };
    std::fs::write(
        service.dir.join("schemathesis.toml"),
        refusable("/v1/tasks") + &refusable("/v1/plan"),
    )
    .unwrap();
    let program =
        std::env::var("LEPTON_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned());
    let output = Command::new(&program)
        // Its cache (.schemathesis/) goes with the service's files.
        .current_dir(&service.dir)
        .args(["run", &service.url("/v1/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--exclude-path-regex", "uncordon"])
        .args(["--checks", "all", "--max-examples", "50", "--workers", "1"])
        // One worker: CPython 3.11's parser is not safe across threads
        // ("AST constructor recursion depth mismatch" in schemathesis).
        .args(["--seed", "1", "--no-color"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program:?} ({e}): scripts/test.sh installs it (pip install schemathesis) and sets LEPTON_SCHEMATHESIS")
        });
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found disagreements:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("Tested: 15"), "{report}");
    // The tasks' `queue` names the declared queues only.
    let (_, body) = service.call("GET", "/v1/openapi.json", Some(TOKEN), None);
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    let queue = document.pointer("/components/schemas/TaskSpec/properties/queue/enum");
    assert_eq!(queue, Some(&serde_json::json!(["team"])), "{body}");
    // Still cordoned: nothing it submitted ran.
    let (_, nodes) = service.call("GET", "/v1/nodes", Some(TOKEN), None);
    assert!(nodes.contains("\"state\":\"cordoned\""), "{nodes}");
}

#[test]
fn the_description_offers_only_the_policies_the_service_can_build() {
    let service = TestService::start("schema-policies", |config| {
        config.token = Some(TOKEN.into());
    });
    let (status, body) = service.call("GET", "/v1/openapi.json", Some(TOKEN), None);
    assert_eq!(status, 200);
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names = document
        .pointer("/components/schemas/PolicyName/enum")
        .and_then(|names| names.as_array())
        .unwrap();
    let names: Vec<&str> = names.iter().map(|n| n.as_str().unwrap()).collect();
    assert!(
        names.contains(&"bestfit") && names.contains(&"fgd"),
        "{names:?}"
    );
    // No rules file: `rule` would be refused.
    assert!(!names.contains(&"rule"), "{names:?}");
    // No queues: a task may not name one.
    let queue = document.pointer("/components/schemas/TaskSpec/properties/queue");
    assert_eq!(queue, None, "{body}");
    for name in names {
        let body = format!(r#"{{"name": "{name}"}}"#);
        let (status, answer) = service.call("PUT", "/v1/policy", Some(TOKEN), Some(&body));
        assert_eq!(status, 200, "{name}: {answer}");
    }
}
