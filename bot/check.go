package bot

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"
)

// Check builds every component of role from cfg as New does, but against
// an in-process Redis and without starting anything, so the problems only a
// component sees (scheduler, limits, policy, HTTP, Slack, Discord,
// backends) are found while nothing is connected to: not the configured
// Redis, not a backend, not a chat platform.
func Check(cfg *Config, role Role) error {
	p := &problems{}
	if role == RoleWorker && len(cfg.Backends) == 0 {
		p.add("backends", "easel worker needs at least one backend")
	}
	var ce *ConfigError
	if errors.As(workerNeedsRedis(cfg, role), &ce) {
		p.list = append(p.list, ce)
	}
	if err := p.err(); err != nil {
		return err
	}
	c := *cfg
	c.Redis.URL = ""
	app, err := New(&c, role, zap.NewNop(), Options{check: true})
	if err != nil {
		return err
	}
	app.Store.Close()
	return nil
}

// Redacted is cfg as YAML with every secret replaced: tokens, secrets and
// passwords by "<redacted>", API keys by "<key N>" (their tenants kept),
// passwords inside URLs by "xxxxx".
func Redacted(cfg *Config) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(cfg); err != nil {
		return nil, fmt.Errorf("config print: %w", err)
	}
	redactNode(&n)
	out, err := yaml.Marshal(&n)
	if err != nil {
		return nil, fmt.Errorf("config print: %w", err)
	}
	head := "# The effective configuration (file, EASEL_ environment and defaults), secrets redacted.\n" +
		"# Left empty: redis.url (easel serve then starts redis-server under data_dir, else an\n" +
		"# in-process Redis) and worker.name (each process's <hostname>-<pid>).\n"
	return append([]byte(head), out...), nil
}

// secretKey reports whether a field of this yaml name holds a secret.
func secretKey(name string) bool {
	if strings.HasSuffix(name, "_env") || strings.HasSuffix(name, "_file") {
		return false // names of where the secret is, not the secret
	}
	return strings.Contains(name, "token") || strings.Contains(name, "secret") || strings.Contains(name, "password")
}

func redactNode(n *yaml.Node) {
	if n.Kind == yaml.DocumentNode || n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			redactNode(c)
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		switch {
		case k == "keys" || k == "admin_keys":
			if v.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(v.Content); j += 2 {
					v.Content[j].Value = fmt.Sprintf("<key %d>", j/2+1)
					v.Content[j].Style = 0
				}
			}
		case secretKey(k):
			if v.Kind == yaml.ScalarNode && v.Value != "" {
				v.Value, v.Tag, v.Style = "<redacted>", "!!str", 0
			}
		case v.Kind == yaml.ScalarNode && strings.Contains(v.Value, "://"):
			v.Value = redactURL(v.Value)
		default:
			redactNode(v)
		}
	}
}

// redactURL hides the password (and a token-like user) of a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}
