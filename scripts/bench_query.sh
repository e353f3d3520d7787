#!/usr/bin/env bash
# Query latency of the investigation API's typical queries: auditwatch's engine
# (DataFusion through auditwatch::query::QueryEngine) next to DuckDB on the same Parquet
# files. Both warm (one process, one warm-up run), p50 of --runs runs, same machine.
#
#   scripts/bench_query.sh                 # 10M events over 30 simulated days
#   scripts/bench_query.sh --100m              # 100M (7.3 GB of Parquet; ~1.5 h to build once)
#   scripts/bench_query.sh --explain       # also print our EXPLAIN ANALYZE per query
#
# Steps: DuckDB (pinned) into a venv under ~/.cache/auditwatch/venv; a release build;
# a store built once per size under ~/.cache/auditwatch/bench-query (generate one day,
# ingest it, delete the day's files, so disk holds only the store; then compact); the
# query parameters picked from the data; then the table.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=10000000
DAYS=30
RUNS=15
EXPLAIN=""
REBUILD=0
DUCKDB_VERSION=1.4.3
PYARROW_VERSION=21.0.0
CACHE="${AUDITWATCH_CACHE:-$HOME/.cache/auditwatch}"
WORK="$CACHE/bench-query"

while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS="$2"; shift 2 ;;
    --100m) EVENTS=100000000; shift ;;
    --days) DAYS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --rebuild-store) REBUILD=1; shift ;;
    --explain) EXPLAIN=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$RUNS" -ge 10 ] || { echo "--runs must be at least 10" >&2; exit 2; }

log() { echo "bench_query: $*" >&2; }

# 1. DuckDB, pinned, in a venv; pyarrow so DuckDB hands back Arrow tables, as our engine
#    does (Python row objects would charge DuckDB for a conversion we don't do)
VENV="$CACHE/venv"
if ! "$VENV/bin/python" -c "import duckdb, pyarrow, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION' or pyarrow.__version__ != '$PYARROW_VERSION')" 2>/dev/null; then
  log "installing duckdb==$DUCKDB_VERSION pyarrow==$PYARROW_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "duckdb==$DUCKDB_VERSION" "pyarrow==$PYARROW_VERSION"
fi
PY="$VENV/bin/python"

# 2. release build (the binary for generate/ingest/compact, the bench harness for queries)
log "building (release)"
cargo build --release --locked --bin auditwatch >&2
BIN="${CARGO_TARGET_DIR:-target}/release/auditwatch"

# 3. the store, built once per size
STORE="$WORK/store-$EVENTS"
if [ "$REBUILD" = 1 ] || [ ! -f "$STORE/.complete" ]; then
  rm -rf "$STORE" "$WORK/gen"
  mkdir -p "$STORE"
  # measured: scale 1.0 gives ~185k rows per simulated day (weekdays and weekends averaged)
  SCALE=$(python3 -c "print(round($EVENTS / ($DAYS * 185400), 4))")
  log "building a store of ~$EVENTS events: $DAYS days at scale $SCALE in $STORE"
  started=$(date +%s)
  for ((d = 0; d < DAYS; d++)); do
    day=$(date -u -d "2026-11-02 + $d days" +%F)
    "$BIN" generate --out "$WORK/gen" --days 1 --start "$day" --scale "$SCALE" --seed $((d + 1)) >/dev/null
    "$BIN" ingest --no-progress --data-dir "$STORE" "$WORK/gen/kubernetes" "$WORK/gen/vault" >/dev/null
    rm -rf "$WORK/gen"
    log "  $day ingested ($(( $(date +%s) - started )) s)"
  done
  files_before=$(find "$STORE/events" -name '*.parquet' | wc -l)
  log "compacting ($files_before files)"
  # the generated days may lie in the future: age them against a clock past the last one
  # so every day is rolled up into its date directory, as a live store's older days are
  now=$(date -u -d "2026-11-02 + $((DAYS + 3)) days" +%FT00:00:00Z)
  "$BIN" compact --data-dir "$STORE" --min-age 0s --now "$now" >&2
  echo "$files_before" > "$STORE/.files_before_compaction"
  touch "$STORE/.complete"
fi

# 4. parameters from the data, and the queries (the same SQL for both engines)
QUERIES="$WORK/queries-$EVENTS.tsv"
"$PY" - "$STORE" "$QUERIES" <<'EOF'
import sys, duckdb
store, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{store}/events/**/*.parquet', hive_partitioning = false)")
# a busy workload identity on one weekday, and a secret read by several identities
actor = con.execute("""SELECT actor FROM events
    WHERE time >= '2026-11-10T00:00:00Z' AND time < '2026-11-11T00:00:00Z'
    GROUP BY actor ORDER BY count(*) DESC, actor LIMIT 1 OFFSET 5""").fetchone()[0]
