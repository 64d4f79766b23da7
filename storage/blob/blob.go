package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned when a blob does not exist or has expired.
var ErrNotFound = errors.New("not found")

// ErrNoPresign is returned by PresignGet when the store cannot or is not
// configured to hand out presigned URLs.
var ErrNoPresign = errors.New("blob: presigned URLs are off")

// PreviewTTL is how long a preview is kept: previews matter only while a
// job runs, and a job's previous preview is deleted when a new one is
// written.
const PreviewTTL = time.Hour

// Ref names one blob.
type Ref struct {
	// Job is the job id.
	Job string
	// Attempt is the attempt that wrote the blob.
	Attempt int
	// Name is "0", "1", … for result images, "p<step>" for a preview.
	Name string
}

var refPart = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

func (r Ref) check() error {
	if !refPart.MatchString(r.Job) || !refPart.MatchString(r.Name) || r.Attempt < 0 {
		return fmt.Errorf("blob: invalid name %q/%d/%q: %w", r.Job, r.Attempt, r.Name, ErrNotFound)
	}
	return nil
}

// Preview reports whether the blob is a preview.
func (r Ref) Preview() bool { return strings.HasPrefix(r.Name, "p") }

// ETag is the blob's strong entity tag: a Ref's content never changes.
func (r Ref) ETag() string { return `"` + r.base() + `"` }

// base is the Ref as one file or object name: "<job>.<attempt>.<name>".
func (r Ref) base() string { return r.Job + "." + strconv.Itoa(r.Attempt) + "." + r.Name }

// dir is the folder (fs) or key prefix (s3) of the Ref's kind of blob.
func (r Ref) dir() string {
	if r.Preview() {
		return "previews"
	}
	return "results"
}

// Object is an open blob; the caller closes it. Reads stream from the
// store: a large blob is never held in memory whole (except in redis).
type Object struct {
	io.ReadSeeker
	io.Closer
	// Size is the blob's length in bytes.
	Size int64
	// ModTime is when the blob was written.
	ModTime time.Time
}

// Store keeps blobs. Implementations are safe for concurrent use.
type Store interface {
	// Put writes size bytes (-1: unknown) from r under ref, atomically:
	// readers see the old blob, none, or the whole new one.
	Put(ctx context.Context, ref Ref, r io.Reader, size int64) error
	// Open opens a blob; ErrNotFound when it is missing or expired.
	Open(ctx context.Context, ref Ref) (*Object, error)
	// Delete removes blobs; missing ones are not an error.
	Delete(ctx context.Context, refs ...Ref) error
	// Sweep deletes the blobs older than their time to live at now and
	// reports how many it deleted.
	Sweep(ctx context.Context, now time.Time) (int, error)
	// PresignGet is a URL that reads the blob for a limited time without
	// credentials; ErrNoPresign unless the store offers them.
	PresignGet(ctx context.Context, ref Ref) (*url.URL, error)
	// Kind is "fs", "s3" or "redis".
	Kind() string
}

// TTL is how long blobs are kept.
type TTL struct {
	// Result is the time to live of result images (scheduler.retention).
	Result time.Duration
	// Preview is the time to live of previews; default PreviewTTL.
	Preview time.Duration
}

func (t TTL) filled() TTL {
	if t.Result <= 0 {
		t.Result = 24 * time.Hour
	}
	if t.Preview <= 0 {
		t.Preview = PreviewTTL
	}
	return t
}

func (t TTL) of(ref Ref) time.Duration {
	if ref.Preview() {
		return t.Preview
	}
	return t.Result
}

// ReadAll reads a whole blob (for callers that need the bytes: chat
// uploads, an upscale's source image).
func ReadAll(ctx context.Context, s Store, ref Ref) ([]byte, error) {
	o, err := s.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	b := make([]byte, 0, o.Size)
	w := &sliceWriter{b}
	if _, err := io.Copy(w, o); err != nil {
		return nil, fmt.Errorf("blob: read: %w", err)
	}
	return w.b, nil
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
