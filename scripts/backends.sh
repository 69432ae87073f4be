#!/usr/bin/env bash
# Real backend servers for Lepton's adapter tests, all on loopback or unix
# sockets inside one state directory:
#   docker  - podman system service speaking the Docker Engine API (v1.41)
#   libvirt - virtlogd + libvirtd with the QEMU driver (TCG); test:///default
#             needs no daemon at all; and a second, "peer" libvirtd (with its
#             own virtlogd) in its own mount and UTS namespaces, so that it
#             is another host to libvirt and domains can live-migrate to it
#   aws     - moto_server (EC2) on 127.0.0.1 with a free port
#   etcd    - a 3-member etcd cluster (Debian's etcd-server, 3.4) on 127.0.0.1:
#             members m1..m3, clients on ports 23791..23793, peers on
#             23801..23803 (clear of a system etcd's 2379/2380)
#
# Usage:
#   bash scripts/backends.sh start  [docker|libvirt|aws|etcd|all]   (default: all)
#   bash scripts/backends.sh stop   [docker|libvirt|aws|etcd|all]   (default: all)
#   bash scripts/backends.sh status [docker|libvirt|aws|etcd|all]
#   bash scripts/backends.sh start  etcd-member N   # N = 1, 2 or 3: (re)join one member
#   bash scripts/backends.sh stop   etcd-member N   # stop one member (failover tests)
#   bash scripts/backends.sh status etcd-member N
#   bash scripts/backends.sh env        # eval "$(bash scripts/backends.sh env)"
#   bash scripts/backends.sh clean      # stop all, remove containers/domains and the state dir
#
# `start` installs whatever is missing (Debian packages with apt-get, moto and
# awscli with pip into a venv in the state dir), is idempotent (a server that
# is already running is left alone), waits for each server to answer, and
# exits non-zero naming the server that did not come up.
# `stop docker` / `start docker` restart only the podman service; containers
# keep running across that (conmon owns them, the service is stateless over
# its storage).
# etcd members keep their data in the state dir: `start etcd` after `stop
# etcd` (or `start etcd-member N` after `stop etcd-member N`) rejoins the same
# cluster with the same keys; `clean` removes it.
#
# Environment:
#   LEPTON_BACKENDS_DIR      state dir (default /tmp/lepton-backends)
#   LEPTON_BACKENDS_TIMEOUT  seconds to wait for each server (default 90)
set -euo pipefail

DIR="${LEPTON_BACKENDS_DIR:-/tmp/lepton-backends}"
TIMEOUT="${LEPTON_BACKENDS_TIMEOUT:-90}"

PODMAN_DIR="$DIR/podman"
PODMAN_SOCK="$PODMAN_DIR/podman.sock"
PODMAN_PID="$PODMAN_DIR/podman.pid"
PODMAN_LOG="$PODMAN_DIR/podman.log"
PODMAN_IMAGE="localhost/busybox:latest"

LIBVIRT_DIR="$DIR/libvirt"
LIBVIRT_SOCK_DIR="$LIBVIRT_DIR/run"
LIBVIRT_SOCK="$LIBVIRT_SOCK_DIR/libvirt-sock"
LIBVIRT_URI="qemu:///system?socket=$LIBVIRT_SOCK"
LIBVIRT_TEST_URI="test:///default"
LIBVIRTD_PID="$LIBVIRT_DIR/libvirtd.pid"
VIRTLOGD_PID="$LIBVIRT_DIR/virtlogd.pid"
PEER_DIR="$LIBVIRT_DIR/peer"
PEER_SOCK_DIR="$PEER_DIR/run"
PEER_URI="qemu:///system?socket=$PEER_SOCK_DIR/libvirt-sock"
PEER_LIBVIRTD_PID="$PEER_DIR/libvirtd.pid"
PEER_VIRTLOGD_PID="$PEER_DIR/virtlogd.pid"
# libvirt refuses to migrate to a host with its own hostname or host UUID.
PEER_HOSTNAME="lepton-peer"
PEER_HOST_UUID="4c657074-6f6e-4000-8000-0000000000b2"

AWS_DIR="$DIR/aws"
VENV="$DIR/venv"
MOTO_PID="$AWS_DIR/moto.pid"
MOTO_PORT_FILE="$AWS_DIR/moto.port"
MOTO_LOG="$AWS_DIR/moto.log"

