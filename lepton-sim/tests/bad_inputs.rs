//! A catalogue of bad trace CSV rows and JSON workloads: each gets its
//! typed error naming the file, the line, the column and the value at fault,
//! and nothing panics.

use lepton_sim::*;

/// Where a load error should be: line, column, and text of its message.
type At = (usize, Option<&'static str>, &'static str);

// ---------------------------------------------------------------- trace CSV

const POD_HEADER: &str = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,creation_time\n";
const NODE_HEADER: &str = "sn,cpu_milli,memory_mib,gpu,model\n";

/// Asserts `result` is a load error of `source` at `line` and `column`
/// whose message contains `names`.
fn assert_load_error<T: std::fmt::Debug>(
    result: Result<T, Error>,
    source: &str,
    (line, column, names): At,
) {
    let error = result.expect_err("a load error");
    let Error::Load {
        path,
        line: at,
        column: in_column,
        message,
    } = &error
    else {
        panic!("expected a load error, got {error:?}");
    };
    assert_eq!(
        (path.as_str(), *at, in_column.as_deref()),
        (source, line, column),
        "{error}"
    );
    assert!(message.contains(names), "{error}");
    let prefix = match column {
        Some(column) => format!("{source}:{line}: column {column}: "),
        None => format!("{source}:{line}: "),
    };
    assert!(error.to_string().starts_with(&prefix), "{error}");
}

