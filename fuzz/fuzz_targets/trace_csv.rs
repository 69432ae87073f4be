//! The openb CSV readers on arbitrary text: they may refuse it, with an
//! error, but never panic, and every node and pod they accept is valid.

#![no_main]

use lepton_sim::{parse_openb_nodes, parse_openb_pods};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(nodes) = parse_openb_nodes(text, "fuzz.csv") {
        for node in nodes {
            assert!(
                node.validate().is_ok(),
                "accepted an invalid node: {node:?}"
            );
        }
    }
    if let Ok(pods) = parse_openb_pods(text, "fuzz.csv") {
        for pod in pods {
            assert!(
                pod.spec.validate().is_ok(),
                "accepted an invalid pod: {pod:?}"
            );
        }
    }
});