ETCD_DIR="$DIR/etcd"
ETCD_MEMBERS=(1 2 3)
ETCD_TOKEN="lepton-test"
# Member i: name m$i, client port 2379$i, peer port 2380$i.
ETCD_ENDPOINTS="http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793"
ETCD_INITIAL_CLUSTER="m1=http://127.0.0.1:23801,m2=http://127.0.0.1:23802,m3=http://127.0.0.1:23803"

PODMAN_PKGS=(podman runc busybox-static curl)
# Installed with --no-install-recommends (recommends would pull in a desktop's
# worth of QEMU display and audio stacks).
LIBVIRT_PKGS=(libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86 libvirt-clients libvirt-dev pkg-config)

# Unix socket paths are limited to 107 bytes.
if ((${#DIR} > 80)); then
    printf '[backends] ERROR: LEPTON_BACKENDS_DIR is too long for unix sockets (%s)\n' "$DIR" >&2
    exit 1
fi

log() { printf '[backends +%ss] %s\n' "$SECONDS" "$*" >&2; }
die() { printf '[backends] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

# A process that exists and is not a zombie. Daemons started here are
# reparented to pid 1, which may reap them late, so `kill -0` alone would
# report a dead server as alive for a while.
proc_running() { # pid
    local state
    [[ -n "$1" ]] || return 1
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# The pid in a pid file, if that process runs and is the server the file is
# named after (guards against a reused pid after a reboot or a crash).
pidfile_pid() { # pidfile
    local pid want
    [[ -s "$1" ]] || return 1
    pid="$(tr -dc '0-9' <"$1")"
    proc_running "$pid" || return 1
    case "$(basename "$1")" in
    podman.pid) want="podman" ;;
    moto.pid) want="moto_server" ;;
    m[0-9].pid) want="etcd --name $(basename "$1" .pid) " ;;
    *) want="$(basename "$1" .pid)" ;;
    esac
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$want" || return 1
    echo "$pid"
}

pid_alive() { # pidfile
    pidfile_pid "$1" >/dev/null
}

# Start a command detached in its own session; the pid written is the
# command's own (bash execs into it).
spawn() { # pidfile logfile cmd...
    local pidfile="$1" logfile="$2"
    shift 2
    # One log per run; the previous one is kept beside it.
    [[ -f "$logfile" ]] && mv -f "$logfile" "$logfile.prev"
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
        </dev/null >>"$logfile" 2>&1 9>&- &
    # Wait until the pid file exists so callers can rely on it.
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "$pidfile" ]] && return 0
        sleep 0.1
    done
    die "could not spawn $1"
}

# Waits up to `tenths` tenths of a second for a process to exit; false if it
# still runs.
wait_exit() { # pid tenths
    local i
    for ((i = 0; i < $2; i++)); do
        proc_running "$1" || return 0
        sleep 0.1
    done
    ! proc_running "$1"
}

kill_pidfile() { # pidfile name
    local pidfile="$1" name="$2" pid
    if [[ ! -s "$pidfile" ]]; then
        return 0
    fi
    if pid="$(pidfile_pid "$pidfile")"; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_exit "$pid" 100; then
            log "$name did not exit after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_exit "$pid" 50 || true
        fi
    fi
    rm -f "$pidfile"
}

