//! The demo's HTML report, loaded in a real browser: headless Chromium
//! (Debian's package; `scripts/test.sh` installs it) renders the page,
//! runs its script and takes a screenshot. The check fails on a script
//! error, a missing plot or an empty table — and is shown to fail on pages
//! broken in each of those ways.

#![allow(clippy::unwrap_used)]

use std::process::Command;

mod support;

use support::browser::{load, scratch};

/// What is wrong with a rendered report, if anything.
/// The demo's report: five plots for each data center (the synthetic
/// day and the DLRM trace) and the trace's lifetimes, two for the edge,
/// two for the hybrid cloud.
const PLOTS: usize = 15;
/// One table per scenario.
const TABLES: usize = 4;

fn problems(dom: &str, log: &str) -> Vec<String> {
    let mut found = Vec::new();
    if log.contains("Uncaught") {
        found.push("a script error".to_owned());
    }
    let headline = dom
        .split("id=\"headline\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or("");
    if !headline.contains("Lepton") {
        found.push(format!(
            "the script did not write the headline: {headline:?}"
        ));
    }
    let plots = dom.matches("<svg").count();
    if plots < PLOTS {
        found.push(format!("{plots} plots, expected {PLOTS}"));
    }
    for (index, table) in dom.split("<table").skip(1).enumerate() {
        let table = table.split("</table>").next().unwrap_or("");
        let rows = table.matches("<td").count();
        if rows == 0 {
            found.push(format!("table {index} is empty"));
        }
    }
    if dom.matches("<table").count() < TABLES {
        found.push("a table is missing".to_owned());
    }
    found
}

#[test]
fn the_report_renders_in_chromium_with_its_tables_plots_and_script() {
    let out = scratch("demo");
    let output = Command::new(env!("CARGO_BIN_EXE_lepton"))
        .args(["demo", "--vms", "100", "--tasks", "2000", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page = out.join("index.html");
    let url = format!("file://{}", page.display());
    let (dom, log) = load(&url, None);
    assert_eq!(problems(&dom, &log), Vec::<String>::new(), "{log}");
    assert!(dom.contains("datacenter: Lepton"), "{dom}");
    assert!(dom.contains("datacenter-trace: Lepton"), "{dom}");
    // Bars where x is a category: late starts by threshold, edge sites.
    assert!(dom.contains("Tasks that waited to start longer than"));
    assert!(dom.contains("&gt; 5 min") || dom.contains("> 5 min"));
    assert!(dom.contains("CPU utilization of each edge site"));
    // Learned parts: the demand forecast against what came, in both data
    // centers, and the trace's predicted lifetimes.
    assert_eq!(dom.matches("forecast and what came").count(), 2, "{dom}");
    assert!(dom.contains("ended before the predicted"), "{dom}");
    assert!(
        dom.contains("per service and shape (median error x"),
        "{dom}"
    );
    assert!(dom.contains("edge: Lepton"), "{dom}");
    assert!(dom.contains("hybrid: Lepton"), "{dom}");

    let png = out.join("screenshot.png");
    load(&url, Some(&png));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    assert!(bytes.len() > 20_000, "screenshot of {} bytes", bytes.len());

    // The check catches each way a page can break.
    let html = std::fs::read_to_string(&page).unwrap();
    let broken = [
        (
            "script",
            html.replace("JSON.parse(", "JSON.parsee("),
            "a script error",
        ),
        ("plot", html.replacen("<svg", "<div", 1), "plots"),
        (
            "table",
            html.replace("<td>", "<th>").replace("</td>", "</th>"),
            "is empty",
        ),
    ];
    for (name, text, expected) in broken {
        let dir = scratch(name);
        let broken_page = dir.join("index.html");
        std::fs::write(&broken_page, text).unwrap();
        let (dom, log) = load(&format!("file://{}", broken_page.display()), None);
        let found = problems(&dom, &log);
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{name}: {found:?}"
        );
    }
}
