//! The trace CSV readers (openb, and the DLRM serving trace with the data
//! center it makes) on arbitrary text: they may refuse it, with an error,
//! but never panic, and every node, pod and instance they accept is valid.

#![no_main]

use lepton_sim::scenario::{DatacenterConfig, FleetWorld, TraceWindow};
use lepton_sim::{parse_dlrm, parse_openb_nodes, parse_openb_pods};
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
    if let Ok(instances) = parse_dlrm(text, "fuzz.csv") {
        for instance in &instances {
            assert!(
                instance.spec.validate().is_ok(),
                "accepted an invalid instance: {instance:?}"
            );
        }
        // The window's world: an error or a valid fleet, never a panic.
        if let Ok(world) =
            FleetWorld::from_dlrm(&instances, TraceWindow::WHOLE, &DatacenterConfig::default())
        {
            assert_eq!(world.tasks.len(), world.config.tasks);
        }
    }
});
