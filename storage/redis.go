package storage

import (
	"context"
	"fmt"
	"net/url"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/easelbot/easel/storage/blob"
)

// Config says where Redis is.
type Config struct {
	// URL is the Redis server, e.g. "redis://127.0.0.1:6379/0" or
	// "rediss://user:pass@host:6380"; a Redis Cluster as any masters
	// ("redis://a:7000?addr=b:7000&addr=c:7000"), Sentinel as the
	// sentinels and the master's name
	// ("redis://s1:26379?addr=s2:26379&master_set=mymaster"), see the
	// README's "Redis Cluster and Sentinel". Empty: `easel serve` starts
	// redis-server under data_dir when it is installed, else an embedded
	// in-process Redis that loses everything on exit. Default: empty.
	URL string `yaml:"url"`
	// Prefix starts every key. Default "easel".
	Prefix string `yaml:"prefix"`
}

// Store is the Redis connection and key builder shared by every module.
type Store struct {
	Client rueidis.Client
	Keys   Keys
	// Embedded is true when Client talks to the in-process Redis.
	Embedded bool
	// Blobs holds result and preview images. Open sets a Redis store (the
	// demo's); a durable setup replaces it with the configured fs or s3
	// store before the scheduler is built (see bot).
	Blobs blob.Store
	mini  *miniredis.Miniredis
}

// Open connects to Redis (or starts the embedded one) and checks it answers.
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*Store, error) {
	keys := DefaultKeys()
	if cfg.Prefix != "" {
		keys.Prefix = cfg.Prefix
	}
	if cfg.URL == "" {
		mini := miniredis.NewMiniRedis()
		if err := mini.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("storage: start embedded redis: %w", err)
		}
		client, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress:  []string{mini.Addr()},
			DisableCache: true,
			// miniredis serves pub/sub only on RESP2 connections of their own.
			AlwaysRESP2: true,
		})
		if err != nil {
			mini.Close()
			return nil, fmt.Errorf("storage: connect embedded redis: %w", err)
		}
		log.Warn("redis.url is empty: using an EMBEDDED in-process Redis; queued jobs and images will NOT survive a restart. Install redis-server (then easel serve runs it under data_dir) or set EASEL_REDIS_URL for a durable queue.",
			zap.String("addr", mini.Addr()))
		return &Store{Client: client, Keys: keys, Embedded: true, mini: mini, Blobs: redisBlobs(client, keys)}, nil
	}
	opt, err := rueidis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("storage: redis.url: %w", err)
	}
	opt.DisableCache = true
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("storage: connect %s: %w", RedactURL(cfg.URL), err)
	}
	s := &Store{Client: client, Keys: keys, Blobs: redisBlobs(client, keys)}
	if err := s.Ping(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return s, nil
}

// Ping checks Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.Client.Do(ctx, s.Client.B().Ping().Build()).Error(); err != nil {
		return fmt.Errorf("storage: ping: %w", err)
	}
	return nil
}

// Close closes the connection and stops the embedded Redis.
func (s *Store) Close() {
	s.Client.Close()
	if s.mini != nil {
		s.mini.Close()
	}
}

// Addr is the address of the embedded Redis, or "" for an external one.
func (s *Store) Addr() string {
	if s.mini == nil {
		return ""
	}
	return s.mini.Addr()
}

// RedactURL removes the password from a Redis URL for logs and errors.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable redis url>"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}

// ErrNotFound is returned when a blob or record does not exist (or expired).
var ErrNotFound = blob.ErrNotFound

// redisBlobs keeps images in Redis itself, under Keys.Blob, for the default
// retention (24h).
func redisBlobs(client rueidis.Client, keys Keys) blob.Store {
	return blob.NewRedis(client, func(r blob.Ref) string { return keys.Blob(r.Job, r.Attempt, r.Name) }, blob.TTL{})
}
