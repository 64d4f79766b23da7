package bot

import (
	"errors"

	"github.com/easelbot/easel/internal/redisproc"
	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
)

// Effective is cfg as role runs it: every unset field set to the default
// its component applies (the same functions the components call), for
// `easel config print`. Left empty: redis.url (empty starts redis-server
// under data_dir, else the in-process Redis) and worker.name (each
// process's "<hostname>-<pid>"). Call it on a configuration that passed
// Check.
func Effective(cfg *Config, role Role) (*Config, error) {
	c := *cfg
	c.Backends = append([]BackendConfig(nil), cfg.Backends...)
	var err error
	if c.Redis.Prefix == "" {
		c.Redis.Prefix = storage.DefaultKeys().Prefix
	}
	durable := c.Redis.URL != "" || (c.DataDir != "" && redisproc.Available())
	var fe *blob.FieldError
	if err := c.Storage.Blobs.Validate(durable, c.DataDir); errors.As(err, &fe) {
		return nil, &ConfigError{fe.Field, fe.Message}
	} else if err != nil {
		return nil, err
	}
	if c.HTTP, err = c.HTTP.WithDefaults(); err != nil {
		return nil, err
	}
	c.Discord = c.Discord.WithDefaults()
	c.Slack = c.Slack.WithDefaults()
	if c.Slack.APIBase == "" {
		c.Slack.APIBase = "https://slack.com/api/" // slack-go's own default
	}
	if c.Limits, err = c.Limits.WithDefaults(); err != nil {
		return nil, err
	}
	if c.Scheduler, err = c.Scheduler.WithDefaults(); err != nil {
		return nil, err
	}
	c.Worker = c.Worker.WithDefaults()
	for i := range c.Backends {
		c.Backends[i].Timeouts = c.Backends[i].Timeouts.WithDefaults()
	}
	if role == RoleServe && len(c.Backends) == 0 && !c.Worker.Disabled {
		c.FakeSD = c.FakeSD.WithDefaults()
	}
	return &c, nil
}
