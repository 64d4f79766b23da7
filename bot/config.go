package bot

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/easelbot/easel/adapters/discord"
	"github.com/easelbot/easel/adapters/httpapi"
	"github.com/easelbot/easel/adapters/slack"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/sdclient/comfyui"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
	"github.com/easelbot/easel/worker"
)

// Config is the whole configuration: one YAML file (--config, else
// ./easel.yaml when present) with every field overridable from the
// environment as EASEL_<SECTION>_<FIELD> (EASEL_REDIS_URL,
// EASEL_SCHEDULER_LEASE=45s, EASEL_BACKENDS='[{kind: a1111, url: ...}]').
// With no file and no environment, `easel serve` runs the embedded demo.
type Config struct {
	// Redis is where the queue lives. With no url, `easel serve` starts
	// redis-server as a child process with its append-only file under
	// data_dir when redis-server is on PATH (durable), and only otherwise an
	// in-process Redis that loses everything on exit.
	Redis storage.Config `yaml:"redis"`
	// DataDir holds the child redis-server's data (AOF) when redis.url is
	// empty. Default ./easel-data.
	DataDir string `yaml:"data_dir"`
	// Storage is where result and preview images are kept.
	Storage StorageConfig `yaml:"storage"`
	// HTTP is the HTTP API, SSE, webhooks and playground.
	HTTP httpapi.Config `yaml:"http"`
	// Discord is the Discord bot; it runs in `easel serve` when a token is set.
	Discord discord.Config `yaml:"discord"`
	// Slack is the Slack app (HTTP Events API on the HTTP server's
	// /slack/events, /slack/interactivity and /slack/commands); it runs in
	// `easel serve` when a bot token is set.
	Slack slack.Config `yaml:"slack"`
	// Limits are the fixed request limits and defaults.
	Limits commands.Limits `yaml:"limits"`
	// Policy is the owner's scheduling policy: defaults for every tenant,
	// per-tenant tiers (weights, limits) and ceilings for tenant admins.
	Policy scheduler.PolicyConfig `yaml:"policy"`
	// Scheduler tunes leases, retries and retention.
	Scheduler scheduler.Config `yaml:"scheduler"`
	// Worker tunes the worker slots of this process.
	Worker worker.Config `yaml:"worker"`
	// Backends are the Stable Diffusion servers this process runs jobs on,
	// one job at a time each. `easel serve` with none runs an embedded fake
	// backend (see fakesd); `easel worker` needs at least one.
	Backends []BackendConfig `yaml:"backends"`
	// FakeSD configures the embedded fake backend of the demo (step_duration
	// 50ms and a preview every 5 steps by default; instant: true for
	// zero-time jobs).
	FakeSD fakesd.Config `yaml:"fakesd"`
	// Log configures logging.
	Log LogConfig `yaml:"log"`
}

// BackendConfig is one Stable Diffusion server.
type BackendConfig struct {
	// Name identifies the backend in logs, events and metrics; letters,
	// digits, "-" and "_". Default "<kind>-<index>".
	Name string `yaml:"name"`
	// Kind is "a1111" (AUTOMATIC1111, Forge, SD.Next /sdapi/v1), "comfyui"
	// (a ComfyUI server) or "fakesd" (an `easel fakesd` server). Default
	// "a1111".
	Kind string `yaml:"kind"`
	// URL is the server's base URL, e.g. http://127.0.0.1:7860 (A1111) or
	// http://127.0.0.1:8188 (ComfyUI). Required.
	URL string `yaml:"url"`
	// Username for HTTP basic auth (A1111 --api-auth; for ComfyUI, a proxy
	// in front of it). Default none.
	Username string `yaml:"username"`
	// PasswordEnv names the environment variable holding the basic-auth
	// password (secrets never live in the YAML). Default none.
	PasswordEnv string `yaml:"password_env"`
	// PasswordFile is a file holding the basic-auth password (e.g. a Docker
	// secret); surrounding white space is trimmed. Default none.
	PasswordFile string `yaml:"password_file"`
	// Timeouts bound each phase of a job on this backend (connect 10s,
	// queue 10m, model_load 5m, stall 60s by default); a phase that runs
	// out abandons the attempt, interrupts only Easel's own task and
	// retries the job, preferably elsewhere.
	Timeouts sdclient.Timeouts `yaml:"timeouts"`
	// DefaultModel is the checkpoint file a ComfyUI job runs when it names
	// none (kind comfyui only). Default: the first of the server's
	// models/checkpoints.
	DefaultModel string `yaml:"default_model"`
	// Workflows are ComfyUI API-format workflow files that replace the
	// built-in graphs (kind comfyui only; see the README's ComfyUI
	// section). Default: the built-in graphs.
	Workflows comfyui.Workflows `yaml:"workflows"`
}

// StorageConfig is where images are kept, apart from the queue's Redis.
type StorageConfig struct {
	// Blobs is the image store: fs (files under data_dir, the default with
	// a durable Redis), s3 (an S3-compatible bucket) or redis (the
	// in-process demo only). Results are kept for scheduler.retention,
	// previews for an hour.
	Blobs blob.Config `yaml:"blobs"`
}

// LogConfig configures the zap logger.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is "console" (human) or "json". Default console.
	Format string `yaml:"format"`
}

// ConfigError is an invalid configuration, naming the field (its yaml
// path, e.g. backends[0].url); Error adds the EASEL_ variable that sets it.
type ConfigError struct {
	Field   string
	Message string
}