# Wait until `probe` succeeds; fail loudly if the server's process dies or
# the timeout passes.
wait_ready() { # name pidfile logfile probe...
    local name="$1" pidfile="$2" logfile="$3"
    shift 3
    local deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        if "$@" >/dev/null 2>&1; then
            log "$name is ready"
            return 0
        fi
        if ! pid_alive "$pidfile"; then
            tail -n 30 "$logfile" >&2 2>/dev/null || true
            rm -f "$pidfile"
            die "$name exited before it became ready (log: $logfile)"
        fi
        sleep 0.3
    done
    tail -n 30 "$logfile" >&2 2>/dev/null || true
    # Leave nothing half-started behind.
    kill_pidfile "$pidfile" "$name"
    die "$name did not become ready within ${TIMEOUT}s (log: $logfile)"
}

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=0
apt_update_once() {
    if ((APT_UPDATED == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
}

apt_get_install() { # apt-get install arguments...
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

apt_install() { # [--no-install-recommends] pkgs...  (installs the missing ones)
    local opts=() missing=() p
    if [[ "${1:-}" == --no-install-recommends ]]; then
        opts+=(--no-install-recommends)
        shift
    fi
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing Debian packages: ${missing[*]}"
    apt_get_install "${opts[@]}" "${missing[@]}"
}

# ---------------------------------------------------------------- docker (podman)

podman_env() {
    CONTAINERS_CONF="$PODMAN_DIR/containers.conf" \
        CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf" \
        "$@"
}

podman_cli() {
    podman_env podman --tmpdir "$PODMAN_DIR/tmp" "$@"
}

podman_probe() {
    curl -sf --max-time 5 --unix-socket "$PODMAN_SOCK" http://d/v1.41/version
}

install_docker() {
    apt_install "${PODMAN_PKGS[@]}"
}

write_podman_config() {
    mkdir -p "$PODMAN_DIR"/{storage,run,tmp,networks}
    cat >"$PODMAN_DIR/containers.conf" <<EOF
# Written by scripts/backends.sh
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$PODMAN_DIR/tmp"

[network]
network_config_dir = "$PODMAN_DIR/networks"
EOF
    cat >"$PODMAN_DIR/storage.conf" <<EOF
# Written by scripts/backends.sh
[storage]
driver = "vfs"
runroot = "$PODMAN_DIR/run"
graphroot = "$PODMAN_DIR/storage"
EOF
}

import_busybox() {
    if podman_cli image exists "$PODMAN_IMAGE" 2>/dev/null; then
        return 0
    fi
    log "building $PODMAN_IMAGE from busybox-static"
    local root="$PODMAN_DIR/rootfs" tar="$PODMAN_DIR/busybox-rootfs.tar" a
    rm -rf "$root"
    mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev}
    cp /bin/busybox "$root/bin/busybox"
    for a in sh sleep echo true false cat env ls yes head dd kill ps id; do
        ln -s busybox "$root/bin/$a"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    chmod 1777 "$root/tmp"
    tar -C "$root" -cf "$tar" .
    podman_cli import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' \
        "$tar" "$PODMAN_IMAGE" >/dev/null
    rm -rf "$root" "$tar"
}

start_docker() {
    install_docker
    write_podman_config
    import_busybox
    if pid_alive "$PODMAN_PID" && podman_probe >/dev/null 2>&1; then
        log "docker (podman) already running: $PODMAN_SOCK"
        return 0
    fi
    kill_pidfile "$PODMAN_PID" podman
    rm -f "$PODMAN_SOCK"
    log "starting podman system service on $PODMAN_SOCK"
    spawn "$PODMAN_PID" "$PODMAN_LOG" env \
        CONTAINERS_CONF="$PODMAN_DIR/containers.conf" \
        CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf" \
        podman --tmpdir "$PODMAN_DIR/tmp" system service --time=0 "unix://$PODMAN_SOCK"
    wait_ready "docker (podman)" "$PODMAN_PID" "$PODMAN_LOG" podman_probe
}

stop_docker() {
    kill_pidfile "$PODMAN_PID" "docker (podman)"
    rm -f "$PODMAN_SOCK"
}

# ---------------------------------------------------------------- libvirt

libvirt_probe() {
    virsh -c "$LIBVIRT_URI" version
}

peer_probe() {
    virsh -c "$PEER_URI" version
}

install_libvirt() {
    local missing=() extra=() p
    for p in "${LIBVIRT_PKGS[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    # The machine may carry qemu-utils 10 from bookworm-backports (qemu-img),
    # which Breaks bookworm's qemu-system-common 7.2: apt would remove it and
    # leave no qemu-img at all. Take the release's own qemu-utils along
    # instead, so qemu-img stays (at 7.2).
    apt_update_once
    local codename
    # shellcheck disable=SC1091
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    if ! pkg_installed qemu-system-x86 && pkg_installed qemu-utils &&
        dpkg --compare-versions "$(dpkg-query -W -f='${Version}' qemu-utils)" ge 1:8 &&
        ! dpkg --compare-versions "$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')" ge 1:8; then
        extra+=("qemu-utils/$codename" --allow-downgrades)
    fi
    log "installing Debian packages: ${missing[*]} ${extra[*]}"
    apt_get_install --no-install-recommends "${missing[@]}" "${extra[@]}"
}

start_libvirt() {
    install_libvirt
    mkdir -p "$LIBVIRT_DIR" "$LIBVIRT_SOCK_DIR"
    # Without udev, /dev/kvm stays root:root 0600. libvirt runs QEMU as
    # libvirt-qemu (group kvm) and then finds its cached QEMU capabilities
    # (probed with KVM) invalid on every call: each `virsh version` or
    # capabilities lookup re-probes QEMU for ~4 s. Give /dev/kvm the mode
    # Debian's udev rule gives it; this also makes type='kvm' domains work.
    if [[ -c /dev/kvm ]] && getent group kvm >/dev/null &&
        [[ "$(stat -c '%G %a' /dev/kvm)" != "kvm 660" ]]; then
        log "setting /dev/kvm to root:kvm 0660 (as udev would)"
        chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
    fi
    # virtlogd's sockets are global (/run/libvirt/virtlogd-sock); the QEMU
    # driver connects there, so it must run even when libvirtd already does.
    # Reuse a virtlogd that someone else started, if it is in this mount
    # namespace (the peer's has a /run of its own).
    local other="" p
    for p in $(pgrep -x virtlogd || true); do
        if proc_running "$p" && [[ "$(readlink "/proc/$p/ns/mnt")" == "$(readlink /proc/self/ns/mnt)" ]]; then
            other="$p"
        fi
    done
    if ! pid_alive "$VIRTLOGD_PID" && [[ -n "$other" ]]; then
        log "reusing the virtlogd that is already running (pid $other, not managed here)"
    elif ! pid_alive "$VIRTLOGD_PID"; then
        rm -f "$VIRTLOGD_PID" /run/libvirt/virtlogd-sock /run/libvirt/virtlogd-admin-sock
        log "starting virtlogd"
        # virtlogd's -p writes the same pid (spawn execs into it).
        spawn "$VIRTLOGD_PID" "$LIBVIRT_DIR/virtlogd.log" virtlogd -p "$VIRTLOGD_PID"
        wait_ready virtlogd "$VIRTLOGD_PID" "$LIBVIRT_DIR/virtlogd.log" test -S /run/libvirt/virtlogd-sock
    fi
    if pid_alive "$LIBVIRTD_PID" && libvirt_probe >/dev/null 2>&1; then
        log "libvirt already running: $LIBVIRT_URI"
        start_libvirt_peer
        return 0
    fi
    cat >"$LIBVIRT_DIR/libvirtd.conf" <<EOF
# Written by scripts/backends.sh
unix_sock_dir = "$LIBVIRT_SOCK_DIR"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:stderr"
EOF
    kill_pidfile "$LIBVIRTD_PID" libvirtd
    rm -f "$LIBVIRT_SOCK_DIR"/libvirt-sock*
    log "starting libvirtd on $LIBVIRT_SOCK"
    spawn "$LIBVIRTD_PID" "$LIBVIRT_DIR/libvirtd.log" \
        libvirtd -f "$LIBVIRT_DIR/libvirtd.conf" -p "$LIBVIRTD_PID"
    wait_ready libvirt "$LIBVIRTD_PID" "$LIBVIRT_DIR/libvirtd.log" libvirt_probe
    # The built-in test driver is in libvirt0 itself; check it answers too.
    virsh -c "$LIBVIRT_TEST_URI" version >/dev/null 2>&1 || die "libvirt test:///default does not answer"
    start_libvirt_peer
}

# The peer hypervisor: libvirtd and virtlogd in their own mount and UTS
# namespaces (same network, so QEMU's migration stream goes over loopback),
# with their own hostname, host UUID, runtime, state, log, cache and domain
# configuration directories, all under $PEER_DIR.
start_libvirt_peer() {
    if pid_alive "$PEER_LIBVIRTD_PID" && peer_probe >/dev/null 2>&1; then
        log "libvirt peer already running: $PEER_URI"
        return 0
    fi
    kill_pidfile "$PEER_LIBVIRTD_PID" "libvirtd (peer)"
    kill_pidfile "$PEER_VIRTLOGD_PID" "virtlogd (peer)"
    mkdir -p "$PEER_SOCK_DIR" "$PEER_DIR"/{lib/qemu,cache,log,domains}
    chown libvirt-qemu:libvirt-qemu "$PEER_DIR/lib/qemu"
    chmod 0750 "$PEER_DIR/lib/qemu"
    rm -f "$PEER_SOCK_DIR"/libvirt-sock*
    cat >"$PEER_DIR/libvirtd.conf" <<EOF
# Written by scripts/backends.sh
unix_sock_dir = "$PEER_SOCK_DIR"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "$PEER_HOST_UUID"
log_outputs = "3:stderr"
EOF
    log "starting the libvirt peer ($PEER_HOSTNAME) on $PEER_SOCK_DIR/libvirt-sock"
    # shellcheck disable=SC2016 # expanded by the inner bash
    spawn "$PEER_LIBVIRTD_PID" "$PEER_DIR/libvirtd.log" \
        unshare --mount --uts --propagation private bash -c '
            set -e
            hostname "$1"
            mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt/qemu
            mount -t tmpfs tmpfs /run/libvirt
            mount --bind "$2/lib" /var/lib/libvirt
            mount --bind "$2/cache" /var/cache/libvirt
            mount --bind "$2/log" /var/log/libvirt
            mount --bind "$2/domains" /etc/libvirt/qemu
            virtlogd -d -p "$2/virtlogd.pid"
            exec libvirtd -f "$2/libvirtd.conf" -p "$2/libvirtd.pid"' \
        peer "$PEER_HOSTNAME" "$PEER_DIR"
    wait_ready "libvirt peer" "$PEER_LIBVIRTD_PID" "$PEER_DIR/libvirtd.log" peer_probe
}

stop_libvirt() {
    kill_pidfile "$PEER_LIBVIRTD_PID" "libvirtd (peer)"
    kill_pidfile "$PEER_VIRTLOGD_PID" "virtlogd (peer)"
    rm -f "$PEER_SOCK_DIR"/libvirt-sock*
    kill_pidfile "$LIBVIRTD_PID" libvirtd
    kill_pidfile "$VIRTLOGD_PID" virtlogd
    rm -f "$LIBVIRT_SOCK_DIR"/libvirt-sock*
}

# ---------------------------------------------------------------- aws (moto)

moto_port() { tr -dc '0-9' 2>/dev/null <"$MOTO_PORT_FILE" || true; }

moto_probe() {
    local port
    port="$(moto_port)"
    [[ -n "$port" ]] && curl -sf --max-time 5 -o /dev/null "http://127.0.0.1:$port/"
}

pick_python() {
    local py
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    apt_install python3 python3-venv
    echo /usr/bin/python3
}

install_aws() {
    apt_install curl
    if [[ -x "$VENV/bin/moto_server" && -x "$VENV/bin/aws" ]]; then
        return 0
    fi
    local py
    py="$(pick_python)"
    log "creating venv $VENV and installing moto[server,ec2] and awscli with pip"
    [[ -x "$VENV/bin/pip" ]] || "$py" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'moto[server,ec2]' awscli >&2
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_aws() {
    install_aws
    mkdir -p "$AWS_DIR"
    if pid_alive "$MOTO_PID" && moto_probe; then
        log "aws (moto) already running on port $(moto_port)"
        return 0
    fi
    kill_pidfile "$MOTO_PID" moto
    local port
    port="$(free_port)"
    echo "$port" >"$MOTO_PORT_FILE"
    log "starting moto_server on 127.0.0.1:$port"
    spawn "$MOTO_PID" "$MOTO_LOG" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port"
    wait_ready "aws (moto)" "$MOTO_PID" "$MOTO_LOG" moto_probe
}

stop_aws() {
    kill_pidfile "$MOTO_PID" "aws (moto)"
    rm -f "$MOTO_PORT_FILE"
}

# ---------------------------------------------------------------- etcd

etcd_client_url() { echo "http://127.0.0.1:2379$1"; } # member
etcd_peer_url() { echo "http://127.0.0.1:2380$1"; }   # member
etcd_pidfile() { echo "$ETCD_DIR/m$1.pid"; }         # member

etcd_member_probe() { # member
    curl -sf --max-time 3 "$(etcd_client_url "$1")/health" | grep -q '"health":"true"'
}

# "<member id> <leader id>" as member $1 sees them (decimal; leader 0: none).
etcd_member_status() { # member
    local out id leader
    out="$(curl -sf --max-time 3 -X POST -d '{}' "$(etcd_client_url "$1")/v3/maintenance/status")" || return 1
    id="$(grep -o '"member_id":"[0-9]*"' <<<"$out" | tr -dc '0-9' || true)"
    leader="$(grep -o '"leader":"[0-9]*"' <<<"$out" | tr -dc '0-9' || true)"
    [[ -n "$id" ]] || return 1
    echo "$id ${leader:-0}"
}

# True when some running member knows a leader.
etcd_has_leader() {
    local i st
    for i in "${ETCD_MEMBERS[@]}"; do
        st="$(etcd_member_status "$i")" || continue
        [[ "${st#* }" != 0 ]] && return 0
    done
    return 1
}

install_etcd() {
    apt_install curl
    command -v etcd >/dev/null 2>&1 && return 0
    # etcd-server's postinst starts Debian's own etcd (init script or
    # etcd.service: 127.0.0.1:2379/2380, data in /var/lib/etcd) as user etcd.
    # Forbid that for the install with a policy-rc.d (a machine that has one
    # already, like Docker images with their `exit 101`, keeps its own), and
    # stop and disable it in case it started anyway. Our members use other
    # ports, so even a system etcd that runs would not clash with them.
    local policy=/usr/sbin/policy-rc.d ours=0 rc=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\n# Written by scripts/backends.sh for one apt-get install; removed after it.\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        ours=1
        # shellcheck disable=SC2064 # the path is fixed now
        trap "rm -f '$policy'" EXIT
    fi
    apt_install etcd-server || rc=$?
    if ((ours)); then
        rm -f "$policy"
        trap - EXIT
    fi
    ((rc == 0)) || die "could not install etcd-server"
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now etcd.service >/dev/null 2>&1 || true
    else
        # By its pid file, not with `/etc/init.d/etcd stop`: that also runs
        # `start-stop-daemon --stop --exec /usr/bin/etcd`, which kills every
        # etcd on the machine, our members included.
        kill_pidfile /run/etcd.pid "Debian's etcd service"
        update-rc.d etcd disable >/dev/null 2>&1 || true
    fi
    command -v etcd >/dev/null 2>&1 || die "etcd-server is installed but there is no etcd binary"
}

# etcd refuses to start on architectures it does not call supported unless
# ETCD_UNSUPPORTED_ARCH names Go's name for the architecture (amd64 and
# ppc64le need nothing).
etcd_arch_env() {
    local arch
    arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
    case "$arch" in
    amd64 | ppc64el) ;;
    i386) echo "ETCD_UNSUPPORTED_ARCH=386" ;;
    armhf | armel) echo "ETCD_UNSUPPORTED_ARCH=arm" ;;
    mips64el) echo "ETCD_UNSUPPORTED_ARCH=mips64le" ;;
    mipsel) echo "ETCD_UNSUPPORTED_ARCH=mipsle" ;;
    *) echo "ETCD_UNSUPPORTED_ARCH=$arch" ;;
    esac
}