#[test]
fn malformed_pod_rows_name_file_line_column_and_value() {
    let good = "p0,1000,1024,1,500,,LS,0\n";
    let cases: [(&str, At); 20] = [
        ("", (1, None, "the file has a header but no rows")),
        ("\n\n", (1, None, "no rows: expected at least one pod")),
        (
            "p0,1000,1024,1,500\n",
            (2, None, "expected 8 fields, found 5"),
        ),
        (
            "p0,1000,1024,1,500,,LS,0,extra\n",
            (2, None, "expected 8 fields, found 9"),
        ),
        (
            "p0,-1000,1024,0,0,,LS,0\n",
            (2, Some("cpu_milli"), "\"-1000\""),
        ),
        (
            "p0,1000,18446744073709551616,0,0,,LS,0\n",
            (2, Some("memory_mib"), "\"18446744073709551616\""),
        ),
        (
            "p0,1000,1024,4294967296,1000,,LS,0\n",
            (2, Some("num_gpu"), "\"4294967296\""),
        ),
        ("p0,NaN,1024,0,0,,LS,0\n", (2, Some("cpu_milli"), "\"NaN\"")),
        ("p0,inf,1024,0,0,,LS,0\n", (2, Some("cpu_milli"), "\"inf\"")),
        (
            "p0,1000.5,1024,0,0,,LS,0\n",
            (2, Some("cpu_milli"), "\"1000.5\""),
        ),
        ("p0,,1024,0,0,,LS,0\n", (2, Some("cpu_milli"), "\"\"")),
        (
            "p0,1000,1024,0,0,,LS,-5\n",
            (2, Some("creation_time"), "\"-5\""),
        ),
        (
            "p0,1000,1024,1,1001,,LS,0\n",
            (2, None, "pod \"p0\" asks for 1001 milli-GPUs"),
        ),
        (
            "p0,1000,1024,2,0,,LS,0\n",
            (2, None, "asks for 2 GPUs with 0 milli each"),
        ),
        (
            "p0,0,0,0,0,,LS,0\n",
            (2, None, "pod \"p0\" requests nothing"),
        ),
        ("p0,1,1,0,0,,Gold,0\n", (2, Some("qos"), "\"Gold\"")),
        (
            "p0,1000,1024,1000000,1000,,LS,0\n",
            (
                2,
                Some("num_gpu"),
                "num_gpu = 1000000 is out of range: 0 to 64",
            ),
        ),
        (
            "p0,1000,1024,65,1000,,LS,0\n",
            (2, Some("num_gpu"), "num_gpu = 65 is out of range"),
        ),
        (
            "p-1,1000,1024,1,500,,LS,0\np-2,1,1,0,0,,LS,0\np-1,1,1,0,0,,LS,0\n",
            (
                4,
                Some("name"),
                "pod name \"p-1\" is already used on line 2",
            ),
        ),
        (
            "\np-7,1000,1024,1,1001,,LS,0\n",
            (3, None, "pod \"p-7\" asks for 1001 milli-GPUs"),
        ),
    ];
    for (rows, expected) in cases {
        let text = format!("{POD_HEADER}{rows}");
        assert_load_error(parse_openb_pods(&text, "pods.csv"), "pods.csv", expected);
    }
    assert_load_error(
        parse_openb_pods("", "pods.csv"),
        "pods.csv",
        (1, None, "the file is empty"),
    );
    // A bad row after good ones and a blank line: the line is the bad one's.
    let late = format!(
        "{POD_HEADER}{good}\n{}p9,1000,1024,1\n",
        good.replacen("p0", "p1", 1)
    );
    assert_load_error(
        parse_openb_pods(&late, "pods.csv"),
        "pods.csv",
        (5, None, "expected 8 fields, found 4"),
    );
    assert_eq!(
        parse_openb_pods(&format!("{POD_HEADER}{good}"), "pods.csv")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn header_and_time_mistakes_are_named() {
    let times = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time,deletion_time\n";
    assert_load_error(
        parse_openb_pods(&format!("{times}p-1,1000,1024,0,0,100,50\n"), "pods.csv"),
        "pods.csv",
        (
            2,
            Some("deletion_time"),
            "pod \"p-1\" is deleted at 50 s, before its creation at 100 s",
        ),
    );
    let pods = parse_openb_pods(&format!("{times}p-1,1000,1024,0,0,100,100\n"), "pods.csv")
        .expect("deleted when created is allowed");
    assert_eq!(pods[0].deletion_time_s, Some(100));
    assert_load_error(
        parse_openb_pods(
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli,cpu_milli\np,1,1,0,0,1\n",
            "pods.csv",
        ),
        "pods.csv",
        (1, Some("cpu_milli"), "column \"cpu_milli\" is given twice"),
    );
    assert_load_error(
        parse_openb_nodes(
            "sn,cpu_milli,memory_mib,gpu,model\nn-1,1000,1024,0,\nn-1,1000,1024,0,\n",
            "nodes.csv",
        ),
        "nodes.csv",
        (3, Some("sn"), "node name \"n-1\" is already used on line 2"),
    );
    // A UTF-8 byte-order mark is not part of the first column's name.
    let marked = format!("\u{feff}{NODE_HEADER}n-1,1000,1024,0,\n");
    let nodes = parse_openb_nodes(&marked, "nodes.csv").expect("a BOM is skipped");
    assert_eq!(nodes[0].name.as_deref(), Some("n-1"));
}

#[test]
fn malformed_node_rows_name_file_line_column_and_value() {
    let cases: [(&str, At); 7] = [
        ("", (1, None, "expected at least one node")),
        (
            "n0,64000,262144,2\n",
            (2, None, "expected 5 fields, found 4"),
        ),
        ("n0,64000,262144,-2,T4\n", (2, Some("gpu"), "\"-2\"")),
        ("n0,64000,262144,65,T4\n", (2, None, "declares 65 GPUs")),
        ("n0,0,0,0,\n", (2, None, "node \"n0\" offers no capacity")),
        (
            "n0,64000,262144,2,\n",
            (2, Some("model"), "needs a GPU model"),
        ),
        ("n0,64000,nan,0,\n", (2, Some("memory_mib"), "\"nan\"")),
    ];
    for (rows, expected) in cases {
        let text = format!("{NODE_HEADER}{rows}");
        assert_load_error(parse_openb_nodes(&text, "nodes.csv"), "nodes.csv", expected);
    }
    assert_load_error(
        parse_openb_nodes("", "nodes.csv"),
        "nodes.csv",
        (1, None, "the file is empty"),
    );
    assert_load_error(
        parse_openb_nodes("sn,cpu_milli\n", "nodes.csv"),
        "nodes.csv",
        (1, Some("memory_mib"), "no column \"memory_mib\""),
    );
}

// ---------------------------------------------------------------- JSON workload

#[test]
fn malformed_workloads_name_line_and_value() {
    let node = r#"{"id": 1, "capacity": {"cpu_milli": 1000}}"#;
    let task = |id: u64, rest: &str| {
        format!(
            r#"{{"spec": {{"id": {id}, "request": {{"cpu_milli": 1}}{rest}}}, "arrival_s": 0}}"#
        )
    };
    let workload = |nodes: &str, tasks: &[String]| {
        format!(
            "{{\"nodes\": [{nodes}],\n\"tasks\": [\n{}\n]}}",
            tasks.join(",\n")
        )
    };
    let whole = workload(node, &[task(1, "")]);
    let truncated = whole[..whole.find("\"arrival_s\"").expect("a task")].to_owned();
    let cases = [
        (String::new(), 1, "the file is empty"),
        (" \n\t".to_owned(), 1, "the file is empty"),
        (
            r#"{"nodes": [{"id": 1, "capa"#.to_owned(),
            1,
            "EOF while parsing",
        ),
        (truncated, 3, "EOF while parsing"),
        (
            workload(
                r#"{"id": 1, "capacity": {"cpu_milli": 1}, "price_per_hour": NaN}"#,
                &[],
            ),
            1,
            "expected value",
        ),
        (
            workload(
                r#"{"id": 1, "capacity": {"cpu_milli": 1}, "price_per_hour": -0.5}"#,
                &[],
            ),
            1,
            "n-1 has price per hour -0.5",
        ),
        (
            workload(
                node,
                &[task(1, r#", "gpu": {"count": 1, "milli_per_gpu": 1001}"#)],
            ),
            3,
            "t-1 asks for 1001 milli-GPUs",
        ),
        (
            workload(node, &[task(1, ""), task(2, ""), task(1, "")]),
            5,
            "tasks[2]: task t-1 is already tasks[0]",
        ),
        (
            workload(&format!("{node}, {node}"), &[]),
            1,
            "nodes[1]: node n-1 is already nodes[0]",
        ),
        (
            workload(node, &[task(1, r#", "gpus": 1"#)]),
            3,
            "unknown field `gpus`",
        ),
        (
            workload(
                node,
                &[task(1, "").replace("\"arrival_s\": 0", "\"arrival_s\": -1")],
            ),
            3,
            "integer `-1`",
        ),
        (
            workload(
                node,
                &[task(1, "").replace("\"arrival_s\": 0", "\"arrival_s\": 18446744073709551616")],
            ),
            3,
            "floating point `1.8446744073709552e+19`, expected u64",
        ),
    ];
    for (json, line, names) in cases {
        match parse_workload(&json, "w.json") {
            Err(Error::Load {
                path,
                line: at,
                message,
                ..
            }) => {
                assert_eq!((path.as_str(), at), ("w.json", line), "{json}: {message}");
                assert!(message.contains(names), "{json}: {message}");
            }
            other => panic!("{json}: expected a load error, got {other:?}"),
        }
    }
}

#[test]
fn a_byte_order_mark_before_a_workload_is_skipped_and_columns_still_hold() {
    let json =
        "\u{feff}{\"nodes\": [{\"id\": 1, \"capacity\": {\"cpu_milli\": 1000}}],\n\"tasks\": []}";
    let workload = parse_workload(json, "w.json").expect("a BOM is skipped");
    assert_eq!(workload.nodes.len(), 1);
    // The column of an error on the first line counts the mark's bytes.
    let bad = "\u{feff}{\"nodes\": 7, \"tasks\": []}";
    let error = parse_workload(bad, "w.json").expect_err("nodes is not a list");
    assert!(error.to_string().starts_with("w.json:1:"), "{error}");
}
