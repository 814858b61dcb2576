// Package kinesisio is the plain-Go core of Fineo's Kinesis source and sink:
// shard discovery in parent-before-child order, a per-shard reader that can
// stop and resume at any record, and a batch writer that never drops a
// record silently. A Beam splittable DoFn wraps it; nothing here depends on
// Beam.
//
// # Reading
//
// ListShards lists every shard of a stream, closed parents included.
// ReadyShards picks the shards that may be read now: a child of a split or
// a merge becomes ready only when all its parents are finished (closed and
// read to their end), so the records of one partition key come out in
// order across resharding.
//
// A ShardReader reads one shard from a Position (TRIM_HORIZON, LATEST,
// AT_TIMESTAMP or after a sequence number), one GetRecords page per Next.
// After every page, Position says where a new reader must start to continue
// exactly after the records returned so far: that is the checkpoint. The
// reader re-acquires expired iterators from that position (no record lost
// or repeated), paces GetRecords to at most one call per MinInterval (the
// service allows five per second per shard, shared by all consumers), and
// backs off with full jitter on throttling and server errors. Unread gives
// a page back to the reader: the next Next returns it without a call (the
// Beam source does this with a page read while its restriction was split).
//
// # Sharing a stream
//
// A Leaser shares a stream's shards among several instances by leases in
// the checkpoint table (lease.go, and dynamodbio's lease.go): each instance
// reads only the shards whose leases it holds, takes its fair share, and
// takes over the shards of an instance whose leases lapsed.
//
// # Writing
//
// PutRecords writes records in calls of at most MaxPutRecords records and
// MaxPutBytes bytes. Only the entries the service reports as failed are
// retried; records that cannot be written come back as FailedRecord with
// the reason, so that Written + len(failed) always equals the input.
// EventPartitionKey(id) spreads one metric's staged records over every
// shard.
//
// # Ordering
//
// Kinesis orders records per shard by sequence number. Within one
// PutRecords call the records of one shard keep their order, and calls are
// made one after another; but an entry that failed and is retried lands
// after the entries of its call that succeeded. Downstream, events carry an
// event id and an event time, so consumers must not rely on arrival order
// for correctness.
package kinesisio
