#!/usr/bin/env bash
# Measures `fineo ingest` and `fineo batch` end to end on N generated events
# (JSON Lines → staged Avro archive → deduplicated, partitioned Parquet lake):
# wall time, CPU, peak RSS and events/s, with /usr/bin/time -v.
#
#   bash bench/batch.sh [N=1000000]
#
# Needs: npm ci (real vega-datasets data for bench/gen) and GNU time (apt-get install time).
# Each run writes to a fresh folder (file creation is slower for minutes after mass deletes).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
work=$(mktemp -d "${TMPDIR:-/tmp}/fineo-bench-XXXXXX")
echo "work dir: $work"
go build -o "$work/fineo" ./cmd/fineo
go run ./bench/gen -n "$N" -files 2 -out "$work/gen" >/dev/null

measure() { # name, command...
  local name=$1; shift
  /usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.time"
  local wall user sys rss
  wall=$(grep 'Elapsed (wall clock)' "$work/$name.time" | awk '{print $NF}')
  user=$(grep 'User time' "$work/$name.time" | awk '{print $NF}')
  sys=$(grep 'System time' "$work/$name.time" | awk '{print $NF}')
  rss=$(grep 'Maximum resident' "$work/$name.time" | awk '{print $NF}')
  printf '%-8s wall %8s  cpu %6.1f s  peak RSS %6.0f MB\n' "$name" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "$rss / 1024" | bc)"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(go version | cut -d' ' -f3); N=$N raw lines"
measure ingest "$work/fineo" ingest --input "$work/gen/raw" --schemas "$work/gen/schemas" --archive "$work/archive"
grep -E 'events_in|staged_written|conservation|done in' "$work/ingest.out" | sed 's/^/  /'
measure batch "$work/fineo" batch --quiet --archive "$work/archive" --lake "$work/lake" --schemas "$work/gen/schemas"
grep -E 'staged_read|lake_rows|lake_partitions|conservation|done in' "$work/batch.out" | sed 's/^/  /'
echo "lake: $(find "$work/lake" -name '*.parquet' | wc -l) Parquet files, $(du -sh "$work/lake" | cut -f1)"
rm -rf "$work"
