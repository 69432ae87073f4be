#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 20) each.
# Exits non-zero as soon as a target crashes; the crashing input is saved
# under fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz builds with AddressSanitizer through the nightly-only
# `-Zsanitizer` flag; RUSTC_BOOTSTRAP=1 makes the stable compiler accept it,
# so no nightly toolchain is needed. (`--sanitizer none` builds on plain
# stable, but would no longer check crossbeam's unsafe code for memory errors.)
export RUSTC_BOOTSTRAP=1

seconds="${FUZZ_SECONDS:-20}"
targets=$(cargo fuzz list)
if [[ -z "$targets" ]]; then
    echo "fuzz.sh: cargo fuzz list found no targets" >&2
    exit 1
fi
for target in $targets; do
    echo "==> fuzzing $target for ${seconds}s"
    cargo fuzz run "$target" -- -max_total_time="$seconds"
done
