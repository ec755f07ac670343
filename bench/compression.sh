#!/usr/bin/env bash
# Compression through the whole path (issue 15): `strata-bench produce` and
# `consume` with the bench's JSON-like payload, uncompressed and with lz4
# and zstd, each against a fresh broker on a fresh data directory, caches
# dropped before each run, all in the same hour. For each run: logical
# MB/s (uncompressed bytes), the CPU of the bench and of the broker (user +
# system, whole run) per logical GB, and the bytes the topic takes on disk.
# Then `strata-bench codecs`: each codec alone on one core.
#
# Run from the repository after `cargo build --release`, as root.
# ROUNDS (default 3), SECONDS_PER_RUN (default 10), DIR (default /work/benchtmp).
set -u
B=${B:-$(pwd)/target/release/strata-bench}
K=${K:-$(pwd)/target/release/strata-broker}
DIR=${DIR:-/work/benchtmp}
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-10}
R=$DIR/compression
mkdir -p "$R"
port=7398

cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

# run NAME ARGS...: one bench run against a fresh broker.
run() {
  local name=$1; shift
  local data=$DIR/data-$name
  rm -rf "$data"; mkdir -p "$data"
  sync; echo 3 > /proc/sys/vm/drop_caches
  "$K" --data-dir "$data" --listen 127.0.0.1:$port --no-metrics --no-kafka > "$R/$name.broker.log" 2>&1 &
  local kp=$!
  for _ in $(seq 100); do grep -q "listening on" "$R/$name.broker.log" && break; sleep 0.1; done
  "$B" "$@" --broker http://127.0.0.1:$port --json "$R/$name.json" > "$R/$name.txt" 2>&1 &
  local bp=$! bc=0 kc=0
  while kill -0 $bp 2> /dev/null; do
    bc=$(cpu $bp 2> /dev/null || echo "$bc"); kc=$(cpu $kp 2> /dev/null || echo "$kc")
    sleep 0.1
  done
  wait $bp
  local disk; disk=$(du -sb "$data/topics" | cut -f1)
  kill $kp; wait $kp 2> /dev/null
  rm -rf "$data"
  python3 - "$R/$name.json" "$bc" "$kc" "$disk" "$name" << 'PY' | tee -a "$R/summary.log"
import json, sys
r = json.load(open(sys.argv[1])); bc, kc, disk = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
side = r["consume"] if r.get("consume") else r["publish"]
gb = side["bytes"] / 1e9
line = f"{sys.argv[5]} MB/s={side['mb_per_s']:.0f} disk_MB={disk / 1e6:.0f}"
if not r.get("consume"):
    # A consume run's CPU includes filling its backlog: only produce runs say it.
    line += f" bench_cpu_s_per_GB={bc / gb:.2f} broker_cpu_s_per_GB={kc / gb:.2f}"
print(line)
PY
}

common="--message-size 1024 --payload json --acks written"
for round in $(seq "$ROUNDS"); do
  for codec in none lz4 zstd; do
    run "r$round-produce-$codec" produce $common --compression $codec --warmup 0s --duration ${SECS}s
  done
  for codec in none lz4 zstd; do
    run "r$round-consume-$codec" consume $common --compression $codec --messages 2000000
  done
done
"$B" codecs | tee -a "$R/summary.log"
"$B" codecs --payload random | tee -a "$R/summary.log"
