#!/usr/bin/env bash
# Cluster benchmark: NODES gateway processes sharing one redis-server, all
# bound to one SMSC simulator, each driven by its own `sluice bench
# --gateway` at once. Prints each node's figures, the sum, and the Redis
# commands per accepted message (INFO commandstats, reset before the run).
# Not run by CI (a soak belongs here, not in the test suite).
#
#   scripts/cluster-bench.sh [NODES] [SECONDS]     # default: 3 nodes, 20 s
#   CLUSTER=0 scripts/cluster-bench.sh 1 20        # one node, no Redis
#
# Needs a release build (target/release/sluice), redis-server and
# redis-cli. Everything listens on free loopback ports and is stopped at
# the end; the data directories are temporary.
set -euo pipefail

nodes=${1:-3}
secs=${2:-20}
cluster=${CLUSTER:-1}
cd "$(dirname "$0")/.."
bin=target/release/sluice
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
  || { echo "needs redis-server and redis-cli (apt-get install redis-server)" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  >"$work/redis.log" 2>&1 &
pids+=($!)
wait_port "$redis_port"

smsc_port=$(free_port)
"$bin" sim smsc --listen "127.0.0.1:$smsc_port" --account sluice:pw \
  --receipt-delay 20ms --count-only >"$work/smsc.log" 2>&1 &
pids+=($!)
wait_port "$smsc_port"

ingest=()
http=()
gw_pids=()
for i in $(seq 1 "$nodes"); do
  ip=$(free_port)
  hp=$(free_port)
  ingest+=("$ip")
  http+=("$hp")
  cluster_section=""
  if [ "$cluster" = 1 ]; then
    cluster_section="[cluster]
redis_url = \"redis://127.0.0.1:$redis_port\"
key_prefix = \"bench\""
  fi
  cat >"$work/node$i.toml" <<EOF
node_id = "node-$i"
data_dir = "$work/data$i"
$cluster_section
[ingest]
listen = "127.0.0.1:$ip"
[http]
listen = "127.0.0.1:$hp"
[public]
listen = "127.0.0.1:0"
[[tenants]]
name = "bench"
token = "bench-token-0001"
senders = ["12345"]
[[carriers]]
name = "sim"
[[carriers.binds]]
address = "127.0.0.1:$smsc_port"
system_id = "sluice"
password = "pw"
window = 512
count = 2
EOF
  RUST_LOG=warn "$bin" run --config "$work/node$i.toml" >"$work/node$i.log" 2>&1 &
  pids+=($!)
  gw_pids+=($!)
done
for i in $(seq 0 $((nodes - 1))); do wait_port "${ingest[$i]}"; done
sleep 1

redis-cli -p "$redis_port" CONFIG RESETSTAT >/dev/null
bench_pids=()
for i in $(seq 0 $((nodes - 1))); do
  "$bin" bench --gateway "127.0.0.1:${ingest[$i]}" --tenant bench --token bench-token-0001 \
    --metrics-url "http://127.0.0.1:${http[$i]}/metrics" --pid "${gw_pids[$i]}" \
    --duration "${secs}s" --quiet --json "$work/bench$i.json" >"$work/bench$i.txt" 2>&1 &
  bench_pids+=($!)
done
for p in "${bench_pids[@]}"; do wait "$p"; done
redis-cli -p "$redis_port" INFO commandstats >"$work/commandstats.txt"

python3 - "$work" "$nodes" "$cluster" <<'EOF'
import json, re, sys
work, nodes, cluster = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
total_acc, total_rate, total_term = 0, 0.0, 0.0
for i in range(nodes):
    r = json.load(open(f"{work}/bench{i}.json"))
    c = r["counts"]
    total_acc += c["bench_accepted"]
    total_rate += r["accepted_per_s"]
    total_term += r["terminal_per_s"]
    print(f"node-{i+1}: {r['accepted_per_s']:,.0f} msgs/s accepted, ack p50 {r['ack_latency']['p50_ms']:.1f} ms "
          f"p99 {r['ack_latency']['p99_ms']:.1f} ms, {c['bench_accepted']:,} accepted, "
          f"duplicates {r['duplicate_accepts']}, lost {r['lost']}, without terminal {r['without_terminal']}")
print(f"all {nodes} node(s){' (cluster)' if cluster else ' (no cluster)'}: {total_rate:,.0f} msgs/s accepted, "
      f"{total_term:,.0f} terminal/s, {total_acc:,} accepted")
calls = 0
per = {}
for line in open(f"{work}/commandstats.txt"):
    m = re.match(r"cmdstat_(\w+):calls=(\d+)", line)
    if m:
        per[m.group(1)] = int(m.group(2))
        calls += int(m.group(2))
if total_acc:
    print(f"redis: {calls:,} commands ({', '.join(f'{k} {v:,}' for k, v in sorted(per.items(), key=lambda x: -x[1]))}) "
          f"= {calls / total_acc:.4f} per accepted message")
EOF
