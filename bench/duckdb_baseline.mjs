// Baseline for bench/run: the same batch job as one DuckDB statement — read
// the raw JSON Lines, unnest envelopes, deduplicate exact re-deliveries,
// write Parquet partitioned by tenant, metric type and event date, as the
// issue's measured DuckDB job and Fineo's lake are. It does less than Fineo
// (no aliases, casts, unit conversions or error classification; malformed
// lines are skipped with ignore_errors), so it is a conservative baseline.
// The event date comes from the first of timestamp, ts and time: epoch
// seconds, milliseconds, microseconds or nanoseconds told apart by
// magnitude, or an RFC 3339 string; rows without a valid one are left out.
//
// With SCHEMA_DIR (bench/gen's schemas), metric aliases are mapped to their
// canonical metric and metrics the schemas do not name are left out, so the
// partitions are Fineo's; without, every metric value is a partition.
//
// Usage: node bench/duckdb_baseline.mjs RAW_GLOB OUT_DIR [SCHEMA_DIR] [--no-date]
//   --no-date: partition by tenant and metric only (the baseline of the
//   earlier RESULTS tables: fewer, larger files, less work).
import { readFileSync, readdirSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';

const args = process.argv.slice(2);
const byDate = !args.includes('--no-date');
const [glob, out, schemaDir] = args.filter((a) => !a.startsWith('--'));

// metricAliases reads the metric aliases of bench/gen's schema files (its
// own fixed YAML layout: "  - name: M" then "    aliases:" and "      - A")
// so that DuckDB's partitions are the canonical metrics, like Fineo's.
function metricAliases(dir) {
  const pairs = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    let tenant = '', metric = '', inAliases = false;
    for (const line of readFileSync(`${dir}/${f}`, 'utf8').split('\n')) {
      let m;
      if ((m = line.match(/^tenant: (\S+)/))) tenant = m[1];
      else if ((m = line.match(/^  - name: (\S+)/))) { metric = m[1]; inAliases = false; pairs.push([tenant, metric, metric]); }
      else if (line === '    aliases:') inAliases = true;
      else if (inAliases && (m = line.match(/^      - (\S+)$/))) pairs.push([tenant, m[1], metric]);
      else inAliases = false;
    }
  }
  return pairs;
}
const aliases = schemaDir ? metricAliases(schemaDir) : [];
const canonical = aliases.length === 0 ? 'metric' : `CASE ${aliases.map(([t, a, m]) =>
  `WHEN tenant = '${t}' AND metric = '${a}' THEN '${m}'`).join(' ')} END`; // not in the schemas: left out
const db = await DuckDBInstance.create(':memory:');
const conn = await db.connect();
const read = `
  WITH raw AS (
    SELECT * FROM read_json('${glob}', format = 'newline_delimited', ignore_errors = true,
      columns = {tenant: 'VARCHAR', event: 'JSON', events: 'JSON[]'})
  ), ev AS (
    SELECT tenant, event AS e FROM raw WHERE event IS NOT NULL
    UNION ALL SELECT tenant, unnest(events) AS e FROM raw WHERE events IS NOT NULL
  )`;
let sql;
if (!byDate) { // the earlier baseline's statement, unchanged
  sql = `
COPY (${read}, t AS (
    SELECT tenant, coalesce(e->>'metrictype', e->>'type') AS metric, md5(e::VARCHAR) AS id, e::VARCHAR AS event FROM ev
  )
  SELECT * FROM t WHERE tenant IS NOT NULL AND metric IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY id) = 1
) TO '${out}' (FORMAT parquet, PARTITION_BY (tenant, metric), COMPRESSION zstd)`;
} else {
  await conn.run(`SET TimeZone = 'UTC'`);
  // DuckDB closes and reopens partition files beyond 100 open at once
  // (several files per partition, and slower); a day-partitioned lake has
  // thousands.
  await conn.run(`SET partitioned_write_max_open_files = 100000`);
  sql = `
COPY (${read}, t AS (
    SELECT tenant, coalesce(e->>'metrictype', e->>'type') AS metric,
      coalesce(e->'timestamp', e->'ts', e->'time') AS tsj,
      md5(e::VARCHAR) AS id, e::VARCHAR AS event FROM ev
  ), n AS (
    SELECT *, CASE WHEN json_type(tsj) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN try_cast(tsj AS DOUBLE) END AS num FROM t
  ), m AS (
    SELECT *, CASE WHEN abs(num) < 1e11 THEN num * 1000 WHEN abs(num) < 1e14 THEN num
                   WHEN abs(num) < 1e17 THEN num / 1e3 ELSE num / 1e6 END AS ms FROM n
  ), d AS (
    SELECT tenant, ${canonical} AS metric, id, event, CASE
      WHEN ms > 0 AND ms < 7258118400000 THEN epoch_ms(CAST(floor(ms) AS BIGINT))::DATE
      WHEN num IS NULL AND json_type(tsj) = 'VARCHAR' THEN try_cast(tsj->>'$' AS TIMESTAMPTZ)::DATE
    END AS date FROM m
  )
  SELECT tenant, metric, date, id, event FROM d
  WHERE tenant IS NOT NULL AND metric IS NOT NULL AND date IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY id) = 1
) TO '${out}' (FORMAT parquet, PARTITION_BY (tenant, metric, date), COMPRESSION zstd)`;
}
await conn.run(sql);
const files = byDate ? '*/*/*/*.parquet' : '*/*/*.parquet';
const r = await conn.runAndReadAll(`SELECT count(*) AS rows FROM read_parquet('${out}/${files}')`);
console.log(`duckdb: ${r.getRowObjectsJson()[0].rows} rows written${byDate ? ' (tenant/metric/date partitions)' : ' (tenant/metric partitions)'}`);
