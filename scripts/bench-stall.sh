#!/usr/bin/env bash
# Head-of-line blocking benchmark (issue 10): `fast` reads and one-event feedback, with and without
# 16 clients looping the most expensive request (`engine=quality&n=1000`), on MovieLens-100K in
# PostgreSQL, one release server, default configuration.
#
#   ./scripts/bench-stall.sh        # ROUNDS=3 rounds, DURATION=20 s per phase
#
# Phase "alone": wrk sends `fast` reads (c=16) and feedback (c=8) side by side.
# Phase "slow":  the same, while another wrk keeps 16 connections looping quality n=1000.
# Each round runs both phases; prints p50/p99 of `fast` and of feedback per phase and round, each
# round's p99 ratio and the median ratio.
# Uses $RECO_BENCH_DATABASE_URL like scripts/bench.sh; RECO_BIN=path runs that binary.
set -euo pipefail
cd "$(dirname "$0")/.."
ADMIN_URL=${RECO_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB_URL=${ADMIN_URL%/*}/reco_bench
ML=${RECO_DATASETS_DIR:-../shared/datasets}/ml-100k
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-3}
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
# Rounds alternate the two phases in one server's life, so that a stall of the machine (another
# process, autovacuum, a checkpoint) lands in one round instead of deciding the whole comparison.
for r in $(seq "$ROUNDS"); do
  phase "alone$r"
  wrk -t1 -c16 -d"$((DURATION + 5))s" --latency -s "${SLOW_SCRIPT:-scripts/bench/quality_1000.lua}" "http://127.0.0.1:$PORT" > "$OUT/slow$r.quality.txt" &
  SLOW=$!
  sleep 3
  phase "slow$r"
  wait $SLOW
done
metrics=$(curl -s "http://127.0.0.1:$PORT/metrics")

echo "round phase scenario rps p50_ms p99_ms" | tee "$OUT/results.txt"
for r in $(seq "$ROUNDS"); do
  for p in alone slow; do for s in fast feedback; do
    echo "$r $p $s $(parse "$OUT/$p$r.$s.txt")" | tee -a "$OUT/results.txt"
  done; done
  echo "$r slow quality_n1000 $(parse "$OUT/slow$r.quality.txt")" | tee -a "$OUT/results.txt"
done
# Per scenario: each round's p99 ratio, their median, and the medians of the p99s themselves.
awk 'function median(v, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
       return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
  NR > 1 && $3 != "quality_n1000" { p99[$3, $2, $1] = $6; rounds = $1 > rounds ? $1 : rounds; kinds[$3] = 1 }
  END { for (k in kinds) { line = ""
      for (r = 1; r <= rounds; r++) { ratio[r] = p99[k, "slow", r] / p99[k, "alone", r]; a[r] = p99[k, "alone", r]; s[r] = p99[k, "slow", r]
        line = line sprintf(" %.2fx", ratio[r]) }
      printf "p99 ratio with the slow clients, %s, per round:%s; median %.2fx; median p99 alone %.2f ms, slow %.2f ms\n",
        k, line, median(ratio, rounds), median(a, rounds), median(s, rounds) } }' "$OUT/results.txt"
echo "training runs during the rounds: $(( $(trained) - before ))"
echo "$metrics" | grep -E '^reco_deadline_fallbacks_total|^reco_engine_jobs|^reco_train_runs_total|^reco_train_seconds_(sum|count)' || true
