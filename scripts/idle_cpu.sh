#!/bin/bash
# Idle CPU of `lepton serve` (docs/PERFORMANCE.md) with N tasks queued that cannot be placed (its
# only node cordoned): BIN N PORT -> "cpu% over 30 s"
set -e
BIN=$1; N=$2; PORT=$3
DIR=$(mktemp -d)
$BIN serve --listen 127.0.0.1:$PORT --data-dir $DIR > $DIR/log 2>&1 &
PID=$!
trap "kill $PID 2>/dev/null; rm -rf $DIR" EXIT
for i in $(seq 50); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.2; done
curl -sf -X POST -H 'Content-Type: application/json' -d '{}' http://127.0.0.1:$PORT/v1/nodes/0/cordon >/dev/null
python3 - "$PORT" "$N" <<'PY'
import json, sys, urllib.request
port, n = sys.argv[1], int(sys.argv[2])
batch = 1000
for start in range(0, n, batch):
    body = json.dumps([{"id": i + 1, "request": {"cpu_milli": 10}, "config": {"command": "true"}} for i in range(start, min(n, start + batch))]).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/tasks", data=body, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
PY
sleep 15   # every task found no node at least once
t0=$(awk '{print $14+$15}' /proc/$PID/stat); s0=$(date +%s.%N)
sleep 30
t1=$(awk '{print $14+$15}' /proc/$PID/stat); s1=$(date +%s.%N)
python3 -c "print(f'{($t1-$t0)/100/($s1-$s0)*100:.2f} % of a core, idle, $N queued')"
