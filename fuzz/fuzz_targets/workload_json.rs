//! The JSON workload reader on arbitrary text: it may refuse it, with an
//! error, but never panic, and everything it accepts is valid.

#![no_main]

use lepton_sim::parse_workload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(workload) = parse_workload(text, "fuzz.json") {
        for node in &workload.nodes {
            assert!(
                node.validate().is_ok(),
                "accepted an invalid node: {node:?}"
            );
        }
        for task in &workload.tasks {
            assert!(
                task.spec.validate().is_ok(),
                "accepted an invalid task: {task:?}"
            );
        }
    }
});
