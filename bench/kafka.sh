#!/usr/bin/env bash
# The Kafka listener against the gRPC path, in the same hour (issue 16):
# librdkafka's own rdkafka_performance (producing 1 KiB records to one
# partition with acks=all, which is our durable; then consuming them from
# the beginning) beside `strata-bench grpc-produce` (pre-encoded batches,
# the layer below) and `strata-bench produce` (strata-client), all durable.
# Each run gets its own broker on a fresh data directory, caches dropped.
#
# rdkafka_performance is not ours: build it from librdkafka's source
# (`apt-get source librdkafka` with a deb-src line, then `./configure
# --disable-ssl --disable-sasl --disable-curl && make libs && make -C
# examples rdkafka_performance`) and point RDKP at it.
#
# Run from the repository after `cargo build --release`, as root.
# RDKP (rdkafka_performance), ROUNDS (3), MESSAGES (3000000), DIR (/work/benchtmp).
set -u
B=${B:-$(pwd)/target/release/strata-bench}
K=${K:-$(pwd)/target/release/strata-broker}
S=${S:-$(pwd)/target/release/strata}
RDKP=${RDKP:?set RDKP to a built rdkafka_performance}
DIR=${DIR:-/work/benchtmp}
ROUNDS=${ROUNDS:-3}
N=${MESSAGES:-3000000}
R=$DIR/kafka
mkdir -p "$R"
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-$(dirname "$RDKP")/../src}

# broker NAME: a fresh broker (gRPC on 7398, Kafka on 9098); sets kp.
broker() {
  data=$DIR/data-$1
  rm -rf "$data"; mkdir -p "$data"
  sync; echo 3 > /proc/sys/vm/drop_caches
  "$K" --data-dir "$data" --listen 127.0.0.1:7398 --kafka-listen 127.0.0.1:9098 --no-metrics > "$R/$1.broker.log" 2>&1 &
  kp=$!
  for _ in $(seq 100); do grep -q "listening on" "$R/$1.broker.log" && break; sleep 0.1; done
}
stop() { kill $kp; wait $kp 2> /dev/null; rm -rf "$data"; }

for round in $(seq "$ROUNDS"); do
  broker "r$round-grpc"
  "$B" grpc-produce --broker http://127.0.0.1:7398 --in-flight 4 --acks durable --total-bytes $((N * 1024)) > "$R/r$round-grpc.txt" 2>&1
  echo "r$round grpc-produce durable $(grep -oE '[0-9.]+ MB/s' "$R/r$round-grpc.txt" | head -1)" | tee -a "$R/summary.log"
  stop

  broker "r$round-client"
  "$B" produce --broker http://127.0.0.1:7398 --message-size 1024 --acks durable --messages "$N" > "$R/r$round-client.txt" 2>&1
  echo "r$round strata-bench produce durable $(grep -oE '[0-9.]+ MB/s' "$R/r$round-client.txt" | head -1)" | tee -a "$R/summary.log"
  stop

  broker "r$round-kafka"
  "$S" --broker http://127.0.0.1:7398 topic create perf --partitions 1 > /dev/null
  "$RDKP" -P -t perf -p 0 -b 127.0.0.1:9098 -s 1024 -c "$N" -a -1 -X linger.ms=5 -X batch.size=1000000 \
    -X queue.buffering.max.kbytes=2097151 -X queue.buffering.max.messages="$N" > "$R/r$round-rdkp-produce.txt" 2>&1
  echo "r$round rdkafka_performance produce acks=all $(tail -1 "$R/r$round-rdkp-produce.txt" | grep -oE '[0-9.]+ MB/s')" | tee -a "$R/summary.log"
  "$RDKP" -C -t perf -p 0 -b 127.0.0.1:9098 -o beginning -c "$N" -X fetch.max.bytes=67108864 \
    -X max.partition.fetch.bytes=16777216 > "$R/r$round-rdkp-consume.txt" 2>&1
  echo "r$round rdkafka_performance consume $(grep -E 'consumed in' "$R/r$round-rdkp-consume.txt" | tail -1 | grep -oE '\([0-9.]+ MB/s\)')" | tee -a "$R/summary.log"
  stop
done