path = con.execute("""SELECT resource_path FROM events WHERE secret_access AND resource_path IS NOT NULL
    GROUP BY resource_path HAVING count(DISTINCT actor) >= 2
    ORDER BY count(*) DESC, resource_path LIMIT 1 OFFSET 10""").fetchone()[0]
q = lambda s: s.replace("'", "''")
queries = {
    "identity_24h": f"SELECT time, action, resource_path, outcome, src_ip FROM events WHERE actor = '{q(actor)}' AND time >= '2026-11-10T00:00:00Z' AND time < '2026-11-11T00:00:00Z' ORDER BY time",
    "path_accessors_30d": f"SELECT actor, count(*) AS n, min(time) AS first_seen, max(time) AS last_seen FROM events WHERE resource_path = '{q(path)}' AND time >= '2026-11-02T00:00:00Z' AND time < '2026-12-02T00:00:00Z' GROUP BY actor ORDER BY n DESC, actor",
    "actions_7d": "SELECT action, count(*) AS n FROM events WHERE time >= '2026-11-09T00:00:00Z' AND time < '2026-11-16T00:00:00Z' GROUP BY action ORDER BY n DESC, action",
}
with open(out, "w") as f:
    for k, v in queries.items():
        f.write(f"{k}\t{v}\n")
print(f"actor = {actor}\npath  = {path}", file=sys.stderr)
EOF

# 5. ours: the bench harness (warm engine, p50 of RUNS)
log "auditwatch: $RUNS runs per query"
OURS="$WORK/ours-$EVENTS.jsonl"
AUDITWATCH_BENCH_STORE="$STORE" AUDITWATCH_BENCH_QUERIES="$QUERIES" AUDITWATCH_BENCH_RUNS="$RUNS" \
  AUDITWATCH_BENCH_EXPLAIN="$EXPLAIN" \
  cargo test --release --locked --bench query -- --nocapture --test-threads 1 2>"$WORK/ours.stderr" \
  | grep -o '{"min_ms.*}' > "$OURS" || { cat "$WORK/ours.stderr" >&2; exit 1; }
[ -n "$EXPLAIN" ] && grep -v '^\s*\(Compiling\|Finished\|Running\)' "$WORK/ours.stderr" >&2 || true

# 6. DuckDB on the same files, then the table
log "duckdb $DUCKDB_VERSION: $RUNS runs per query"
"$PY" - "$STORE" "$QUERIES" "$OURS" "$RUNS" "$DUCKDB_VERSION" <<'EOF'
import json, os, subprocess, sys, time
import duckdb
store, queries, ours, runs, ver = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{store}/events/**/*.parquet', hive_partitioning = false)")
ours = {r["name"]: r for r in map(json.loads, open(ours))}
n_events = con.execute("SELECT count(*) FROM events").fetchone()[0]
files = sum(1 for _, _, fs in os.walk(f"{store}/events") for f in fs if f.endswith(".parquet"))
size = subprocess.run(["du", "-sh", f"{store}/events"], capture_output=True, text=True).stdout.split()[0]
before = open(f"{store}/.files_before_compaction").read().strip() if os.path.exists(f"{store}/.files_before_compaction") else "?"
threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
print(f"\nstore: {n_events:,} events, {size} of Parquet in {files} files (compacted from {before}); {os.cpu_count()} cores; duckdb {ver} ({threads} threads); warm, p50 of {runs} runs\n")
print(f"| query | rows | auditwatch p50 (of which planning) | duckdb p50 | auditwatch / duckdb |")
print(f"|---|---|---|---|---|")
for line in open(queries):
    name, sql = line.rstrip("\n").split("\t", 1)
    rows = con.execute(sql).fetch_arrow_table().num_rows  # warm-up
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        con.execute(sql).fetch_arrow_table()
        ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    d = ms[len(ms) // 2]
    o = ours[name]
    flag = "" if o["rows"] == rows else f" (row counts differ: ours {o['rows']})"
    print(f"| {name} | {rows} | {o['p50_ms']:.1f} ms ({o['plan_p50_ms']:.1f} ms) | {d:.1f} ms | {o['p50_ms'] / d:.2f}{flag} |")
EOF
