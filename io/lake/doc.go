// Package lake is the Parquet encoding of Fineo's analytics lake: the typed,
// per-metric tables that DuckDB, Spark, Athena and Drill query directly.
//
// # Layout
//
// The lake is a hive-partitioned directory tree (a local directory or an S3
// prefix):
//
//	<lake>/tenant=<t>/metric=<m>/date=<YYYY-MM-DD>/part-NNNNN.parquet
//
// tenant is the tenant id, metric the canonical metric name, date the UTC
// event date of the rows in the file. The partition values live only in the
// path; they are not columns of the files. Readers get them back as columns
// with hive partitioning (DuckDB: read_parquet(..., hive_partitioning=true);
// Spark, Athena and Drill: partitioned tables / directory columns). All files
// of one metric share one column contract; a file is written whole by
// [WriteParquet] (one Parquet file per call).
//
// # Column contract
//
// The physical column order of every file, as returned by [TableColumns] and
// as seen in SELECT *, is:
//
//	event_id        BYTE_ARRAY STRING                         required
//	timestamp       INT64 TIMESTAMP(MILLIS, isAdjustedToUTC)  required
//	<data columns>  in the tenant schema's field order         optional
//	unknown_fields  BYTE_ARRAY STRING (JSON object text)       optional
//
// Data columns map the tenant schema's field types to Parquet:
//
//	boolean   BOOLEAN
//	long      INT64
//	double    DOUBLE
//	string    BYTE_ARRAY STRING (UTF-8)
//	bytes     BYTE_ARRAY (no logical type: BLOB / binary)
//	timestamp INT64 TIMESTAMP(MILLIS, isAdjustedToUTC=true)
//
// DuckDB reads these as VARCHAR, TIMESTAMP WITH TIME ZONE, BOOLEAN, BIGINT,
// DOUBLE, VARCHAR, BLOB, TIMESTAMP WITH TIME ZONE and VARCHAR; the hive
// partition columns tenant (VARCHAR), metric (VARCHAR) and date (DATE, as
// DuckDB auto-detects YYYY-MM-DD) are added by the reader, after unknown_fields.
//
// Data column names must not be event_id, timestamp or unknown_fields, nor
// repeat. Files are written with data page v1 (the most widely readable),
// PLAIN encoding, zstd (default; event_id at zstd's fastest level, every
// other column at its default) or snappy compression, min/max and null-count
// statistics for every column chunk and page, a page index (column and
// offset indexes), and row groups of Options.RowGroupRows rows.
package lake
