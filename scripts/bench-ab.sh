#!/usr/bin/env bash
# Two builds of reco side by side over HTTP, with wrk (Debian package `wrk`).
#
#   ./scripts/bench-ab.sh OLD_BIN NEW_BIN [DURATION] [ROUNDS] [ROUTES...]
#   ./scripts/bench-ab.sh /tmp/reco-old target/release/reco 4s 10 trivial recommend_fast recommend_quality recommend
#
# Both servers run at once on one `reco_bench` database (MovieLens-100K imported, trained, idle
# before the first run), and wrk (`-t2 -c64 --latency`) alternates between them route by route,
# the order of the two swapped every round. Each route's requests/s is divided by the same
# server's trivial handler (`GET /health/live`) in the same round, and the medians over the
# rounds are printed: a single run per server swings by a fifth on a shared machine, and the
# servers' conditions drift between runs. Each route's server CPU time per request (user and
# system, from /proc) is printed too: it moves far less with the machine's load than requests/s,
# and shows a change of a few percent that the ratios cannot. Routes: `trivial`, or a wrk script in scripts/bench/
# (without `.lua`). Uses $RECO_BENCH_DATABASE_URL (admin URL; default
# postgres://postgres@127.0.0.1:5432/postgres); creates the database reco_bench on it if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 DURATION=${3:-4s} ROUNDS=${4:-10}
shift $(( $# < 4 ? $# : 4 ))
ROUTES=("$@")
[ ${#ROUTES[@]} -gt 0 ] || ROUTES=(trivial recommend_fast recommend_quality recommend)
ADMIN_URL=${RECO_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
ML=${RECO_DATASETS_DIR:-../shared/datasets}/ml-100k
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
export DATABASE_URL=${ADMIN_URL%/*}/reco_bench RECO_LOG__LEVEL=warn RECO_DB__APPLICATION_NAME=reco_bench
if ! psql "$ADMIN_URL" -Atc "SELECT 1 FROM pg_database WHERE datname = 'reco_bench'" | grep -q 1; then
  psql "$ADMIN_URL" -qc "CREATE DATABASE reco_bench"
  "$NEW" import movielens "$ML" >/dev/null 2>&1
fi
"$OLD" serve --bind 127.0.0.1:18199 > "$OUT/ab-old.log" 2>&1 & A=$!
"$NEW" serve --bind 127.0.0.1:18200 > "$OUT/ab-new.log" 2>&1 & B=$!
trap 'kill $A $B 2>/dev/null || true' EXIT
for port in 18199 18200; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.2; done
  for _ in $(seq 600); do
    curl -s "http://127.0.0.1:$port/api/recommend/1?engine=quality" | grep -q '"engine":"quality"' && break
    sleep 0.2
  done
done
# Idle: both servers' CPU time still for a second (the snapshot is published after training).
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
for _ in $(seq 120); do
  before=$(( $(cpu $A) + $(cpu $B) )); sleep 1
  [ $(( $(cpu $A) + $(cpu $B) - before )) -le 3 ] && break
done
run() { # port pid route -> "rps p99 cpu_us_per_request"
  local script=()
  [ "$3" = trivial ] || script=(-s "scripts/bench/$3.lua")
  local path=/; [ "$3" = trivial ] && path=/health/live
  local before; before=$(cpu "$2")
  wrk -t2 -c64 -d"$DURATION" --latency "${script[@]}" "http://127.0.0.1:$1$path" |
    awk -v ticks="$(getconf CLK_TCK)" -v before="$before" -v after_file="/proc/$2/stat" '
      $1 == "Requests/sec:" { rps = $2 } $1 == "99%" { p99 = $2 } $2 == "requests" && $3 == "in" { n = $1 }
      END { getline stat < after_file; split(stat, f, " "); used = f[14] + f[15] - before
            printf "%s %s %.1f\n", rps, p99, used * 1e6 / ticks / n }'
}
: > "$OUT/ab.txt"
for round in $(seq "$ROUNDS"); do
  for route in "${ROUTES[@]}"; do
    sides=(old new); [ $((round % 2)) = 0 ] && sides=(new old)
    for side in "${sides[@]}"; do
      port=18199 pid=$A; [ "$side" = new ] && port=18200 pid=$B
      echo "$round $side $route $(run $port $pid "$route")" | tee -a "$OUT/ab.txt"
    done
  done
done
python3 - "$OUT/ab.txt" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, side, route, rps, p99, cpu = line.split()
    runs[(side, r)][route] = (float(rps), p99, float(cpu))
for side in ("old", "new"):
    rounds = [v for (s, _), v in sorted(runs.items()) if s == side]
    trivial = [v["trivial"][0] for v in rounds if "trivial" in v]
    cpu = [v["trivial"][2] for v in rounds if "trivial" in v]
    print(f"{side}: trivial median {statistics.median(trivial):,.0f} req/s, "
          f"{statistics.median(cpu):.1f} µs server CPU per request" if trivial else side)
    for route in sorted({k for v in rounds for k in v} - {"trivial"}):
        ratios = [v[route][0] / v["trivial"][0] for v in rounds if route in v and "trivial" in v]
        p99s = " ".join(v[route][1] for v in rounds if route in v)
        cpu = statistics.median(v[route][2] for v in rounds if route in v)
        if ratios:
            print(f"  {route:20} median {statistics.median(ratios):.3f}x "
                  f"({min(ratios):.3f}-{max(ratios):.3f}), {cpu:.1f} µs server CPU per request, "
                  f"p99 per round: {p99s}")
PY
