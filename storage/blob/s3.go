package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
)

// S3 keeps blobs as objects <prefix>results/<job>.<attempt>.<name> (and
// <prefix>previews/…) in one bucket. A PUT is atomic on every S3-compatible
// server: an object is visible whole or not at all.
type S3 struct {
	client     *minio.Client
	bucket     string
	prefix     string
	ttl        TTL
	presign    bool
	presignTTL time.Duration
	// lifecycleErr is why the bucket's expiry rules could not be set (the
	// sweeper alone enforces retention then).
	lifecycleErr error
}

// NewS3 connects to the bucket cfg (validated) names with the given
// credentials, checks it exists, and sets expiry rules for Easel's two
// prefixes where the server supports lifecycle configuration.
func NewS3(ctx context.Context, cfg S3Config, accessKey, secretKey string, ttl TTL, presign bool, presignTTL time.Duration) (*S3, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, &FieldError{"storage.blobs.s3.endpoint", err.Error()}
	}
	lookup := minio.BucketLookupDNS
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(accessKey, secretKey, ""),
		Secure:       u.Scheme == "https",
		Region:       cfg.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: s3: %w", err)
	}
	s := &S3{client: client, bucket: cfg.Bucket, prefix: cfg.Prefix, ttl: ttl.filled(), presign: presign, presignTTL: presignTTL}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("blob: s3: bucket %s: %w", cfg.Bucket, err)
	}
	if !ok {
		return nil, &FieldError{"storage.blobs.s3.bucket", fmt.Sprintf("bucket %q does not exist at %s", cfg.Bucket, u.Host)}
	}
	s.lifecycleErr = s.setLifecycle(ctx)
	return s, nil
}

// LifecycleErr is why the bucket's expiry rules could not be set, or nil.
func (s *S3) LifecycleErr() error { return s.lifecycleErr }

// setLifecycle adds or replaces Easel's two expiry rules, keeping the
// bucket's other rules. S3 expiry counts whole days, so it is a backstop
// behind the sweeper, which enforces the exact times to live.
func (s *S3) setLifecycle(ctx context.Context) error {
	cur, err := s.client.GetBucketLifecycle(ctx, s.bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code != "NoSuchLifecycleConfiguration" {
			return fmt.Errorf("blob: s3: get lifecycle: %w", err)
		}
		cur = lifecycle.NewConfiguration()
	}
	days := func(d time.Duration) lifecycle.ExpirationDays {
		return lifecycle.ExpirationDays((d + 24*time.Hour - 1) / (24 * time.Hour))
	}
	ours := map[string]lifecycle.Rule{
		"easel-results":  {ID: "easel-results", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: s.prefix + "results/"}, Expiration: lifecycle.Expiration{Days: days(s.ttl.Result)}},
		"easel-previews": {ID: "easel-previews", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: s.prefix + "previews/"}, Expiration: lifecycle.Expiration{Days: days(s.ttl.Preview)}},
	}
	rules := cur.Rules[:0]
	for _, r := range cur.Rules {
		if _, mine := ours[r.ID]; !mine {
			rules = append(rules, r)
		}
	}
	cur.Rules = append(rules, ours["easel-results"], ours["easel-previews"])
	if err := s.client.SetBucketLifecycle(ctx, s.bucket, cur); err != nil {
		return fmt.Errorf("blob: s3: set lifecycle: %w", err)
	}
	return nil
}

// Kind is "s3".
func (s *S3) Kind() string { return KindS3 }

func (s *S3) key(ref Ref) string { return s.prefix + ref.dir() + "/" + ref.base() }

// Put uploads r (streamed; minio-go splits a large or unsized body into
// multipart parts).
func (s *S3) Put(ctx context.Context, ref Ref, r io.Reader, size int64) error {
	if err := ref.check(); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, s.bucket, s.key(ref), r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream", DisableContentSha256: true})
	if err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	return nil
}

// Open stats the object and returns a reader that fetches ranges lazily: a
// Seek followed by a Read asks the server for that range only.
func (s *S3) Open(ctx context.Context, ref Ref) (*Object, error) {
	if err := ref.check(); err != nil {
		return nil, err
	}
	o, err := s.client.GetObject(ctx, s.bucket, s.key(ref), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.openErr(err)
	}
	st, err := o.Stat()
	if err != nil {
		_ = o.Close()
		return nil, s.openErr(err)
	}
	if time.Since(st.LastModified) > s.ttl.of(ref) {
		_ = o.Close()
		return nil, ErrNotFound
	}
	return &Object{ReadSeeker: o, Closer: o, Size: st.Size, ModTime: st.LastModified}, nil
}

func (s *S3) openErr(err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NotFound":
		return ErrNotFound
	}
	return fmt.Errorf("blob: open: %w", err)
}

// Delete removes the refs' objects.
func (s *S3) Delete(ctx context.Context, refs ...Ref) error {
	var errs []error
	for _, ref := range refs {
		if ref.check() != nil {
			continue
		}
		if err := s.client.RemoveObject(ctx, s.bucket, s.key(ref), minio.RemoveObjectOptions{}); err != nil &&
			minio.ToErrorResponse(err).Code != "NoSuchKey" {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blob: delete: %w", err)
	}
	return nil
}

// Sweep lists both prefixes and deletes objects older than their time to
// live by LastModified.
func (s *S3) Sweep(ctx context.Context, now time.Time) (int, error) {
	n := 0
	for dir, ttl := range map[string]time.Duration{"results/": s.ttl.Result, "previews/": s.ttl.Preview} {
		old := make(chan minio.ObjectInfo)
		var listErr error
		listed, failed := 0, 0
		go func() {
			defer close(old)
			for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + dir, Recursive: true}) {
				if o.Err != nil {
					listErr = o.Err
					return
				}
				if now.Sub(o.LastModified) > ttl && strings.HasPrefix(o.Key, s.prefix+dir) {
					listed++
					select {
					case old <- o:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
		var errs []error
		for e := range s.client.RemoveObjects(ctx, s.bucket, old, minio.RemoveObjectsOptions{}) {
			errs = append(errs, e.Err)
			failed++
		}
		// The lister closed old before RemoveObjects closed its results.
		n += listed - failed
		if err := errors.Join(append(errs, listErr)...); err != nil {
			return n, fmt.Errorf("blob: sweep: %w", err)
		}
	}
	return n, nil
}

// PresignGet is a presigned GET URL valid for the configured time, when
// presign is on.
func (s *S3) PresignGet(ctx context.Context, ref Ref) (*url.URL, error) {
	if !s.presign {
		return nil, ErrNoPresign
	}
	if err := ref.check(); err != nil {
		return nil, err
	}
	u, err := s.client.PresignedGetObject(ctx, s.bucket, s.key(ref), s.presignTTL, nil)
	if err != nil {
		return nil, fmt.Errorf("blob: presign: %w", err)
	}
	return u, nil
}
