// Baseline for bench/run: the same batch job as one DuckDB statement — read
// the raw JSON Lines, unnest envelopes, deduplicate exact re-deliveries,
// write Parquet partitioned by tenant and metric type. It does less than
// Fineo (no aliases, casts, unit conversions, timestamp normalisation, date
// partitions or error classification; malformed lines are skipped with
// ignore_errors), so it is a conservative baseline.
// Usage: node bench/duckdb_baseline.mjs RAW_GLOB OUT_DIR
import { DuckDBInstance } from '@duckdb/node-api';

const [glob, out] = process.argv.slice(2);
const db = await DuckDBInstance.create(':memory:');
const conn = await db.connect();
const sql = `
COPY (
  WITH raw AS (
    SELECT * FROM read_json('${glob}', format = 'newline_delimited', ignore_errors = true,
      columns = {tenant: 'VARCHAR', event: 'JSON', events: 'JSON[]'})
  ), ev AS (
    SELECT tenant, event AS e FROM raw WHERE event IS NOT NULL
    UNION ALL SELECT tenant, unnest(events) AS e FROM raw WHERE events IS NOT NULL
  ), t AS (
    SELECT tenant, coalesce(e->>'metrictype', e->>'type') AS metric, md5(e::VARCHAR) AS id, e::VARCHAR AS event FROM ev
  )
  SELECT * FROM t WHERE tenant IS NOT NULL AND metric IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY id) = 1
) TO '${out}' (FORMAT parquet, PARTITION_BY (tenant, metric), COMPRESSION zstd)`;
await conn.run(sql);
const r = await conn.runAndReadAll(`SELECT count(*) AS rows FROM read_parquet('${out}/*/*/*.parquet')`);
console.log(`duckdb: ${r.getRowObjectsJson()[0].rows} rows written`);
