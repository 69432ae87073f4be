//! How well lifetimes learned online predict Alibaba's DLRM serving trace
//! (the first piece of the intelligence issue): each instance created in
//! days 16–30 is predicted when it is created, from the instances deleted
//! before then (days 0–15 and the report days so far), by service, role
//! and shape, and by nothing (one distribution for all, the baseline).
//!
//! Run: `cargo run --release --example lifetimes`.

use lepton::sim::{dlrm_trace_path, lifetime_accuracy, read_dlrm, service_and_shape, DlrmInstance};

/// How instances are grouped: a name and the key of an instance.
type Kind<'a> = (&'a str, &'a dyn Fn(&DlrmInstance) -> String);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let instances = read_dlrm(&dlrm_trace_path())?;
    println!("days 16-30: predicted, median |log error|, below p10 / p50 / p90");
    let by_service = |i: &DlrmInstance| format!("{}/{}", i.app, i.gpu_node);
    let kinds: [Kind<'_>; 3] = [
        ("service, role and shape", &service_and_shape),
        ("service and role", &by_service),
        ("one for all (baseline)", &|_| String::new()),
    ];
    for (name, kind) in kinds {
        let a = lifetime_accuracy(&instances, 16, kind);
        println!(
            "{name:<24} {:>6} {:>6.2} (x{:.1}) {:>5.2} / {:.2} / {:.2}",
            a.predicted,
            a.median_abs_log_error,
            a.median_abs_log_error.exp(),
            a.below_p10,
            a.below_p50,
            a.below_p90
        );
    }
    Ok(())
}
