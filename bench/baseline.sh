#!/usr/bin/env bash
# The OpenMessaging-style baseline: 1 topic, 1 and 16 partitions, 1 KiB
# messages, 1 producer, 1 consumer, written and durable. Recorded in
# docs/BENCHMARKS.md. Run from the repository after `cargo build --release`,
# as root (it drops the page cache before each run). DIR holds the spawned
# brokers' data and the results (default /work/benchtmp).
set -u
B=${B:-$(pwd)/target/release/strata-bench}
DIR=${DIR:-/work/benchtmp}
R=$DIR/results
mkdir -p "$R"
cd "$DIR"
common="--spawn-broker --dir $DIR --message-size 1024 --linger 0ms --warmup 5s"
for acks in written durable; do
  for p in 1 16; do
    sync; echo 3 > /proc/sys/vm/drop_caches
    $B produce $common --acks $acks --partitions $p --duration 20s --json $R/produce-$acks-$p.json > $R/produce-$acks-$p.txt 2>&1
    max=$(python3 -c "import json;print(int(json.load(open('$R/produce-$acks-$p.json'))['publish']['messages_per_s']))")
    rate=$max
    for attempt in 1 2 3 4 5 6; do
      sync; echo 3 > /proc/sys/vm/drop_caches
      $B e2e $common --acks $acks --partitions $p --rate $rate --duration 20s --json $R/e2e-$acks-$p-$rate.json > $R/e2e-$acks-$p-$rate.txt 2>&1
      ok=$(python3 -c "
import json; r=json.load(open('$R/e2e-$acks-$p-$rate.json'))
pub=r['publish']['messages_per_s']; p99=r['e2e_latency']['p99_us']
print(1 if pub >= 0.97*$rate and p99 < 500000 and r['integrity']['ok'] else 0)")
      echo "$acks p=$p rate=$rate sustained=$ok" >> $R/search.log
      if [ "$ok" = 1 ]; then break; fi
      rate=$((rate * 8 / 10))
    done
    echo "$acks $p max_produce=$max sustained_e2e=$rate" >> $R/summary.log
    half=$((rate / 2))
    sync; echo 3 > /proc/sys/vm/drop_caches
    extra=""
    if [ "$acks" = durable ] && [ "$p" = 1 ]; then extra="--plot $R/e2e-half.svg --hdr-out $R/e2e-half"; fi
    $B e2e $common --acks $acks --partitions $p --rate $half --duration 20s --json $R/e2e-$acks-$p-half.json $extra > $R/e2e-$acks-$p-half.txt 2>&1
  done
done
echo done >> $R/summary.log
