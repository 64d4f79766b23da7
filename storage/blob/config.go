package blob

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Config chooses and configures the image store (storage.blobs).
type Config struct {
	// Kind is "fs" (files under dir), "s3" (an S3-compatible bucket) or
	// "redis" (Redis strings; only for the in-process demo: images would
	// fill a real Redis's memory and AOF). Default: fs whenever the queue's
	// Redis is durable (redis.url set, or the redis-server child under
	// data_dir), redis for the in-process demo.
	Kind string `yaml:"kind"`
	// Dir is the fs directory. Default <data_dir>/images.
	Dir string `yaml:"dir"`
	// Presign makes the API answer an image request with a redirect (302)
	// to a presigned URL of the object instead of streaming it (s3 only).
	// Default false.
	Presign bool `yaml:"presign"`
	// PresignTTL is how long a presigned URL stays valid. Default 15m.
	PresignTTL time.Duration `yaml:"presign_ttl"`
	// SweepInterval is how often expired blobs are deleted (fs, s3).
	// Default 10m.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// S3 is the bucket (kind s3).
	S3 S3Config `yaml:"s3"`
}

// S3Config is an S3-compatible bucket (MinIO, Garage, SeaweedFS,
// Cloudflare R2, AWS S3).
type S3Config struct {
	// Endpoint is the server's URL, e.g. http://minio:9000 or
	// https://<account>.r2.cloudflarestorage.com; http:// turns TLS off.
	// Default https://s3.amazonaws.com.
	Endpoint string `yaml:"endpoint"`
	// Bucket is the bucket's name. Required for kind s3.
	Bucket string `yaml:"bucket"`
	// Prefix starts every object key, e.g. "easel/". Default none.
	Prefix string `yaml:"prefix"`
	// Region is the bucket's region. Default us-east-1.
	Region string `yaml:"region"`
	// PathStyle addresses the bucket as endpoint/bucket instead of
	// bucket.endpoint (MinIO, Garage, SeaweedFS need it). Default false.
	PathStyle bool `yaml:"path_style"`
	// AccessKeyEnv names the environment variable holding the access key.
	// Default AWS_ACCESS_KEY_ID.
	AccessKeyEnv string `yaml:"access_key_env"`
	// KeyEnv names the environment variable holding the secret key.
	// Default AWS_SECRET_ACCESS_KEY.
	KeyEnv string `yaml:"secret_key_env"`
	// AccessKeyFile is a file holding the access key (e.g. a Docker
	// secret), read when set instead of the environment. Default none.
	AccessKeyFile string `yaml:"access_key_file"`
	// KeyFile is a file holding the secret key, read when set
	// instead of the environment. Default none.
	KeyFile string `yaml:"secret_key_file"`
}

// Kinds.
const (
	KindFS    = "fs"
	KindS3    = "s3"
	KindRedis = "redis"
)

// FieldError is an invalid setting, naming its field (yaml path).
type FieldError struct {
	Field, Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Validate fills defaults and checks values; durable is whether the queue's
// Redis survives a restart, dataDir where fs keeps its directory by default
// (with no dataDir and no dir, the default kind is redis).
func (c *Config) Validate(durable bool, dataDir string) error {
	switch c.Kind {
	case "":
		c.Kind = KindRedis
		if durable && (dataDir != "" || c.Dir != "") {
			c.Kind = KindFS
		}
	case KindFS, KindS3, KindRedis:
	default:
		return &FieldError{"storage.blobs.kind", fmt.Sprintf("must be fs, s3 or redis (got %q)", c.Kind)}
	}
	if c.Kind == KindFS && c.Dir == "" {
		if dataDir == "" {
			return &FieldError{"storage.blobs.dir", "is required for kind fs when data_dir is empty"}
		}
		c.Dir = filepath.Join(dataDir, "images")
	}
	if c.PresignTTL == 0 {
		c.PresignTTL = 15 * time.Minute
	}
	if c.PresignTTL < time.Second || c.PresignTTL > 7*24*time.Hour {
		return &FieldError{"storage.blobs.presign_ttl", fmt.Sprintf("must be between 1s and 168h (got %s)", c.PresignTTL)}
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = 10 * time.Minute
	}
	if c.SweepInterval < time.Second {
		return &FieldError{"storage.blobs.sweep_interval", fmt.Sprintf("must be at least 1s (got %s)", c.SweepInterval)}
	}
	if c.Presign && c.Kind != KindS3 {
		return &FieldError{"storage.blobs.presign", "needs kind s3"}
	}
	if c.Kind != KindS3 {
		return nil
	}
	s := &c.S3
	if s.Endpoint == "" {
		s.Endpoint = "https://s3.amazonaws.com"
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return &FieldError{"storage.blobs.s3.endpoint", fmt.Sprintf("must be an http:// or https:// URL with no path (got %q)", s.Endpoint)}
	}
	if s.Bucket == "" {
		return &FieldError{"storage.blobs.s3.bucket", "is required for kind s3"}
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	if s.Prefix != "" && !strings.HasSuffix(s.Prefix, "/") {
		s.Prefix += "/"
	}
	if s.AccessKeyEnv == "" {
		s.AccessKeyEnv = "AWS_ACCESS_KEY_ID"
	}
	if s.KeyEnv == "" {
		s.KeyEnv = "AWS_SECRET_ACCESS_KEY"
	}
	return nil
}

// Open opens the store c (validated) names. client and redisKey are used by
// kind redis: redisKey names a Ref's key.
func Open(ctx context.Context, c Config, ttl TTL, lookup func(string) (string, bool), client rueidis.Client, redisKey func(Ref) string) (Store, error) {
	switch c.Kind {
	case KindFS:
		return NewFS(c.Dir, ttl)
	case KindS3:
		access, err := secret(c.S3.AccessKeyFile, c.S3.AccessKeyEnv, "storage.blobs.s3.access_key", lookup)
		if err != nil {
			return nil, err
		}
		key, err := secret(c.S3.KeyFile, c.S3.KeyEnv, "storage.blobs.s3.secret_key", lookup)
		if err != nil {
			return nil, err
		}
		return NewS3(ctx, c.S3, access, key, ttl, c.Presign, c.PresignTTL)
	default:
		return NewRedis(client, redisKey, ttl), nil
	}
}

// secret reads a credential from file, else from the environment variable
// env; the value itself never appears in an error.
func secret(file, env, field string, lookup func(string) (string, bool)) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", &FieldError{field + "_file", fmt.Sprintf("cannot read: %v", err)}
		}
		return strings.TrimSpace(string(b)), nil
	}
	v, ok := lookup(env)
	if !ok || v == "" {
		return "", &FieldError{field + "_env", fmt.Sprintf("environment variable %s is not set", env)}
	}
	return v, nil
}
