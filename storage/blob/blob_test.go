package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/storage/blob"
)

var testTTL = blob.TTL{Result: time.Hour, Preview: time.Minute}

// newS3 runs an S3 server on loopback for the test and opens a store on a
// fresh bucket. The server is gofakes3 (an in-process S3 implementation
// served over real HTTP): no S3 server package (MinIO, Garage, versitygw,
// SeaweedFS) exists in Debian to run beside the tests.
func newS3(t *testing.T, presign bool) *blob.S3 {
	t.Helper()
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(srv.Close)
	require.NoError(t, backend.CreateBucket("images"))
	cfg := blob.Config{Kind: blob.KindS3, Presign: presign, S3: blob.S3Config{Endpoint: srv.URL, Bucket: "images", Prefix: "easel", PathStyle: true}}
	require.NoError(t, cfg.Validate(true, ""))
	s, err := blob.NewS3(context.Background(), cfg.S3, "test-access", "test-secret", testTTL, presign, cfg.PresignTTL)
	require.NoError(t, err)
	return s
}

func stores(t *testing.T) map[string]func(t *testing.T) blob.Store {
	return map[string]func(t *testing.T) blob.Store{
		"fs": func(t *testing.T) blob.Store {
			s, err := blob.NewFS(t.TempDir(), testTTL)
			require.NoError(t, err)
			return s
		},
		"s3": func(t *testing.T) blob.Store { return newS3(t, false) },
		"redis": func(t *testing.T) blob.Store {
			st := redistest.Store(t)
			return blob.NewRedis(st.Client, func(ref blob.Ref) string {
				return "test:blob:" + ref.Job + ":" + strconv.Itoa(ref.Attempt) + ":" + ref.Name
			}, testTTL)
		},
	}
}

func put(t *testing.T, s blob.Store, ref blob.Ref, b []byte) {
	t.Helper()
	require.NoError(t, s.Put(context.Background(), ref, bytes.NewReader(b), int64(len(b))))
}

func get(t *testing.T, s blob.Store, ref blob.Ref) []byte {
	t.Helper()
	b, err := blob.ReadAll(context.Background(), s, ref)
	require.NoError(t, err)
	return b
}

// TestContract runs every kind through the same cases.
func TestContract(t *testing.T) {
	t.Parallel()
	for kind, open := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()

			t.Run("put get range delete", func(t *testing.T) {
				s := open(t)
				ref := blob.Ref{Job: "j1", Attempt: 2, Name: "0"}
				_, err := s.Open(ctx, ref)
				require.ErrorIs(t, err, blob.ErrNotFound)
				data := bytes.Repeat([]byte("0123456789"), 1000)
				put(t, s, ref, data)
				require.Equal(t, data, get(t, s, ref))
				// Another attempt's blob of the same name is another blob.
				_, err = s.Open(ctx, blob.Ref{Job: "j1", Attempt: 1, Name: "0"})
				require.ErrorIs(t, err, blob.ErrNotFound)

				o, err := s.Open(ctx, ref)
				require.NoError(t, err)
				require.EqualValues(t, len(data), o.Size)
				_, err = o.Seek(5003, io.SeekStart)
				require.NoError(t, err)
				part := make([]byte, 4)
				_, err = io.ReadFull(o, part)
				require.NoError(t, err)
				require.Equal(t, "3456", string(part))
				require.NoError(t, o.Close())

				require.NoError(t, s.Delete(ctx, ref, blob.Ref{Job: "missing", Name: "0"}))
				_, err = s.Open(ctx, ref)
				require.ErrorIs(t, err, blob.ErrNotFound)
			})

			t.Run("names are checked", func(t *testing.T) {
				s := open(t)
				for _, ref := range []blob.Ref{{Job: "../x", Name: "0"}, {Job: "j", Name: "a/b"}, {Job: "", Name: "0"}, {Job: "j", Attempt: -1, Name: "0"}} {
					require.Error(t, s.Put(ctx, ref, bytes.NewReader([]byte("x")), 1), "%+v", ref)
					_, err := s.Open(ctx, ref)
					require.ErrorIs(t, err, blob.ErrNotFound)
				}
			})

			t.Run("short body is not stored", func(t *testing.T) {
				s := open(t)
				ref := blob.Ref{Job: "short", Attempt: 1, Name: "0"}
				require.Error(t, s.Put(ctx, ref, bytes.NewReader([]byte("abc")), 10))
				_, err := s.Open(ctx, ref)
				require.ErrorIs(t, err, blob.ErrNotFound)
			})

			t.Run("retention sweep", func(t *testing.T) {
				if kind == "redis" {
					t.Skip("redis keys expire by their own TTL; the sweep is a no-op there")
				}
				s := open(t)
				res, prev := blob.Ref{Job: "sw", Attempt: 1, Name: "0"}, blob.Ref{Job: "sw", Attempt: 1, Name: "p3"}
				put(t, s, res, []byte("result"))
				put(t, s, prev, []byte("preview"))
				now := time.Now()
				n, err := s.Sweep(ctx, now)
				require.NoError(t, err)
				require.Zero(t, n)
				n, err = s.Sweep(ctx, now.Add(2*time.Minute))
				require.NoError(t, err)
				require.Equal(t, 1, n)
				_, err = s.Open(ctx, prev)
				require.ErrorIs(t, err, blob.ErrNotFound)
				require.Equal(t, []byte("result"), get(t, s, res))
				n, err = s.Sweep(ctx, now.Add(2*time.Hour))
				require.NoError(t, err)
				require.Equal(t, 1, n)
				_, err = s.Open(ctx, res)
				require.ErrorIs(t, err, blob.ErrNotFound)
			})

			t.Run("concurrent writers", func(t *testing.T) {
				s := open(t)
				ref := blob.Ref{Job: "cw", Attempt: 1, Name: "0"}
				put(t, s, ref, bytes.Repeat([]byte{'a'}, 64<<10))
				var wg sync.WaitGroup
				for i := range 6 {
					wg.Add(2)
					go func() {
						defer wg.Done()
						b := bytes.Repeat([]byte{byte('b' + i)}, 64<<10)
						require.NoError(t, s.Put(ctx, ref, bytes.NewReader(b), int64(len(b))))
					}()
					go func() {
						defer wg.Done()
						// A reader sees one whole blob, never a mix or a prefix.
						b := get(t, s, ref)
						require.Len(t, b, 64<<10)
						require.Equal(t, bytes.Repeat(b[:1], len(b)), b)
					}()
				}
				wg.Wait()
			})

			t.Run("20 MB streamed", func(t *testing.T) {
				if kind == "redis" {
					t.Skip("redis strings are read whole; the demo store only")
				}
				s := open(t)
				const size = 20 << 20
				ref := blob.Ref{Job: "big", Attempt: 1, Name: "0"}
				want := sha256.New()
				_, err := io.Copy(want, io.LimitReader(&pattern{}, size))
				require.NoError(t, err)
				require.NoError(t, s.Put(ctx, ref, io.LimitReader(&pattern{}, size), size))

				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				o, err := s.Open(ctx, ref)
				require.NoError(t, err)
				got := sha256.New()
				n, err := io.Copy(got, o)
				require.NoError(t, err)
				require.NoError(t, o.Close())
				runtime.ReadMemStats(&after)
				require.EqualValues(t, size, n)
				require.Equal(t, want.Sum(nil), got.Sum(nil))
				// Allocations while reading stay far below the blob's size
				// (the test's own server included).
				require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(size/2))
			})
		})
	}
}

