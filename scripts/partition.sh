#!/usr/bin/env bash
# A small network of Linux network namespaces on this machine, for the HA
# partition tests (lepton-cli/tests/partition.rs): each etcd member and
# each `lepton serve` instance in a namespace of its own, all joined by veth
# pairs to one bridge, which lives in a namespace of its own too (so that
# the host's firewall never sees the traffic between nodes). This machine
# reaches the bridge through one more veth pair; nothing is routed beyond
# the subnet, so no traffic leaves the machine.
#
#   host (this namespace)  10.213.77.1   interface lpart-host
#   e1, e2, e3 (etcd)      10.213.77.11-13, clients :2379, peers :2380
#   i1, i2, i3 (instances) 10.213.77.21-23
#
# Namespace NODE is /run/netns/lepton-part-NODE. A partition is a real cut:
# nftables rules inside a node's namespace drop every packet between it and
# the nodes named, both ways (TCP connections hang, as on a lost link),
# until `heal`.
#
# Usage:
#   bash scripts/partition.sh up            # (re)create everything; 3 etcd members, waits for a leader
#   bash scripts/partition.sh down          # stop every process in the namespaces, remove them
#   bash scripts/partition.sh cut NODE PEER...   # drop all traffic between NODE and each PEER
#   bash scripts/partition.sh heal NODE     # remove NODE's cuts
#   bash scripts/partition.sh exec NODE CMD...   # run CMD in NODE's network namespace
#   bash scripts/partition.sh env           # eval "$(bash scripts/partition.sh env)"
#
# Needs root, iproute2, nftables, util-linux's nsenter and etcd (Debian's
# etcd-server, which `bash scripts/backends.sh start etcd` installs); says
# which is missing. `up` first removes whatever an earlier run left.
#
# Environment:
#   LEPTON_PARTITION_DIR      state dir: etcd data, logs, pids (default /tmp/lepton-partition)
#   LEPTON_PARTITION_TIMEOUT  seconds to wait for etcd (default 60)
set -euo pipefail

DIR="${LEPTON_PARTITION_DIR:-/tmp/lepton-partition}"
TIMEOUT="${LEPTON_PARTITION_TIMEOUT:-60}"
SUBNET=10.213.77
PREFIX=lepton-part-
HUB="${PREFIX}hub"
HOST_LINK=lpart-host
ETCD=(e1 e2 e3)
INSTANCES=(i1 i2 i3)

log() { printf '[partition +%ss] %s\n' "$SECONDS" "$*" >&2; }
die() { printf '[partition] ERROR: %s\n' "$*" >&2; exit 1; }

address() { # node
    case "$1" in
    host) echo "$SUBNET.1" ;;
    e[1-3]) echo "$SUBNET.1${1#e}" ;;
    i[1-3]) echo "$SUBNET.2${1#i}" ;;
    *) die "unknown node '$1' (e1..e3, i1..i3)" ;;
    esac
}

netns() { echo "/run/netns/$PREFIX$1"; }

in_ns() { # node cmd...
    local ns
    ns="$(netns "$1")"
    shift
    [[ -e "$ns" ]] || die "no namespace $ns: run \`up\` first"
    nsenter --net="$ns" "$@"
}

etcd_url() { echo "http://$(address "$1"):$2"; } # node port

check_tools() {
    [[ $EUID -eq 0 ]] || die "must run as root (creates network namespaces)"
    local tool missing=()
    for tool in ip nft nsenter etcd curl; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) || die "missing: ${missing[*]} (Debian: iproute2, nftables, util-linux, etcd-server, curl; scripts/test.sh installs them)"
}

# ---------------------------------------------------------------- down