# Starts member $1 unless it already runs; does not wait for it.
spawn_etcd_member() { # member
    local i="$1" data="$ETCD_DIR/m$1" pidfile state=new
    pidfile="$(etcd_pidfile "$i")"
    if pid_alive "$pidfile"; then
        log "etcd m$i already running ($(etcd_client_url "$i"))"
        return 0
    fi
    kill_pidfile "$pidfile" "etcd m$i"
    mkdir -p "$data"
    chmod 0700 "$data" # etcd wants its data dir private
    # A member that has been part of the cluster rejoins it from its data.
    [[ -d "$data/member" ]] && state=existing
    log "starting etcd m$i on $(etcd_client_url "$i") (peer $(etcd_peer_url "$i"), cluster state $state)"
    local env=()
    read -r -a env <<<"$(etcd_arch_env)"
    # --heartbeat-interval/--election-timeout (ms): a lost leader is replaced
    # within about a second, which keeps the failover tests short.
    # --max-txn-ops: the service writes a submission of many tasks in one
    # transaction, past etcd's default of 128 operations per transaction.
    spawn "$pidfile" "$ETCD_DIR/m$i.log" env "${env[@]}" etcd \
        --name "m$i" \
        --data-dir "$data" \
        --listen-client-urls "$(etcd_client_url "$i")" \
        --advertise-client-urls "$(etcd_client_url "$i")" \
        --listen-peer-urls "$(etcd_peer_url "$i")" \
        --initial-advertise-peer-urls "$(etcd_peer_url "$i")" \
        --initial-cluster "$ETCD_INITIAL_CLUSTER" \
        --initial-cluster-state "$state" \
        --initial-cluster-token "$ETCD_TOKEN" \
        --heartbeat-interval 100 \
        --election-timeout 1000 \
        --max-txn-ops 1024 \
        --logger zap \
        --log-outputs stderr
}

