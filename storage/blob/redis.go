package blob

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/redis/rueidis"
)

// Redis keeps blobs as Redis strings with a TTL: only for the in-process
// demo, whose Redis is gone at exit anyway.
type Redis struct {
	client rueidis.Client
	key    func(Ref) string
	ttl    TTL
}

// NewRedis is a store in client, naming each Ref's key with key.
func NewRedis(client rueidis.Client, key func(Ref) string, ttl TTL) *Redis {
	return &Redis{client: client, key: key, ttl: ttl.filled()}
}

// Kind is "redis".
func (s *Redis) Kind() string { return KindRedis }

// Put reads r whole and SETs it with the Ref's TTL (SET is atomic).
func (s *Redis) Put(ctx context.Context, ref Ref, r io.Reader, size int64) error {
	if err := ref.check(); err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	if size >= 0 && int64(len(b)) != size {
		return fmt.Errorf("blob: put: read %d bytes, expected %d", len(b), size)
	}
	cmd := s.client.B().Set().Key(s.key(ref)).Value(rueidis.BinaryString(b)).Px(s.ttl.of(ref)).Build()
	if err := s.client.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	return nil
}

// Open GETs the whole blob.
func (s *Redis) Open(ctx context.Context, ref Ref) (*Object, error) {
	if err := ref.check(); err != nil {
		return nil, err
	}
	b, err := s.client.Do(ctx, s.client.B().Get().Key(s.key(ref)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("blob: open: %w", err)
	}
	return &Object{ReadSeeker: bytes.NewReader(b), Closer: io.NopCloser(nil), Size: int64(len(b))}, nil
}

// Delete DELs the refs' keys.
func (s *Redis) Delete(ctx context.Context, refs ...Ref) error {
	// One DEL per key: blob keys hash to different Cluster slots.
	cmds := make(rueidis.Commands, 0, len(refs))
	for _, ref := range refs {
		cmds = append(cmds, s.client.B().Del().Key(s.key(ref)).Build())
	}
	for _, r := range s.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("blob: delete: %w", err)
		}
	}
	return nil
}

// Sweep does nothing: keys expire on their own.
func (s *Redis) Sweep(context.Context, time.Time) (int, error) { return 0, nil }

// PresignGet is ErrNoPresign.
func (s *Redis) PresignGet(context.Context, Ref) (*url.URL, error) { return nil, ErrNoPresign }