// pattern is an endless, position-dependent byte stream.
type pattern struct{ n int }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.n*7 + p.n>>10)
		p.n++
	}
	return len(b), nil
}

func TestS3Presign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ref := blob.Ref{Job: "ps", Attempt: 1, Name: "0"}
	_, err := newS3(t, false).PresignGet(ctx, ref)
	require.ErrorIs(t, err, blob.ErrNoPresign)
	s := newS3(t, true)
	put(t, s, ref, []byte("signed"))
	u, err := s.PresignGet(ctx, ref)
	require.NoError(t, err)
	require.Contains(t, u.Path, "/images/easel/results/ps.1.0")
	require.NotEmpty(t, u.Query().Get("X-Amz-Signature"))
	require.NotContains(t, u.String(), "test-secret")
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		cfg     blob.Config
		durable bool
		field   string
		kind    string
	}{
		{name: "demo default", kind: blob.KindRedis},
		{name: "durable default", durable: true, kind: blob.KindFS},
		{name: "unknown kind", cfg: blob.Config{Kind: "disk"}, field: "storage.blobs.kind"},
		{name: "presign needs s3", cfg: blob.Config{Kind: "fs", Presign: true}, field: "storage.blobs.presign"},
		{name: "s3 needs bucket", cfg: blob.Config{Kind: "s3"}, field: "storage.blobs.s3.bucket"},
		{name: "s3 endpoint", cfg: blob.Config{Kind: "s3", S3: blob.S3Config{Bucket: "b", Endpoint: "minio:9000"}}, field: "storage.blobs.s3.endpoint"},
		{name: "s3 ok", cfg: blob.Config{Kind: "s3", S3: blob.S3Config{Bucket: "b", Endpoint: "http://minio:9000"}}, kind: blob.KindS3},
		{name: "sweep interval", cfg: blob.Config{SweepInterval: time.Millisecond}, field: "storage.blobs.sweep_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate(tc.durable, "/data")
			if tc.field != "" {
				var fe *blob.FieldError
				require.ErrorAs(t, err, &fe)
				require.Equal(t, tc.field, fe.Field)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.kind, tc.cfg.Kind)
		})
	}
}

func TestS3CredentialsNeverInErrors(t *testing.T) {
	t.Parallel()
	cfg := blob.Config{Kind: blob.KindS3, S3: blob.S3Config{Bucket: "b", Endpoint: "http://127.0.0.1:1"}}
	require.NoError(t, cfg.Validate(true, ""))
	_, err := blob.Open(context.Background(), cfg, testTTL, func(string) (string, bool) { return "", false }, nil, nil)
	require.ErrorContains(t, err, "AWS_ACCESS_KEY_ID is not set")
	env := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDSECRETVALUE", "AWS_SECRET_ACCESS_KEY": "supersecretvalue"}
	_, err = blob.Open(context.Background(), cfg, testTTL, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil, nil)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "supersecretvalue")
}

func TestSweeper(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := blob.NewFS(dir, blob.TTL{Result: time.Minute, Preview: time.Minute})
	require.NoError(t, err)
	ref := blob.Ref{Job: "old", Attempt: 1, Name: "0"}
	put(t, s, ref, []byte("x"))
	blob.Age(t, dir, "results/old.1.0", 2*time.Minute)
	w, swept := blob.NewTestSweeper(s, time.Hour)
	require.NoError(t, w.Start(context.Background()))
	select {
	case n := <-swept:
		require.Equal(t, 1, n)
	case <-time.After(10 * time.Second):
		t.Fatal("no sweep")
	}
	require.NoError(t, w.Stop(context.Background()))
	_, err = s.Open(context.Background(), ref)
	require.ErrorIs(t, err, blob.ErrNotFound)
}