wait_etcd_member() { # member
    wait_ready "etcd m$1" "$(etcd_pidfile "$1")" "$ETCD_DIR/m$1.log" etcd_member_probe "$1"
}

wait_etcd_leader() {
    local deadline=$((SECONDS + TIMEOUT))
    until etcd_has_leader; do
        ((SECONDS < deadline)) || die "the etcd cluster has no leader after ${TIMEOUT}s (logs: $ETCD_DIR/m*.log)"
        sleep 0.3
    done
    log "etcd cluster has a leader ($ETCD_ENDPOINTS)"
}

start_etcd() {
    install_etcd
    mkdir -p "$ETCD_DIR"
    local i
    # All members first: a new cluster needs a quorum before any is healthy.
    for i in "${ETCD_MEMBERS[@]}"; do spawn_etcd_member "$i"; done
    for i in "${ETCD_MEMBERS[@]}"; do wait_etcd_member "$i"; done
    wait_etcd_leader
}

start_etcd_member() { # member
    install_etcd
    mkdir -p "$ETCD_DIR"
    [[ -d "$ETCD_DIR/m$1/member" ]] ||
        log "etcd m$1 has no data: it joins as a new member (if the others already formed the cluster, \`clean\` and start over when that fails)"
    spawn_etcd_member "$1"
    wait_etcd_member "$1"
    wait_etcd_leader
}

