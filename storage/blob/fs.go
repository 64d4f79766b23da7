package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FS keeps blobs as files: <dir>/results/<job>.<attempt>.<name> and
// <dir>/previews/…, each written to a temporary file in the same folder,
// synced and renamed into place.
type FS struct {
	dir string
	ttl TTL
}

// tmpPrefix starts the name of a file being written; the sweeper removes
// ones left by a crash.
const tmpPrefix = ".tmp-"

// NewFS opens (creating) the directory dir.
func NewFS(dir string, ttl TTL) (*FS, error) {
	for _, sub := range []string{"results", "previews"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("blob: %w", err)
		}
	}
	return &FS{dir: dir, ttl: ttl.filled()}, nil
}

// Kind is "fs".
func (s *FS) Kind() string { return KindFS }

func (s *FS) path(ref Ref) string { return filepath.Join(s.dir, ref.dir(), ref.base()) }

// Put writes r to a temporary file and renames it over ref's file.
func (s *FS) Put(ctx context.Context, ref Ref, r io.Reader, size int64) error {
	if err := ref.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, ref.dir()), tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	ok := false
	defer func() {
		if !ok { // the write failed: drop the partial temporary file
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	n, err := io.Copy(f, r)
	if err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("blob: put: wrote %d bytes, expected %d", n, size)
	}
	// A result is synced before the rename: the job record that names it is
	// durable in Redis's AOF, so the file must be durable first. A preview
	// is worth nothing after a crash and is not synced.
	if !ref.Preview() {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("blob: put: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	if err := os.Rename(f.Name(), s.path(ref)); err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	ok = true
	return nil
}

// Open opens ref's file; an expired one not yet swept is not found.
func (s *FS) Open(_ context.Context, ref Ref) (*Object, error) {
	if err := ref.check(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(ref))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("blob: open: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("blob: open: %w", err)
	}
	if time.Since(st.ModTime()) > s.ttl.of(ref) {
		_ = f.Close()
		return nil, ErrNotFound
	}
	return &Object{ReadSeeker: f, Closer: f, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Delete removes the refs' files.
func (s *FS) Delete(_ context.Context, refs ...Ref) error {
	var errs []error
	for _, ref := range refs {
		if ref.check() != nil {
			continue
		}
		if err := os.Remove(s.path(ref)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blob: delete: %w", err)
	}
	return nil
}

// Sweep removes files older than their time to live by modification time,
// and temporary files older than an hour (left by a crash mid-write).
func (s *FS) Sweep(ctx context.Context, now time.Time) (int, error) {
	n := 0
	for sub, ttl := range map[string]time.Duration{"results": s.ttl.Result, "previews": s.ttl.Preview} {
		dir := filepath.Join(s.dir, sub)
		entries, err := os.ReadDir(dir)
		if err != nil {
			return n, fmt.Errorf("blob: sweep: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return n, fmt.Errorf("blob: sweep: %w", err)
			}
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() {
				continue
			}
			limit := ttl
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				limit = time.Hour
			}
			if now.Sub(info.ModTime()) <= limit {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				n++
			}
		}
	}
	return n, nil
}

// PresignGet is ErrNoPresign: files are served by the API itself.
func (s *FS) PresignGet(context.Context, Ref) (*url.URL, error) { return nil, ErrNoPresign }
