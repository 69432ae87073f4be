//! The openb trace readers: the real files load whole, and every kind of
//! malformed row is an error naming the file, line and column.
//!
//! The trace is the copy shipped in `data/alibaba-gpu-2023` (or
//! `LEPTON_TRACE_DIR`). A missing trace
//! fails these tests: it is never skipped.

mod support;

use std::path::PathBuf;

use lepton_core::model::{GpuModel, QosClass};
use lepton_core::GpuRequest;
use lepton_sim::{read_openb_nodes, read_openb_pods, Error};
use support::trace_file;

/// Writes `text` to a fresh temporary file and returns its path.
fn temp_csv(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lepton-trace-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file");
    path
}

#[test]
fn the_gpu_cluster_has_1213_nodes_and_6212_gpus() {
    let nodes = read_openb_nodes(&trace_file("openb_node_list_gpu_node.csv")).unwrap();
    assert_eq!(nodes.len(), 1213);
    let gpus: u32 = nodes.iter().map(|n| n.gpus.count).sum();
    assert_eq!(gpus, 6212);
    assert_eq!(nodes[0].name.as_deref(), Some("openb-node-0000"));
    assert_eq!(nodes[0].capacity.cpu_milli, 64_000);
    assert_eq!(nodes[0].gpus.model, Some(GpuModel::new("P100")));
}

#[test]
fn every_pod_list_loads_with_its_columns() {
    let default = read_openb_pods(&trace_file("openb_pod_list_default.csv")).unwrap();
    assert_eq!(default.len(), 8152);
    let first = &default[0];
    assert_eq!(first.spec.gpu, GpuRequest::whole(1));
    assert_eq!(first.spec.qos, QosClass::LatencySensitive);
    assert_eq!(first.creation_time_s, Some(0));
    assert_eq!(default[1].spec.gpu, GpuRequest::shared(460));

    let spec10 = read_openb_pods(&trace_file("openb_pod_list_gpuspec10.csv")).unwrap();
    assert_eq!(
        spec10
            .iter()
            .filter(|p| !p.spec.constraints.gpu_models.is_empty())
            .count(),
        732
    );

    // No constraints, QoS or times in this one: absent, not an error.
    let multi = read_openb_pods(&trace_file("openb_pod_list_multigpu20.csv")).unwrap();
    assert_eq!(multi.len(), 8324);
    assert!(multi.iter().all(|p| p.creation_time_s.is_none()));

    for name in ["openb_pod_list_gpushare20.csv", "openb_pod_list_cpu050.csv"] {
        assert!(!read_openb_pods(&trace_file(name)).unwrap().is_empty());
    }
}

#[test]
fn malformed_rows_name_file_line_and_column() {
    let header = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos\n";
    let cases = [
        ("bad_number.csv", "p0,1000,10,0,0,,LS\np1,12x,10,0,0,,LS\n", "3: column cpu_milli: \"12x\" is not a non-negative integer in range"),
        ("negative.csv", "p0,-5,10,0,0,,LS\n", "2: column cpu_milli: \"-5\" is not a non-negative integer in range"),
        ("overflow.csv", "p0,1,99999999999999999999999,0,0,,LS\n", "2: column memory_mib: \"99999999999999999999999\" is not a non-negative integer in range"),
        ("truncated.csv", "p0,1000,10,1\n", "2: expected 7 fields, found 4 (truncated or extra columns?)"),
        ("share.csv", "p0,1000,10,1,1500,,LS\n", "2: pod \"p0\" asks for 1500 milli-GPUs on one GPU; a GPU has 1000"),
        ("zero.csv", "p0,0,0,0,0,,LS\n", "2: pod \"p0\" requests nothing: every resource and GPU amount is 0"),
        ("qos.csv", "p0,1,1,0,0,,Premium\n", "2: column qos: \"Premium\" is not a QoS class (LS, BE, Burstable, Guaranteed)"),
    ];
    for (name, rows, expected) in cases {
        let path = temp_csv(name, &format!("{header}{rows}"));
        let message = read_openb_pods(&path).unwrap_err().to_string();
        assert_eq!(message, format!("{}:{expected}", path.display()), "{name}");
    }
}

#[test]
fn missing_and_empty_files_are_typed_errors() {
    let empty = temp_csv("empty.csv", "");
    assert_eq!(
        read_openb_pods(&empty).unwrap_err().to_string(),
        format!(
            "{}:1: the file is empty: expected a header row",
            empty.display()
        )
    );
    let no_column = temp_csv("nocol.csv", "name,cpu_milli\np0,1\n");
    assert!(matches!(
        read_openb_pods(&no_column),
        Err(Error::Load { line: 1, column: Some(c), .. }) if c == "memory_mib"
    ));
    assert!(matches!(
        read_openb_nodes(&PathBuf::from("/nonexistent/nodes.csv")),
        Err(Error::Io { .. })
    ));
    let gpu_without_model = temp_csv(
        "nodes.csv",
        "sn,cpu_milli,memory_mib,gpu,model\nn0,1000,10,2,\n",
    );
    assert_eq!(
        read_openb_nodes(&gpu_without_model)
            .unwrap_err()
            .to_string(),
        format!(
            "{}:2: column model: a node with GPUs needs a GPU model",
            gpu_without_model.display()
        )
    );
}