stop_etcd_member() { # member
    kill_pidfile "$(etcd_pidfile "$1")" "etcd m$1"
}

stop_etcd() {
    local i
    for i in "${ETCD_MEMBERS[@]}"; do stop_etcd_member "$i"; done
}

# One line per member; false if the member is down.
etcd_member_report() { # member
    local i="$1" pid st role=follower
    if pid="$(pidfile_pid "$(etcd_pidfile "$i")")" && etcd_member_probe "$i"; then
        if st="$(etcd_member_status "$i")"; then
            [[ "${st%% *}" == "${st#* }" ]] && role=leader
        fi
        echo "etcd m$i: running, $role ($(etcd_client_url "$i"), pid $pid)"
    elif [[ -n "${pid:-}" ]]; then
        echo "etcd m$i: running but not healthy ($(etcd_client_url "$i"), pid $pid, log $ETCD_DIR/m$i.log)"
        return 1
    else
        echo "etcd m$i: stopped"
        return 1
    fi
}

etcd_member_arg() { # N
    case "${1:-}" in
    1 | 2 | 3) echo "$1" ;;
    *) die "etcd-member needs a member number: 1, 2 or 3 (got '${1:-}')" ;;
    esac
}

# ---------------------------------------------------------------- commands

targets() {
    case "${1:-all}" in
    all) echo docker libvirt aws etcd ;;
    docker | libvirt | aws | etcd) echo "$1" ;;
    *) die "unknown backend '$1' (docker, libvirt, aws, etcd, etcd-member N or all)" ;;
    esac
}

