// Runs one SQL statement with DuckDB (npm @duckdb/node-api) and prints the
// rows as a JSON array: the independent SQL reader of Fineo's outputs in tests.
// Usage: node duckdb_query.mjs "SELECT ..."
import { DuckDBInstance } from '@duckdb/node-api';

const sql = process.argv[2];
const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
const reader = await conn.runAndReadAll(sql);
process.stdout.write(JSON.stringify(reader.getRowObjectsJson()));
