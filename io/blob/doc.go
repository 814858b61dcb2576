// Package blob is where Fineo's archives and lakes live: a local directory or
// an S3 prefix, behind one narrow interface, [Store].
//
// A Store is opened from a location with [Open]: "s3://bucket[/prefix]" for S3
// or a local directory (created if missing). Paths given to a Store are
// relative to its root, '/'-separated, and may not be absolute or contain
// empty, "." or ".." elements, so a tenant's data can never land outside its
// place.
//
// Writes are atomic: [Store.Create] returns a [Writer] whose data becomes
// visible at the path only when [Writer.Commit] returns nil. The local store
// writes a hidden temporary file (".blobtmp-*") beside the target, fsyncs it
// and renames it into place; the S3 store spools to a local temporary file and
// uploads it with the S3 transfer manager (multipart for big files), so the
// object appears all at once when the upload completes. [Writer.Abort], or a
// failed Commit, leaves nothing behind.
//
// [ExpandInput] turns an --input spec (local file, directory or glob, or an S3
// key, prefix or glob) into a sorted list of locations, and [OpenLocation]
// opens one of them for reading.
//
// S3 access uses the default AWS configuration chain
// (config.LoadDefaultConfig). The standard AWS_ENDPOINT_URL_S3 or
// AWS_ENDPOINT_URL variables point it at an S3 stand-in; when either is set,
// path-style addressing is used. The region defaults to us-east-1.
package blob
