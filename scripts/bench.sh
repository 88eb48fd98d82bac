#!/usr/bin/env bash
# HTTP benchmarks of reco against PostgreSQL, with wrk (Debian package `wrk`).
#
#   ./scripts/bench.sh            # 3 rounds of 10 s per scenario, concurrency 64
#
# Scenarios, each against the same release binary and server process:
#   trivial   GET /health/live        (a trivial JSON handler: the ceiling of the HTTP stack here)
#   recommend GET /api/recommend/{u}  (MovieLens-100K loaded; engine auto = fast once trained)
#   quality   GET /api/recommend/{u}?engine=quality
#   feedback  POST /api/feedback      (one event per request; group commit)
# Throughout, pg_stat_activity is sampled every 100 ms for the server's backends; the peak is reported.
# Uses $RECO_BENCH_DATABASE_URL (an admin URL; default postgres://postgres@127.0.0.1:5432/postgres)
# and creates/drops the database reco_bench on it. RECO_BIN=path runs that binary instead of
# building this checkout (to compare two builds back to back); OUT=dir keeps each run's files apart.
set -euo pipefail
cd "$(dirname "$0")/.."
ADMIN_URL=${RECO_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB_URL=${ADMIN_URL%/*}/reco_bench
ML=${RECO_DATASETS_DIR:-../shared/datasets}/ml-100k
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONC=${CONC:-64}
APP=reco_bench
PORT=${PORT:-18181}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"

command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
[ -f "$ML/u.data" ] || { echo "MovieLens-100K not found at $ML" >&2; exit 1; }
if [ -n "${RECO_BIN:-}" ]; then
  BIN=$RECO_BIN
else
  cargo build --release --locked -q
  BIN=target/release/reco
fi

psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS reco_bench WITH (FORCE)" -qc "CREATE DATABASE reco_bench"
export DATABASE_URL=$DB_URL RECO_DB__APPLICATION_NAME=$APP RECO_LOG__LEVEL=warn
$BIN import movielens "$ML" >/dev/null 2>&1
$BIN serve --bind 127.0.0.1:$PORT > "$OUT/server.log" 2>&1 &
SERVER=$!
SAMPLER=
cleanup() { kill $SERVER ${SAMPLER:+$SAMPLER} 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.2; done
# Wait for the first training so that `auto` serves the trained engine.
for _ in $(seq 300); do
  curl -s "http://127.0.0.1:$PORT/api/recommend/1" | grep -q '"engine":"fast"' && break; sleep 0.2
done

# Peak backends of this server, sampled every 100 ms.
( peak=0; while true; do
    n=$(psql "$ADMIN_URL" -Atc "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$APP'" 2>/dev/null || echo 0)
    [ "$n" -gt "$peak" ] && { peak=$n; echo "$peak" > "$OUT/peak"; }
    sleep 0.1
  done ) &
SAMPLER=$!

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# wrk --latency output -> "rps p50_ms p99_ms"
parse() {
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } $1 == "Requests/sec:" { rps = $2 }
    /Non-2xx/ { non2xx = $NF }
    END { printf "%s %.3f %.3f %s\n", rps, p50, p99, (non2xx == "" ? 0 : non2xx) }'
}

run() { # name path [script]
  local name=$1 path=$2 script=${3:-}
  wrk -t2 -c"$CONC" -d"$DURATION" --latency ${script:+-s "$script"} "http://127.0.0.1:$PORT$path" | tee "$OUT/$name.$round.txt" | parse
}

echo "round scenario rps p50_ms p99_ms non2xx" > "$OUT/results.txt"
for round in $(seq "$ROUNDS"); do
  echo "$round trivial $(run trivial /health/live)" >> "$OUT/results.txt"
  echo "$round recommend $(run recommend / scripts/bench/recommend.lua)" >> "$OUT/results.txt"
  echo "$round quality $(run quality / scripts/bench/recommend_quality.lua)" >> "$OUT/results.txt"
done
rows_before=$(metric reco_feedback_rows_total); commits_before=$(metric reco_feedback_commits_total)
for round in $(seq "$ROUNDS"); do
  echo "$round feedback $(run feedback /api/feedback scripts/bench/feedback.lua)" >> "$OUT/results.txt"
done
rows=$(( $(metric reco_feedback_rows_total) - rows_before ))
commits=$(( $(metric reco_feedback_commits_total) - commits_before ))
pool=$(curl -s "http://127.0.0.1:$PORT/api/admin/pool")

cat "$OUT/results.txt"
echo
echo "median over $ROUNDS rounds (c=$CONC, $DURATION each):"
for s in trivial recommend quality feedback; do
  awk -v s="$s" '$2 == s' "$OUT/results.txt" | sort -k3 -n | awk -v s="$s" '
    { r[NR] = $3; p50[NR] = $4; p99[NR] = $5 } END { m = int((NR + 1) / 2); printf "  %-9s %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms\n", s, r[m], p50[m], p99[m] }'
done
echo "feedback: $rows rows in $commits group commits ($(( rows / (commits > 0 ? commits : 1) )) rows per commit)"
echo "peak backends of the server during the run: $(cat "$OUT/peak" 2>/dev/null || echo 0) (pool_size 5 + max_overflow 10)"
echo "pool at the end: $pool"