# A process that exists and is not a zombie.
proc_running() { # pid
    local state
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# Every process in our namespaces is ours (etcd members, instances, their
# tasks): TERM, then KILL what is left after 2 s (an etcd leader whose peers
# are gone spends seconds trying to hand its leadership over).
kill_namespace_processes() {
    local name pids pid signal i alive
    for signal in TERM KILL; do
        pids=()
        for name in $(ip netns list | awk -v p="^$PREFIX" '$1 ~ p {print $1}'); do
            mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$name" 2>/dev/null)
        done
        ((${#pids[@]})) || return 0
        if [[ $signal == KILL ]]; then
            log "killing ${#pids[@]} processes left in the namespaces"
        fi
        kill "-$signal" "${pids[@]}" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
            alive=0
            for pid in "${pids[@]}"; do
                if proc_running "$pid"; then alive=1; fi
            done
            ((alive)) || return 0
            sleep 0.1
        done
    done
}

cmd_down() {
    kill_namespace_processes
    local name
    for name in $(ip netns list | awk -v p="^$PREFIX" '$1 ~ p {print $1}'); do
        ip netns delete "$name"
    done
    # Its peer was in the hub: gone with it, which takes this end along;
    # deleted here in case the hub was never made.
    ip link delete "$HOST_LINK" 2>/dev/null || true
}

# ---------------------------------------------------------------- up

make_network() {
    if [[ -n "$(ip -4 route show "$SUBNET.0/24")" ]]; then
        die "$SUBNET.0/24 is already routed on this machine: $(ip -4 route show "$SUBNET.0/24")"
    fi
    ip netns add "$HUB" || die "cannot create network namespaces (ip netns add $HUB)"
    in_ns hub ip link set lo up
    in_ns hub ip link add br0 type bridge
    in_ns hub ip link set br0 up
    ip link add "$HOST_LINK" type veth peer name host netns "$HUB"
    in_ns hub ip link set host master br0 up
    ip address add "$(address host)/24" dev "$HOST_LINK"
    ip link set "$HOST_LINK" up
    local node
    for node in "${ETCD[@]}" "${INSTANCES[@]}"; do
        ip netns add "$PREFIX$node"
        in_ns "$node" ip link set lo up
        ip link add "$node" netns "$HUB" type veth peer name eth0 netns "$PREFIX$node"
        in_ns hub ip link set "$node" master br0 up
        in_ns "$node" ip address add "$(address "$node")/24" dev eth0
        in_ns "$node" ip link set eth0 up
    done
}

start_etcd() {
    local cluster="" node
    for node in "${ETCD[@]}"; do
        cluster+="${cluster:+,}$node=$(etcd_url "$node" 2380)"
    done
    for node in "${ETCD[@]}"; do
        mkdir -p "$DIR/$node"
        chmod 0700 "$DIR/$node"
        # As in scripts/backends.sh: a lost etcd leader is replaced within
        # about a second, and a submission of many tasks fits a transaction.
        # shellcheck disable=SC2016 # expanded by the inner bash
        nsenter --net="$(netns "$node")" setsid bash -c 'echo $$ >"$0"; exec "$@"' "$DIR/$node.pid" \
            etcd --name "$node" --data-dir "$DIR/$node" \
            --listen-client-urls "$(etcd_url "$node" 2379)" \
            --advertise-client-urls "$(etcd_url "$node" 2379)" \
            --listen-peer-urls "$(etcd_url "$node" 2380)" \
            --initial-advertise-peer-urls "$(etcd_url "$node" 2380)" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token lepton-partition \
            --heartbeat-interval 100 --election-timeout 1000 --max-txn-ops 1024 \
            --logger zap --log-outputs stderr \
            </dev/null >"$DIR/$node.log" 2>&1 &
    done
    local deadline=$((SECONDS + TIMEOUT))
    for node in "${ETCD[@]}"; do
        until curl -sf --max-time 2 "$(etcd_url "$node" 2379)/health" | grep -q '"health":"true"'; do
            if ((SECONDS >= deadline)); then
                tail -n 20 "$DIR/$node.log" >&2 || true
                die "etcd $node did not become healthy within ${TIMEOUT}s (log: $DIR/$node.log)"
            fi
            sleep 0.2
        done
    done
    log "etcd members ${ETCD[*]} are up: $(endpoints)"
}

endpoints() {
    local node list=""
    for node in "${ETCD[@]}"; do list+="${list:+,}$(etcd_url "$node" 2379)"; done
    echo "$list"
}

cmd_up() {
    check_tools
    cmd_down
    rm -rf "$DIR"
    mkdir -p "$DIR"
    make_network
    start_etcd
}

# ---------------------------------------------------------------- cuts

cmd_cut() { # node peer...
    local node="$1" peer set=""
    shift
    (($#)) || die "cut needs a node and at least one peer"
    for peer in "$@"; do set+="${set:+, }$(address "$peer")"; done
    # One table per node; a second cut adds to it.
    in_ns "$node" nft -f - <<EOF
table inet lepton_cut {
    chain input { type filter hook input priority 0; policy accept; ip saddr { $set } drop; }
    chain output { type filter hook output priority 0; policy accept; ip daddr { $set } drop; }
}
EOF
    log "cut $node from $*"
}

cmd_heal() { # node
    in_ns "$1" nft delete table inet lepton_cut 2>/dev/null || true
    log "healed $1"
}

cmd_env() {
    local node
    echo "export LEPTON_PARTITION_ETCD_ENDPOINTS='$(endpoints)'"
    for node in host "${ETCD[@]}" "${INSTANCES[@]}"; do
        echo "export LEPTON_PARTITION_ADDRESS_${node^^}='$(address "$node")'"
        [[ $node == host ]] || echo "export LEPTON_PARTITION_NETNS_${node^^}='$(netns "$node")'"
    done
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    cut) cmd_cut "$@" ;;
    heal) cmd_heal "${1:?heal needs a node}" ;;
    exec) in_ns "${1:?exec needs a node}" "${@:2}" ;;
    env) cmd_env ;;
    *)
        awk 'NR == 1 { next } /^#/ { print; next } { exit }' "$0" >&2
        exit 2
        ;;
    esac
}

main "$@"
