#!/usr/bin/env bash
# Head-of-line blocking benchmark (issue 10): `fast` reads and one-event feedback, with and without
# 16 clients looping the most expensive request (`engine=quality&n=1000`), on MovieLens-100K in
# PostgreSQL, one release server, default configuration.
#
#   ./scripts/bench-stall.sh        # 20 s per phase
#
# Phase "alone": wrk sends `fast` reads (c=16) and feedback (c=8) side by side.
# Phase "slow":  the same, while another wrk keeps 16 connections looping quality n=1000.
# Prints p50/p99 of `fast` and of feedback in both phases, and their ratios.
# Uses $RECO_BENCH_DATABASE_URL like scripts/bench.sh; RECO_BIN=path runs that binary.
set -euo pipefail
cd "$(dirname "$0")/.."
ADMIN_URL=${RECO_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB_URL=${ADMIN_URL%/*}/reco_bench
ML=${RECO_DATASETS_DIR:-../shared/datasets}/ml-100k
DURATION=${DURATION:-20}
PORT=${PORT:-18182}
OUT=${OUT:-bench-out-stall}
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
[ -f "$ML/u.data" ] || { echo "MovieLens-100K not found at $ML" >&2; exit 1; }
if [ -n "${RECO_BIN:-}" ]; then BIN=$RECO_BIN; else cargo build --release --locked -q; BIN=target/release/reco; fi

psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS reco_bench WITH (FORCE)" -qc "CREATE DATABASE reco_bench"
export DATABASE_URL=$DB_URL RECO_DB__APPLICATION_NAME=reco_bench RECO_LOG__LEVEL=warn
$BIN import movielens "$ML" >/dev/null 2>&1
$BIN serve --bind 127.0.0.1:$PORT > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.2; done
for _ in $(seq 300); do
  curl -s "http://127.0.0.1:$PORT/api/recommend/1?engine=quality" | grep -q '"engine":"quality"' && break; sleep 0.2
done

# wrk --latency output -> "rps p50_ms p99_ms"
parse() {
  awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } $1 == "Requests/sec:" { rps = $2 }
    END { printf "%s %.3f %.3f\n", rps, p50, p99 }' "$1"
}
phase() { # name: fast and feedback side by side for DURATION seconds
  wrk -t1 -c16 -d"${DURATION}s" --latency -s scripts/bench/recommend_fast.lua "http://127.0.0.1:$PORT" > "$OUT/$1.fast.txt" &
  local f=$!
  wrk -t1 -c8 -d"${DURATION}s" --latency -s scripts/bench/feedback.lua "http://127.0.0.1:$PORT/api/feedback" > "$OUT/$1.feedback.txt"
  wait $f
}
trained() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^reco_train_runs_total/ { n += $2 } END { print n + 0 }'; }
before=$(trained)
phase alone
after_alone=$(trained)
wrk -t1 -c16 -d"$((DURATION + 10))s" --latency -s "${SLOW_SCRIPT:-scripts/bench/quality_1000.lua}" "http://127.0.0.1:$PORT" > "$OUT/slow.quality.txt" &
SLOW=$!
sleep 5
phase slow
wait $SLOW
metrics=$(curl -s "http://127.0.0.1:$PORT/metrics")
after_slow=$(trained)

echo "phase scenario rps p50_ms p99_ms" | tee "$OUT/results.txt"
for p in alone slow; do for s in fast feedback; do echo "$p $s $(parse "$OUT/$p.$s.txt")" | tee -a "$OUT/results.txt"; done; done
echo "slow quality_n1000 $(parse "$OUT/slow.quality.txt")" | tee -a "$OUT/results.txt"
awk '$1 == "alone" { a[$2] = $5 } $1 == "slow" { s[$2] = $5 } END {
  for (k in a) printf "p99 ratio with the slow clients, %s: %.2fx\n", k, s[k] / a[k] }' "$OUT/results.txt"
echo "training runs during the phases: alone $((after_alone - before)), slow $((after_slow - after_alone))"
echo "$metrics" | grep -E '^reco_deadline_fallbacks_total|^reco_engine_jobs|^reco_train_runs_total|^reco_train_seconds_(sum|count)' || true
