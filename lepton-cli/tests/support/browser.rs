//! Headless Chromium (Debian's package; `scripts/test.sh` installs it),
//! for the pages Lepton serves or writes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lepton-report-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The browser: `LEPTON_CHROMIUM` or Debian's `/usr/bin/chromium`. Missing
/// fails the test (it never skips) and says how to install it.
fn chromium() -> PathBuf {
    let path = std::env::var_os("LEPTON_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: `apt-get install chromium` (scripts/test.sh does it)",
        path.display()
    );
    path
}

/// Loads `url` in headless Chromium: the DOM after its scripts ran (and
/// their timers and requests, within a few seconds of virtual time), and
/// what the browser logged (console errors included).
pub(crate) fn load(url: &str, screenshot: Option<&Path>) -> (String, String) {
    load_with(url, screenshot, &[])
}

/// As [`load`], with more of Chromium's flags (`--host-resolver-rules=…`).
pub(crate) fn load_with(
    url: &str,
    screenshot: Option<&Path>,
    flags: &[String],
) -> (String, String) {
    // A profile per load: two browsers never share one.
    static LOADS: AtomicUsize = AtomicUsize::new(0);
    let profile = scratch(&format!(
        "profile-{}",
        LOADS.fetch_add(1, Ordering::Relaxed)
    ));
    let mut command = Command::new(chromium());
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1200,2000",
        "--virtual-time-budget=4000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command.args(flags);
    match screenshot {
        Some(png) => command.arg(format!("--screenshot={}", png.display())),
        None => command.arg("--dump-dom"),
    };
    let output = command.arg(url).output().unwrap();
    assert!(output.status.success(), "chromium failed: {output:?}");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
