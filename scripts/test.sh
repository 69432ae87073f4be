#!/usr/bin/env bash
# Lepton's whole test suite: formatting, lints, tests, docs and a short fuzz
# run. Installs what it needs when it is missing, so a clean machine works.
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh build gains nothing from incremental compilation's bookkeeping.
export CARGO_INCREMENTAL=0

# Each phase says how long it took, so a slow run shows where time went.
phase_started=$SECONDS
phase() {
    echo "   ($((SECONDS - phase_started)) s)"
    phase_started=$SECONDS
    echo "== $1"
}

for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        rustup component add "$component"
    fi
done

# Headless Chromium (Debian's package) loads the demo's HTML report in
# lepton-cli/tests/report.rs.
phase "chromium"
if ! command -v chromium >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null ||
        { apt-get update -q >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
fi
chromium --version

# protoc (Debian's protobuf-compiler) compiles etcd's protobufs in the
# etcd-client crate's build script.
phase "protoc"
if ! command -v protoc >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q protobuf-compiler >/dev/null ||
        { apt-get update -q >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q protobuf-compiler >/dev/null; }
fi
protoc --version

# iproute2 and nftables (util-linux's nsenter is always there) make the
# network namespaces and the cuts of the partition tests
# (lepton-cli/tests/partition.rs, through scripts/partition.sh); their etcd
# is the etcd-server the backend servers below install.
phase "iproute2, nftables"
if ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 nftables >/dev/null ||
        { apt-get update -q >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 nftables >/dev/null; }
fi
ip -V
nft --version

# Real backend servers for the adapters' tests: podman (Docker API),
# libvirtd (QEMU/TCG; test:///default needs none), moto (EC2) and a 3-member
# etcd cluster, installed and started by the script, stopped by PID when this
# script ends. A server that does not come up fails the run.
phase "backend servers"
bash scripts/backends.sh start all
trap 'bash scripts/backends.sh stop all' EXIT
eval "$(bash scripts/backends.sh env)"

# schemathesis checks the service against its OpenAPI description
# (lepton-service/tests/schema.rs); pinned, in a venv of its own
# (python3-venv came with the backends' moto).
phase "schemathesis"
tools="$PWD/target/tools-venv"
if ! [[ -x "$tools/bin/schemathesis" ]]; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check 'schemathesis==4.32.5'
fi
export LEPTON_SCHEMATHESIS="$tools/bin/schemathesis"
"$LEPTON_SCHEMATHESIS" --version

# Every feature: the adapters (aws is heavy to build; it is built once here,
# and everyday builds without features skip it).
features=(--workspace --all-features)

phase "cargo fmt --check"
cargo fmt --all --check
phase "lean facade"
# An embedder's build of the library compiles none of the CLI's stack.
if cargo tree -p lepton --no-default-features -e normal --prefix none |
    grep -E '^(clap|indicatif|plotters|tokio) '; then
    echo "the lepton library depends on the CLI's stack or tokio without features" >&2
    exit 1
fi
phase "cargo clippy"
cargo clippy "${features[@]}" --all-targets -- -D warnings
phase "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc "${features[@]}" --no-deps
phase "fuzz (short)"
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" bash scripts/fuzz.sh
# Its own target dir: `--cfg loom` would otherwise rebuild the main cache.
phase "loom (queue model check)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p lepton-core --release --test loom_queue
# The tests run last, so their summaries close the output; every test
# binary runs even after a failure, and the Python tests after failing Rust
# ones, so one run shows every failing test.
phase "cargo test"
status=0
cargo test "${features[@]}" --no-fail-fast || status=$?
# The Python package (lepton-py): pip builds it with maturin (release) and
# installs it into a venv of its own; pytest then checks its environments
# with Gymnasium's checker, against the Rust environment, and against the
# command line's JSON (the `lepton` binary the Rust tests built).
phase "python package: pip install ./lepton-py, pytest"
py="$PWD/target/py-venv"
[[ -x "$py/bin/python" ]] || python3 -m venv "$py"
"$py/bin/pip" install -q --disable-pip-version-check \
    'numpy==2.4.6' 'gymnasium==1.4.0' 'pytest==9.2.0'
"$py/bin/pip" install -q --disable-pip-version-check ./lepton-py
LEPTON_BIN="$PWD/target/debug/lepton" "$py/bin/python" -m pytest -q lepton-py/tests ||
    status=$?
phase "done"
exit "$status"
