// Package storage owns Easel's one store, Redis: the rueidis connection, the
// embedded in-process Redis used by the zero-setup demo, every key name (one
// builder, one hash tag for the scheduler's keys), and the handle (Store.Blobs)
// of the image store, which lives apart in storage/blob.
//
// # Overview
//
// Open connects to Config.URL, or, when it is empty, starts an embedded
// miniredis and warns that nothing it holds survives a restart. Both paths hand
// out the same rueidis.Client, so no second queue implementation exists.
package storage
