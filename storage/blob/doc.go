// Package blob stores result and preview images outside the queue's Redis:
// in a directory (fs), in an S3-compatible bucket (s3), or, for the
// in-process demo only, in Redis itself (redis).
//
// # Overview
//
// A blob is named by a Ref: a job, one attempt of it and a name ("0", "1", …
// for results, "p<step>" for a preview). Every attempt writes under its own
// names, so a stale attempt can never replace the images of the live one;
// the scheduler checks the attempt is live before it writes and deletes what
// it wrote when the attempt's succeed script refuses it (see
// scheduler.Lease). Writes are atomic: a reader sees a whole blob or none.
//
// Blobs of one Ref never change, so readers may cache them forever (the API
// serves them with a strong ETag and Cache-Control: immutable). Results are
// kept for the scheduler's retention, previews for PreviewTTL; a Sweeper
// deletes older blobs (fs by modification time; s3 by LastModified, with a
// bucket lifecycle rule as well where the server supports one; redis keys
// carry their own TTL).
package blob
