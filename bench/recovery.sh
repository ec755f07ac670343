#!/usr/bin/env bash
# How long a broker with many partitions takes to listen again after
# `kill -9`, and after a clean stop, for docs/BENCHMARKS.md (issue 13).
#
#   cargo build --release -p strata-broker -p strata-client
#   bench/recovery.sh [DIR] [TOPICS] [PARTITIONS_PER_TOPIC] [BIG_TOPIC_PARTITIONS]
#
# Defaults: 200 topics of 10 partitions and one of 2,000 (4,000 in all),
# under DIR (default /work/benchtmp/recovery, emptied first). Prints one
# line per restart; takes about two minutes here, most of it creating.
set -euo pipefail
dir=${1:-/work/benchtmp/recovery}
topics=${2:-200}
per=${3:-10}
big=${4:-2000}
bin=${STRATA_BIN:-$(dirname "$0")/../target/release}
port=17391
rm -rf "$dir"; mkdir -p "$dir"

# Starts the broker; sets `pid`, and `secs` to the time until it listens.
start() {
    local log=$1
    local t0=$(date +%s.%N)
    "$bin/strata-broker" --data-dir "$dir/data" --listen 127.0.0.1:$port --no-metrics --no-kafka >"$log" 2>&1 &
    pid=$!
    until grep -q "listening on" "$log"; do
        kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
        sleep 0.01
    done
    secs=$(echo "$(date +%s.%N) - $t0" | bc)
}

start "$dir/first.log"
for i in $(seq 1 "$topics"); do
    "$bin/strata" topic create "t$i" --partitions "$per" --broker http://127.0.0.1:$port >/dev/null
done
"$bin/strata" topic create big --partitions "$big" --broker http://127.0.0.1:$port >/dev/null
total=$((topics * per + big))

"$bin/strata" topic list --broker http://127.0.0.1:$port | grep -c . | sed 's/^/topics listed: /'

kill -9 $pid; wait $pid 2>/dev/null || true
start "$dir/crash.log"
echo "after kill -9: $total partitions listening again in $secs s"

kill -TERM $pid; wait $pid 2>/dev/null || true
start "$dir/clean.log"
echo "after a clean stop: $total partitions listening again in $secs s"
kill -TERM $pid; wait $pid 2>/dev/null || true