func (e *ConfigError) Error() string {
	if env := EnvFor(e.Field); env != "" && !strings.Contains(e.Message, env) {
		return fmt.Sprintf("config: %s (%s): %s", e.Field, env, e.Message)
	}
	return fmt.Sprintf("config: %s: %s", e.Field, e.Message)
}

// LoadConfig reads path (when explicit is false a missing file is fine),
// applies environment overrides through lookup (os.LookupEnv) and validates.
// A failure lists every problem found (ConfigErrors), each naming its field,
// its EASEL_ variable and, in the file, its line.
func LoadConfig(path string, explicit bool, lookup func(string) (string, bool)) (*Config, error) {
	cfg := &Config{}
	p := &problems{}
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("config %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		decodeNode(&doc, reflect.ValueOf(cfg).Elem(), "", source{file: path}, p)
	case errors.Is(err, fs.ErrNotExist) && !explicit:
	default:
		return nil, fmt.Errorf("config: %w", err)
	}
	applyEnv(cfg, lookup, p)
	// Values are checked even after a decoding problem, so every problem is
	// listed at once; a field already reported is not reported twice.
	if err := cfg.validate(lookup); err != nil {
		seen := map[string]bool{}
		for _, ce := range p.list {
			seen[ce.Field] = true
		}
		var more ConfigErrors
		errors.As(err, &more)
		for _, ce := range more {
			if !seen[ce.Field] {
				p.list = append(p.list, ce)
			}
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		// Set here, not in validate: a Config built in code (tests) with
		// no data_dir keeps the in-process Redis.
		cfg.DataDir = "easel-data"
	}
	return cfg, nil
}

var backendName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validate fills defaults and checks values; it reports every problem.
func (c *Config) validate(lookup func(string) (string, bool)) error {
	p := &problems{}
	switch c.Log.Level {
	case "":
		c.Log.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "must be debug, info, warn or error (got %q)", c.Log.Level)
	}
	switch c.Log.Format {
	case "":
		c.Log.Format = "console"
	case "console", "json":
	default:
		p.add("log.format", "must be console or json (got %q)", c.Log.Format)
	}
	// The kind's default depends on the Redis actually started (see
	// bot.newStore); here the values are checked on a copy.
	bc := c.Storage.Blobs
	if err := bc.Validate(true, "easel-data"); err != nil {
		var fe *blob.FieldError
		if errors.As(err, &fe) {
			p.add(fe.Field, "%s", fe.Message)
		}
	}
	if c.Redis.URL != "" {
		u, err := url.Parse(c.Redis.URL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			p.add("redis.url", "must be a redis://, rediss:// or unix:// URL (got %s)", storage.RedactURL(c.Redis.URL))
		}
	}
	names := map[string]bool{}
	for i := range c.Backends {
		b := &c.Backends[i]
		field := fmt.Sprintf("backends[%d]", i)
		if b.Kind == "" {
			b.Kind = "a1111"
		}
		if b.Kind != "a1111" && b.Kind != "comfyui" && b.Kind != "fakesd" {
			p.add(field+".kind", "must be a1111, comfyui or fakesd (got %q)", b.Kind)
		}
		if b.Kind != "comfyui" && b.DefaultModel != "" {
			p.add(field+".default_model", "applies to kind comfyui only (this backend is %s)", b.Kind)
		}
		if b.Kind != "comfyui" && b.Workflows != (comfyui.Workflows{}) {
			p.add(field+".workflows", "applies to kind comfyui only (this backend is %s)", b.Kind)
		} else if err := b.Workflows.Check(); err != nil {
			p.add(field+".workflows", "%s", err.Error())
		}
		if b.Name == "" {
			b.Name = fmt.Sprintf("%s-%d", b.Kind, i)
		}
		if !backendName.MatchString(b.Name) {
			p.add(field+".name", "must be 1-64 letters, digits, - or _ (got %q)", b.Name)
		}
		if names[b.Name] {
			p.add(field+".name", "%q is used twice", b.Name)
		}
		names[b.Name] = true
		u, err := url.Parse(b.URL)
		if b.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add(field+".url", "must be an http:// or https:// URL (got %q)", b.URL)
		}
		for _, t := range []struct {
			name string
			d    time.Duration
		}{{"connect", b.Timeouts.Connect}, {"queue", b.Timeouts.Queue}, {"model_load", b.Timeouts.ModelLoad}, {"stall", b.Timeouts.Stall}} {
			if t.d < 0 {
				p.add(field+".timeouts."+t.name, "must not be negative (got %s)", t.d)
			}
		}
		if b.PasswordEnv != "" {
			if _, ok := lookup(b.PasswordEnv); !ok {
				p.add(field+".password_env", "environment variable %s is not set", b.PasswordEnv)
			}
		}
		if b.PasswordFile != "" {
			if _, err := os.Stat(b.PasswordFile); err != nil {
				p.add(field+".password_file", "%s", err.Error())
			}
		}
	}
	return p.err()
}

// password reads a backend's basic-auth password from its env or file.
func (b BackendConfig) password(lookup func(string) (string, bool)) (string, error) {
	if b.PasswordEnv != "" {
		v, _ := lookup(b.PasswordEnv)
		return v, nil
	}
	if b.PasswordFile != "" {
		raw, err := os.ReadFile(b.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("backend %s password_file: %w", b.Name, err)
		}
		return strings.TrimSpace(string(raw)), nil
	}
	return "", nil
}
