#!/usr/bin/env bash
# Instructions per message of the gateway alone, counted by callgrind
# (docs/PERFORMANCE.md, "instructions per message"). Deterministic to
# ~0.05% from run to run, so it resolves changes a timed run on a shared
# machine cannot. Needs valgrind; not part of CI.
#
#   scripts/callgrind-gateway.sh [BIN] [OUT] [MESSAGES] [RATE]
#
# Starts the SMSC simulator (native) and `BIN run --config
# benches/gateway.toml` under callgrind, sends 2,000 messages to warm up,
# zeroes the counters, sends MESSAGES at RATE msgs/s with `sluice bench
# --gateway`, dumps the counters (OUT.<pid>.1), and stops both. The
# gateway's data directory is /tmp/sluice-bench (removed first). Read the
# dump with `callgrind_annotate --inclusive=yes OUT.<pid>.1`.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/release/sluice}
OUT=${2:-/tmp/callgrind-gateway}
N=${3:-20000}
RATE=${4:-1000}
LOG=$(mktemp -d)

rm -rf /tmp/sluice-bench
"$BIN" sim smsc --listen 127.0.0.1:12775 --account sluice:pw \
    --receipt-delay 20ms --count-only >"$LOG/sim.log" 2>&1 &
SIM=$!
valgrind --tool=callgrind --callgrind-out-file="$OUT.%p" \
    "$BIN" run --config benches/gateway.toml >"$LOG/gateway.log" 2>&1 &
GW=$!
trap 'kill "$SIM" "$GW" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    grep -q "gateway started" "$LOG/gateway.log" && break
    sleep 1
done
grep -q "gateway started" "$LOG/gateway.log" || { cat "$LOG/gateway.log"; exit 1; }

send() {
    "$BIN" bench --gateway 127.0.0.1:17700 --tenant demo --token demo-token-0001 \
        --rate "$RATE" --messages "$1" --quiet
}
send 2000 >"$LOG/warm.txt" 2>&1
callgrind_control -z "$GW" >/dev/null
send "$N" >"$LOG/bench.txt" 2>&1
callgrind_control -d "$GW" >/dev/null
grep -E "accepted|no terminal" "$LOG/bench.txt" | head -3
kill -TERM "$GW"; wait "$GW" 2>/dev/null || true
kill "$SIM"; wait "$SIM" 2>/dev/null || true
trap - EXIT

DUMP="$OUT.$GW.1"
TOTAL=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$DUMP: $TOTAL instructions, $((TOTAL / N)) per message"
