//! The JSON workload format: a full example loads and replays, and every
//! kind of bad input is an error with file, line and column — never a panic.

use std::path::PathBuf;

use lepton_core::fragmentation::TargetWorkload;
use lepton_core::model::{NodeKind, Priority, QosClass, Toleration};
use lepton_core::{GpuRequest, Gpus};
use lepton_sim::Error;
use lepton_sim::*;
use proptest::prelude::*;

const EXAMPLE: &str = r#"{
  "nodes": [
    {
      "id": 0,
      "name": "gpu-0",
      "kind": "server",
      "capacity": {"cpu_milli": 64000, "memory_mib": 262144},
      "gpus": {"model": "V100M32", "count": 8},
      "labels": {"rack": "r1"},
      "taints": [{"key": "dedicated", "value": "ml"}],
      "zone": "eu-1a",
      "price_per_hour": 12.5
    },
    {"id": 1, "kind": "vm", "capacity": {"cpu_milli": 32000, "memory_mib": 131072}}
  ],
  "tasks": [
    {
      "spec": {
        "id": 0,
        "name": "train",
        "request": {"cpu_milli": 8000, "memory_mib": 32768},
        "gpu": {"count": 2, "milli_per_gpu": 1000},
        "priority": 200,
        "qos": "latency_sensitive",
        "constraints": {
          "gpu_models": ["V100M32"],
          "node_selector": {"rack": "r1"},
          "tolerations": [{"key": "dedicated"}],
          "anti_affinity": "trainers"
        }
      },
      "arrival_s": 0,
      "duration_s": 3600
    },
    {"spec": {"id": 1, "request": {"cpu_milli": 2000}}, "arrival_s": 30},
    {"spec": {"id": 2, "request": {"cpu_milli": 500, "memory_mib": 64}}, "arrival_s": 60, "duration_s": 5}
  ]
}"#;

/// Writes `bytes` to a fresh temporary file and returns its path.
fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lepton-workload-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("temp file");
    path
}

fn load_error(json: &str) -> (usize, Option<String>, String) {
    match parse_workload(json, "w.json") {
        Err(Error::Load {
            path,
            line,
            column,
            message,
        }) => {
            assert_eq!(path, "w.json");
            (line, column, message)
        }
        other => panic!("expected a load error for {json:?}, got {other:?}"),
    }
}

