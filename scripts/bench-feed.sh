#!/usr/bin/env bash
# How fast a write on one replica reaches another (issue 14), under bench.sh's feedback load.
#
#   ./scripts/bench-feed.sh        # 2 replicas, budget 15, 300 probes under c=64 feedback load
#
# Two release replicas share cluster.connection_budget 15 on one PostgreSQL database holding
# MovieLens-100K. wrk posts one-event feedback to both (c=32 each, bench.sh's feedback scenario)
# while scripts/bench/feed_probe.py likes, through one replica, the item the other recommends
# first to a fresh user, and polls the other until it stops recommending it: the time from the
# like's acknowledgement to its effect on the other replica. pg_stat_activity is sampled every
# 100 ms for both replicas' backends (same application name). Uses $RECO_BENCH_DATABASE_URL (an
# admin URL; default postgres://postgres@127.0.0.1:5432/postgres) and database reco_bench_feed.
set -euo pipefail
cd "$(dirname "$0")/.."
ADMIN_URL=${RECO_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB_URL=${ADMIN_URL%/*}/reco_bench_feed
ML=${RECO_DATASETS_DIR:-../shared/datasets}/ml-100k
PROBES=${PROBES:-300}
CONC=${CONC:-64}
APP=reco_bench_feed
OUT=${OUT:-bench-out/feed}
mkdir -p "$OUT"

command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
[ -f "$ML/u.data" ] || { echo "MovieLens-100K not found at $ML" >&2; exit 1; }
cargo build --release --locked -q
BIN=target/release/reco

psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS reco_bench_feed WITH (FORCE)" -qc "CREATE DATABASE reco_bench_feed"
export DATABASE_URL=$DB_URL RECO_DB__APPLICATION_NAME=$APP RECO_LOG__LEVEL=warn \
  RECO_CLUSTER__CONNECTION_BUDGET=15
$BIN import movielens "$ML" >/dev/null 2>&1
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; }
trap cleanup EXIT
for port in 18191 18192; do
  $BIN serve --bind 127.0.0.1:$port > "$OUT/server.$port.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 150); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.2; done
done

( peak=0; while true; do
    n=$(psql "$ADMIN_URL" -Atc "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$APP'" 2>/dev/null || echo 0)
    [ "$n" -gt "$peak" ] && { peak=$n; echo "$peak" > "$OUT/peak"; }
    sleep 0.1
  done ) &
PIDS+=($!)

metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }
reads_before=($(metric 18191 reco_feed_reads_total) $(metric 18192 reco_feed_reads_total))
rows_before=$(( $(metric 18191 reco_feedback_rows_total) + $(metric 18192 reco_feedback_rows_total) ))
started=$(date +%s.%N)
for port in 18191 18192; do
  wrk -t1 -c$((CONC / 2)) -d3600s -s scripts/bench/feedback.lua "http://127.0.0.1:$port/api/feedback" \
    > /dev/null &
  PIDS+=($!)
done
sleep 2
python3 scripts/bench/feed_probe.py "$PROBES" http://127.0.0.1:18191 http://127.0.0.1:18192 | tee "$OUT/probe.txt"
ended=$(date +%s.%N)
reads_after=($(metric 18191 reco_feed_reads_total) $(metric 18192 reco_feed_reads_total))
rows=$(( $(metric 18191 reco_feedback_rows_total) + $(metric 18192 reco_feedback_rows_total) - rows_before ))
secs=$(echo "$ended - $started" | bc)
echo "feedback load: $(echo "$rows / $secs" | bc) events/s committed over both replicas (wrk c=$CONC, ${secs%.*} s)"
echo "feed reads per replica per second (one checkout each): $(echo "scale=2; (${reads_after[0]} - ${reads_before[0]}) / $secs" | bc), $(echo "scale=2; (${reads_after[1]} - ${reads_before[1]}) / $secs" | bc)"
echo "peak backends of both replicas: $(cat "$OUT/peak" 2>/dev/null || echo 0) (budget 15)"
for port in 18191 18192; do
  echo "replica $port: $(curl -s "http://127.0.0.1:$port/api/admin/pool" | python3 -c 'import json,sys; p=json.load(sys.stdin); print("ceiling", p["ceiling"], "feed", p.get("feed"))')"
done