cmd_env() {
    echo "export LEPTON_BACKENDS_DIR='$DIR'"
    echo "export LEPTON_DOCKER_SOCKET='$PODMAN_SOCK'"
    echo "export LEPTON_LIBVIRT_URI='$LIBVIRT_URI'"
    echo "export LEPTON_LIBVIRT_TEST_URI='$LIBVIRT_TEST_URI'"
    echo "export LEPTON_LIBVIRT_PEER_URI='$PEER_URI'"
    local port
    port="$(moto_port)"
    if [[ -n "$port" ]]; then
        echo "export LEPTON_AWS_ENDPOINT='http://127.0.0.1:$port'"
    else
        log "aws (moto) is not running: LEPTON_AWS_ENDPOINT not set"
    fi
    echo "export AWS_ACCESS_KEY_ID='testing'"
    echo "export AWS_SECRET_ACCESS_KEY='testing'"
    echo "export AWS_REGION='us-east-1'"
    echo "export AWS_DEFAULT_REGION='us-east-1'"
    echo "export LEPTON_ETCD_ENDPOINTS='$ETCD_ENDPOINTS'"
    pid_alive "$PODMAN_PID" || log "docker (podman) is not running"
    pid_alive "$LIBVIRTD_PID" || log "libvirt (libvirtd) is not running"
    pid_alive "$PEER_LIBVIRTD_PID" || log "libvirt peer (libvirtd) is not running"
    local i
    for i in "${ETCD_MEMBERS[@]}"; do
        pid_alive "$(etcd_pidfile "$i")" || log "etcd m$i is not running"
    done
}