fn with_tasks(tasks: &str) -> String {
    format!(r#"{{"nodes": [{{"id": 0, "capacity": {{"cpu_milli": 1000}}}}], "tasks": [{tasks}]}}"#)
}

fn with_nodes(nodes: &str) -> String {
    format!(r#"{{"nodes": [{nodes}], "tasks": []}}"#)
}

#[test]
fn the_example_loads_from_a_file_and_replays() {
    let path = temp_file("example.json", EXAMPLE.as_bytes());
    let workload = read_workload(&path).unwrap();
    assert_eq!(workload.nodes[0].gpus, Gpus::new("V100M32", 8));
    assert_eq!(workload.nodes[1].kind, NodeKind::Vm);
    let train = &workload.tasks[0].spec;
    assert_eq!(train.gpu, GpuRequest::whole(2));
    assert_eq!(train.priority, Priority(200));
    assert_eq!(train.qos, QosClass::LatencySensitive);
    assert_eq!(
        train.constraints.tolerations,
        vec![Toleration::key("dedicated")]
    );
    assert_eq!(workload.tasks[1].spec.priority, Priority::NORMAL);
    assert_eq!(workload.tasks[1].duration_s, None);

    let result = run_timed(
        &workload.nodes,
        &workload.tasks,
        &TargetWorkload::default(),
        lepton_test_support::first_fit(),
        &TimedConfig::default(),
    )
    .unwrap();
    assert_eq!(result.tasks_placed, 3);
    assert_eq!(result.tasks_completed, 2);
    assert_eq!(result.tasks_running_at_end, 1);
    assert_eq!(result.end_s, 3600.0);

    // What serializes reads back the same.
    let again = parse_workload(&serde_json::to_string(&workload).unwrap(), "again").unwrap();
    assert_eq!(
        serde_json::to_string(&again).unwrap(),
        serde_json::to_string(&workload).unwrap()
    );
}

#[test]
fn syntax_and_type_errors_carry_line_and_column() {
    // Wrong type, on line 2.
    let (line, column, message) =
        load_error("{\"nodes\": [\n{\"id\": \"zero\", \"capacity\": {}}], \"tasks\": []}");
    assert_eq!(line, 2);
    assert!(column.is_some());
    assert!(
        message.starts_with("nodes[0]: invalid type: string \"zero\""),
        "{message}"
    );
    assert!(!message.contains(" at line "), "{message}");

    let cases = [
        // Truncated.
        (&EXAMPLE[..EXAMPLE.len() / 2], "EOF while parsing"),
        ("{\"nodes\": [", "EOF while parsing"),
        // Not JSON numbers.
        (
            r#"{"nodes": [{"id": 0, "capacity": {"cpu_milli": NaN}}], "tasks": []}"#,
            "expected value",
        ),
        (
            r#"{"nodes": [{"id": 0, "capacity": {"cpu_milli": 1e400}}], "tasks": []}"#,
            "number out of range",
        ),
        (
            r#"{"nodes": [{"id": 0, "capacity": {"cpu_milli": 18446744073709551616}}], "tasks": []}"#,
            "invalid type",
        ),
        (
            r#"{"nodes": [{"id": -1, "capacity": {"cpu_milli": 1}}], "tasks": []}"#,
            "invalid value: integer `-1`",
        ),
        (
            r#"{"nodes": [{"id": 0, "capacity": {"cpu_milli": 1.5}}], "tasks": []}"#,
            "invalid type: floating point",
        ),
        (
            &with_tasks(
                r#"{"spec": {"id": 1, "request": {"cpu_milli": 1}, "priority": 256}, "arrival_s": 0}"#,
            ),
            "tasks[0]: invalid value: integer `256`",
        ),
        // Unknown fields and values.
        (
            r#"{"nodes": [], "tasks": [], "extra": 1}"#,
            "unknown field `extra`",
        ),
        (
            &with_nodes(r#"{"id": 0, "capacity": {"cpus": 1}}"#),
            "nodes[0]: unknown field `cpus`",
        ),
        (
            &with_nodes(r#"{"id": 0, "kind": "mainframe", "capacity": {"cpu_milli": 1}}"#),
            "unknown variant `mainframe`",
        ),
        (
            &with_tasks(r#"{"spec": {"id": 1, "request": {"cpu_milli": 1}}, "arrival": 0}"#),
            "tasks[0]: unknown field `arrival`",
        ),
        // Missing fields and wrong shapes.
        (r#"{"nodes": []}"#, "missing field `tasks`"),
        (
            &with_tasks(r#"{"spec": {"id": 1, "request": {"cpu_milli": 1}}}"#),
            "tasks[0]: missing field `arrival_s`",
        ),
        ("[]", "expected a JSON object with \"nodes\" and \"tasks\""),
        ("  [{\"nodes\": []}]", "expected a JSON object"),
        (
            &with_nodes("[0, \"n\", \"server\", {}]"),
            "nodes[0]: expected an object",
        ),
        (
            r#"{"nodes": {}, "tasks": []}"#,
            "invalid type: map, expected a sequence",
        ),
        (r#"{"nodes": [], "tasks": []} {}"#, "trailing characters"),
        // A byte-order mark is skipped: what follows is judged.
        ("\u{feff}{}", "missing field `nodes`"),
    ];
    for (json, expected) in cases {
        let (line, _, message) = load_error(json);
        assert!(line >= 1, "{json}");
        assert!(message.contains(expected), "{json}: {message}");
    }
}

#[test]
fn invalid_and_duplicate_elements_name_index_id_and_line() {
    let duplicate_nodes = "{\"nodes\": [\n  {\"id\": 7, \"capacity\": {\"cpu_milli\": 1}},\n  {\"id\": 8, \"capacity\": {\"cpu_milli\": 1}},\n  {\"id\": 7, \"capacity\": {\"cpu_milli\": 1}}\n], \"tasks\": []}";
    let (line, _, message) = load_error(duplicate_nodes);
    assert_eq!(line, 4);
    assert_eq!(message, "nodes[2]: node n-7 is already nodes[0]");

    let task = |id: u64| {
        format!(r#"{{"spec": {{"id": {id}, "request": {{"cpu_milli": 1}}}}, "arrival_s": 0}}"#)
    };
    let duplicate_tasks = with_tasks(&format!("{},\n{},\n{}", task(1), task(2), task(2)));
    let (line, _, message) = load_error(&duplicate_tasks);
    assert_eq!(line, 3);
    assert_eq!(message, "tasks[2]: task t-2 is already tasks[1]");

    let cases = [
        (
            with_tasks(r#"{"spec": {"id": 4, "request": {"cpu_milli": 1}, "gpu": {"count": 1, "milli_per_gpu": 1500}}, "arrival_s": 0}"#),
            "tasks[0]: task t-4 asks for 1500 milli-GPUs on one GPU; a GPU has 1000",
        ),
        (
            with_tasks(r#"{"spec": {"id": 5, "request": {}}, "arrival_s": 0}"#),
            "tasks[0]: task t-5 requests nothing: every resource and GPU amount is 0",
        ),
        (
            with_tasks(r#"{"spec": {"id": 6, "request": {"cpu_milli": 1}, "gpu": {"count": 2, "milli_per_gpu": 0}}, "arrival_s": 0}"#),
            "tasks[0]: task t-6 asks for 2 GPUs with 0 milli each; both must be 0 or both positive",
        ),
        (
            with_tasks(r#"{"spec": {"id": 7, "request": {"cpu_milli": 1}}, "arrival_s": 18446744073709551615, "duration_s": 1}"#),
            "tasks[0]: task t-7: arrival_s + duration_s is after the end of virtual time (18446744073709 s)",
        ),
        (
            with_tasks(r#"{"spec": {"id": 8, "request": {"extended": {"fpga": 0}}}, "arrival_s": 0}"#),
            "tasks[0]: task t-8 requests nothing: every resource and GPU amount is 0",
        ),
        (
            with_nodes(r#"{"id": 3, "capacity": {}}"#),
            "nodes[0]: node n-3 offers no capacity: every resource and GPU amount is 0",
        ),
        (
            with_nodes(r#"{"id": 3, "capacity": {"cpu_milli": 1}, "gpus": {"model": "T4", "count": 65}}"#),
            "nodes[0]: node n-3 declares 65 GPUs; at most 64 per node are supported",
        ),
        (
            with_nodes(r#"{"id": 3, "capacity": {"cpu_milli": 1}, "price_per_hour": -1}"#),
            "nodes[0]: node n-3 has price per hour -1; it must be from 0 to 1e6",
        ),
    ];
    for (json, expected) in cases {
        let (_, _, message) = load_error(&json);
        assert_eq!(message, expected, "{json}");
    }
}

#[test]
fn empty_missing_and_binary_files_are_typed_errors() {
    for text in ["", "  \n\t"] {
        let path = temp_file("empty.json", text.as_bytes());
        assert_eq!(
            read_workload(&path).unwrap_err().to_string(),
            format!(
                "{}:1: the file is empty: expected a JSON object with \"nodes\" and \"tasks\"",
                path.display()
            )
        );
    }
    assert!(matches!(
        read_workload(&PathBuf::from("/nonexistent/workload.json")),
        Err(Error::Io { .. })
    ));
    let binary = temp_file(
        "binary.json",
        &[b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
    );
    assert!(matches!(
        read_workload(&binary),
        Err(Error::Load { line: 1, .. })
    ));
    let deep = "[".repeat(100_000);
    assert!(matches!(
        parse_workload(&deep, "deep"),
        Err(Error::Load { .. })
    ));
}

#[test]
fn every_truncation_of_the_example_is_an_error_not_a_panic() {
    for end in 0..EXAMPLE.len() {
        if EXAMPLE.is_char_boundary(end) {
            assert!(parse_workload(&EXAMPLE[..end], "cut").is_err(), "{end}");
        }
    }
}

proptest! {
    /// Any byte changed anywhere: a workload or an error, never a panic.
    #[test]
    fn corrupted_examples_never_panic(position in 0..EXAMPLE.len(), byte in any::<u8>()) {
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        bytes[position] = byte;
        let path = temp_file(&format!("corrupt-{position}-{byte}.json"), &bytes);
        let _ = read_workload(&path);
        let _ = std::fs::remove_file(&path);
    }

    /// Arbitrary text: never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse_workload(&text, "fuzz");
    }
}
