#!/usr/bin/env bash
# Import throughput: feedback rows from a CSV file into PostgreSQL with `reco import feedback`.
#
#   ./scripts/bench-import.sh             # 1,000,000 rows, 3 rounds
#   ROWS=10000000 ROUNDS=1 ./scripts/bench-import.sh
#
# The file (ROWS rows of another application's columns: uid, post_id, kind, created_at, rating,
# over 100,000 users and 20,000 items) is generated once into $OUT. Each round imports it into a
# fresh database reco_bench_import (created and dropped on $RECO_BENCH_DATABASE_URL, an admin URL;
# default postgres://postgres@127.0.0.1:5432/postgres) with a column mapping, and reports the
# wall time, rows per second, the CPU time and peak resident memory of the reco process (GNU time).
# RECO_BIN=path runs that binary instead of building this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
ADMIN_URL=${RECO_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB_URL=${ADMIN_URL%/*}/reco_bench_import
ROWS=${ROWS:-1000000}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
FILE=$OUT/events-$ROWS.csv

if [ -n "${RECO_BIN:-}" ]; then
  BIN=$RECO_BIN
else
  cargo build --release --locked -q
  BIN=target/release/reco
fi

if [ ! -f "$FILE" ]; then
  # Distinct (user, item, kind) keys: row i is user i mod 100000, item (i * 7919) mod 20000.
  awk -v n="$ROWS" 'BEGIN {
    print "uid,post_id,kind,created_at,rating";
    split("view click like", kinds, " ");
    for (i = 0; i < n; i++) {
      printf "%d,post-%d,%s,%d,%.1f\n", i % 100000, (i * 7919 + int(i / 100000)) % 20000,
        kinds[i % 3 + 1], 1700000000 + i, (i % 5) + 1;
    }
  }' > "$FILE"
fi
echo "file: $FILE ($(du -h "$FILE" | cut -f1), $ROWS rows)"

for round in $(seq 1 "$ROUNDS"); do
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS reco_bench_import WITH (FORCE)" \
    -qc "CREATE DATABASE reco_bench_import"
  $BIN --database-url "$DB_URL" migrate >/dev/null
  /usr/bin/time -f "%e %U %S %M" -o "$OUT/import-time.txt" \
    $BIN --database-url "$DB_URL" --log-level warn import feedback "$FILE" \
      --columns user_id=uid,item_id=post_id,type=kind,timestamp=created_at,value=rating \
      > "$OUT/import.log"
  stored=$(psql "$DB_URL" -Atc "SELECT COUNT(*) FROM feedback")
  read -r wall user sys kib < "$OUT/import-time.txt"
  awk -v r="$round" -v rows="$ROWS" -v wall="$wall" -v user="$user" -v sys="$sys" \
    -v kib="$kib" -v stored="$stored" \
    'BEGIN { printf "round %d: %d rows in %.1f s: %.0f rows/s; reco used %.1f s of CPU; peak resident %.0f MiB; %d rows stored\n",
             r, rows, wall, rows / wall, user + sys, kib / 1024, stored }'
done
psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS reco_bench_import WITH (FORCE)"
