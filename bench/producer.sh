#!/usr/bin/env bash
# The producer against the layer below it, in the same hour (issue 12):
# pre-encoded batches over gRPC (`grpc-produce`, 4 in flight), then
# `strata-bench produce` through strata-client (one `send` per record, and
# the batch API), and the same through an older build for comparison
# (OLD=path/to/old/strata-bench). Each run gets its own broker on a fresh
# data directory; the bench process's CPU time (user + system, from
# /proc, from the end of the warm-up to the end) is divided by the
# gigabytes it produced in that time: the client's CPU-seconds per GB
# (the bench's own message generation included).
#
# Run from the repository after `cargo build --release`, as root.
# ROUNDS (default 3), SECONDS_PER_RUN (default 10), DIR (default /work/benchtmp).
set -u
B=${B:-$(pwd)/target/release/strata-bench}
K=${K:-$(pwd)/target/release/strata-broker}
OLD=${OLD:-}
DIR=${DIR:-/work/benchtmp}
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-10}
R=$DIR/producer
mkdir -p "$R"
port=7399

# cpu PID: user + system seconds so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

# run NAME WARMUP_S BROKER-BIN BENCH-BIN ARGS...: one run against a fresh broker.
run() {
  local name=$1 warm=$2 broker=$3 bench=$4; shift 4
  local data=$DIR/data-$name
  rm -rf "$data"; mkdir -p "$data"
  sync; echo 3 > /proc/sys/vm/drop_caches
  "$broker" --data-dir "$data" --listen 127.0.0.1:$port --no-metrics --no-kafka > "$R/$name.broker.log" 2>&1 &
  local kp=$!
  for _ in $(seq 100); do grep -q "listening on" "$R/$name.broker.log" && break; sleep 0.1; done
  local t0; t0=$(date +%s.%N)
  "$bench" "$@" --broker http://127.0.0.1:$port > "$R/$name.txt" 2>&1 &
  local bp=$!
  local c0="" c1=0
  while kill -0 $bp 2> /dev/null; do
    c1=$(cpu $bp 2> /dev/null || echo "$c1")
    if [ -z "$c0" ] && awk -v t0="$t0" -v w="$warm" -v now="$(date +%s.%N)" 'BEGIN {exit !(now - t0 >= w)}'; then
      c0=$c1
    fi
    sleep 0.1
  done
  wait $bp
  kill $kp; wait $kp 2> /dev/null
  rm -rf "$data"
  local mbs
  mbs=$(grep -oE '([0-9.]+) MB/s' "$R/$name.txt" | head -1 | cut -d' ' -f1)
  if [ -f "$R/$name.json" ]; then
    python3 - "$R/$name.json" "${c0:-0}" "$c1" "$name" << 'PY' | tee -a "$R/summary.log"
import json, sys
r = json.load(open(sys.argv[1])); c0, c1 = float(sys.argv[2]), float(sys.argv[3])
gb = r["publish"]["bytes"] / 1e9
line = f"{sys.argv[4]} MB/s={r['publish']['mb_per_s']:.0f} cpu_s_per_GB={(c1 - c0) / gb:.2f} publish_p50_ms={r['publish_latency']['p50_us'] / 1000:.2f} errors={r['publish_errors']}"
if r.get("e2e_latency"):
    e = r["e2e_latency"]
    line += f" e2e_p50_ms={e['p50_us'] / 1000:.2f} e2e_p99_ms={e['p99_us'] / 1000:.2f} integrity_ok={r['integrity']['ok']}"
print(line)
PY
  else
    echo "$name MB/s=$mbs" | tee -a "$R/summary.log"
  fi
}

WARM=5
produce="produce --message-size 1024 --warmup ${WARM}s --duration ${SECS}s"
for round in $(seq "$ROUNDS"); do
  for acks in written durable; do
    run "r$round-grpc-$acks" 0 "$K" "$B" grpc-produce --in-flight 4 --acks $acks --total-bytes 8000000000
    run "r$round-send-$acks" $WARM "$K" "$B" $produce --acks $acks --json "$R/r$round-send-$acks.json"
    run "r$round-batchapi-$acks" $WARM "$K" "$B" $produce --acks $acks --batch-api --json "$R/r$round-batchapi-$acks.json"
    if [ -n "$OLD" ]; then
      run "r$round-old-$acks" $WARM "$K" "$OLD" $produce --acks $acks --json "$R/r$round-old-$acks.json"
    fi
  done
  run "r$round-send-16x4-written" $WARM "$K" "$B" $produce --acks written --partitions 16 --producers 4 --json "$R/r$round-send-16x4-written.json"
  run "r$round-e2e-100k-durable" $WARM "$K" "$B" e2e --message-size 1024 --warmup ${WARM}s --duration ${SECS}s --acks durable --linger 0ms --rate 100000 --json "$R/r$round-e2e-100k-durable.json"
  if [ -n "$OLD" ]; then
    run "r$round-old-e2e-100k-durable" $WARM "$K" "$OLD" e2e --message-size 1024 --warmup ${WARM}s --duration ${SECS}s --acks durable --linger 0ms --rate 100000 --json "$R/r$round-old-e2e-100k-durable.json"
  fi
done