cmd_status() {
    local t i rc=0
    for t in $(targets "${1:-all}"); do
        case "$t" in
        docker) if pid_alive "$PODMAN_PID" && podman_probe >/dev/null 2>&1; then echo "docker: running ($PODMAN_SOCK)"; else echo "docker: stopped"; rc=1; fi ;;
        libvirt) if pid_alive "$LIBVIRTD_PID" && libvirt_probe >/dev/null 2>&1; then echo "libvirt: running ($LIBVIRT_URI)"; else echo "libvirt: stopped"; rc=1; fi
            if pid_alive "$PEER_LIBVIRTD_PID" && peer_probe >/dev/null 2>&1; then echo "libvirt peer: running ($PEER_URI)"; else echo "libvirt peer: stopped"; rc=1; fi ;;
        aws) if pid_alive "$MOTO_PID" && moto_probe; then echo "aws: running (http://127.0.0.1:$(moto_port))"; else echo "aws: stopped"; rc=1; fi ;;
        etcd) for i in "${ETCD_MEMBERS[@]}"; do etcd_member_report "$i" || rc=1; done ;;
        esac
    done
    return "$rc"
}

cmd_clean() {
    if pid_alive "$PODMAN_PID" || [[ -f "$PODMAN_DIR/storage.conf" ]]; then
        podman_cli rm -af -t 0 >/dev/null 2>&1 || true
    fi
    local uri d
    for uri in "$LIBVIRT_URI" "$PEER_URI"; do
        for d in $(virsh -c "$uri" list --all --name 2>/dev/null); do
            virsh -c "$uri" destroy "$d" >/dev/null 2>&1 || true
            virsh -c "$uri" undefine "$d" >/dev/null 2>&1 || true
        done
    done
    stop_docker
    stop_libvirt
    stop_aws
    stop_etcd
    rm -rf "$DIR"
    log "removed $DIR"
}

with_lock() {
    mkdir -p "$DIR"
    exec 9>"$DIR/.lock"
    flock -w "$((TIMEOUT * 3 + 600))" 9 || die "could not lock $DIR/.lock"
}

main() {
    local cmd="${1:-}" t ts="" member=""
    shift || true
    case "$cmd" in
    start | stop | status)
        if [[ "${1:-}" == etcd-member ]]; then
            member="$(etcd_member_arg "${2:-}")" || exit 2
        else
            ts="$(targets "${1:-all}")" || exit 2
        fi
        ;;
    esac
    case "$cmd" in
    start)
        [[ $EUID -eq 0 ]] || die "start must run as root (installs packages, runs libvirtd)"
        with_lock
        if [[ -n "$member" ]]; then
            start_etcd_member "$member"
        else
            for t in $ts; do "start_$t"; done
        fi
        ;;
    stop)
        with_lock
        if [[ -n "$member" ]]; then
            stop_etcd_member "$member"
        else
            for t in $ts; do "stop_$t"; done
        fi
        ;;
    env) cmd_env ;;
    status)
        if [[ -n "$member" ]]; then
            etcd_member_report "$member"
        else
            cmd_status "${1:-all}"
        fi
        ;;
    clean)
        with_lock
        cmd_clean
        ;;
    *)
        # The header comment, up to the first line of code.
        awk 'NR == 1 { next } /^#/ { print; next } { exit }' "$0" >&2
        exit 2
        ;;
    esac
}

main "$@"
