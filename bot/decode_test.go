package bot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/configs"
)

// TestConfigErrorsAreActionable: each bad configuration names the field
// path, the EASEL_ variable that sets it and, from the file, the line; a
// typo gets a suggestion, a bare number for a duration a hint to write 30s.
func TestConfigErrorsAreActionable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		name, yaml string
		env        map[string]string
		want       []string
		not        []string
	}{
		{"type error names field and line", "scheduler:\n  max_attempts: lots\n", nil,
			[]string{"scheduler.max_attempts", "EASEL_SCHEDULER_MAX_ATTEMPTS", "line 2", "whole number", `"lots"`}, []string{"int64", "!!str"}},
		{"duration without unit", "scheduler:\n  lease: 30\n", nil,
			[]string{"scheduler.lease", "EASEL_SCHEDULER_LEASE", "write 30s", "line 2"}, nil},
		{"duration without unit from env", "", map[string]string{"EASEL_SCHEDULER_LEASE": "30"},
			[]string{"scheduler.lease", "EASEL_SCHEDULER_LEASE", "write 30s"}, nil},
		{"typo in a field", "redis:\n  ulr: redis://x\n", nil,
			[]string{"redis.ulr", `did you mean "url"?`, "line 2"}, []string{"storage.Config", "not found in type"}},
		{"typo in a section", "sheduler:\n  lease: 1s\n", nil,
			[]string{"sheduler", `did you mean "scheduler"?`, "line 1"}, nil},
		{"typo inside an environment list", "", map[string]string{"EASEL_BACKENDS": `[{name: a, utl: "http://x"}]`},
			[]string{"backends[0].utl", `did you mean "url"?`, "EASEL_BACKENDS"}, []string{"line"}},
		{"list expected", "backends:\n  url: http://x\n", nil,
			[]string{"backends", "must be a list", "line 2", "EASEL_BACKENDS"}, nil},
		{"bool from env", "", map[string]string{"EASEL_WORKER_DISABLED": "yes please"},
			[]string{"worker.disabled", "EASEL_WORKER_DISABLED", "true or false"}, nil},
		{"yaml syntax", "redis:\n  url: [\n", nil, []string{"line"}, nil},
		{"env yaml syntax", "", map[string]string{"EASEL_BACKENDS": `[{name: a`},
			[]string{"backends", "EASEL_BACKENDS", "not valid YAML"}, nil},
		{"bad backend url names list element", "backends:\n  - url: ftp://x\n", nil,
			[]string{"backends[0].url", "EASEL_BACKENDS", "http://"}, nil},
		{"password never echoed", "redis:\n  url: http://user:hunter2@x\n", nil,
			[]string{"redis.url", "EASEL_REDIS_URL"}, []string{"hunter2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name+".yaml")
			require.NoError(t, os.WriteFile(p, []byte(c.yaml), 0o600))
			_, err := LoadConfig(p, true, env(c.env))
			require.Error(t, err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			for _, n := range c.not {
				require.NotContains(t, err.Error(), n)
			}
		})
	}
}

// TestConfigListsEveryProblem: one load reports every bad field, not the
// first only, and errors.As still reaches each.
func TestConfigListsEveryProblem(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "easel.yaml")
	require.NoError(t, os.WriteFile(p, []byte("log:\n  level: loud\nscheduler:\n  lease: 5\nbackends:\n  - url: ftp://x\n    kind: comfy\n"), 0o600))
	_, err := LoadConfig(p, true, env(map[string]string{"EASEL_HTTP_MAX_BODY_BYTES": "big"}))
	var list ConfigErrors
	require.True(t, errors.As(err, &list), "%v", err)
	var fields []string
	for _, ce := range list {
		fields = append(fields, ce.Field)
	}
	require.ElementsMatch(t, []string{"log.level", "scheduler.lease", "backends[0].url", "backends[0].kind", "http.max_body_bytes"}, fields)
	var ce *ConfigError
	require.True(t, errors.As(err, &ce))
}

func TestEnvFor(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"redis.url":                         "EASEL_REDIS_URL",
		"backends[2].url":                   "EASEL_BACKENDS",
		"backends":                          "EASEL_BACKENDS",
		"policy.defaults.user_rate.burst":   "EASEL_POLICY_DEFAULTS_USER_RATE",
		"policy.tenants.api:acme.max_steps": "EASEL_POLICY_TENANTS",
		"scheduler.lease":                   "EASEL_SCHEDULER_LEASE",
		"sheduler.lease":                    "",
		"scheduler":                         "",
		"http.keys":                         "EASEL_HTTP_KEYS",
	} {
		require.Equal(t, want, EnvFor(path), path)
	}
}

// TestUnknownEnvSuggests: a mistyped EASEL_ variable is reported with the
// closest real one; known ones, the CLI's and a backend's password_env are
// not reported.
func TestUnknownEnvSuggests(t *testing.T) {
	t.Parallel()
	cfg := &Config{Backends: []BackendConfig{{PasswordEnv: "EASEL_GPU_PW"}}}
	got := UnknownEnv([]string{"EASEL_REDIS_ULR=redis://x", "EASEL_REDIS_URL=redis://x", "EASEL_API_KEY=k",
		"EASEL_GPU_PW=pw", "PATH=/bin", "EASEL_TOTALLY_DIFFERENT=1"}, cfg)
	require.Len(t, got, 2)
	require.Contains(t, got[0], "EASEL_REDIS_ULR")
	require.Contains(t, got[0], `did you mean "EASEL_REDIS_URL"?`)
	require.Contains(t, got[1], "EASEL_TOTALLY_DIFFERENT")
	require.NotContains(t, got[1], "did you mean")
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"url", "ulr", 2}, {"lease", "lease", 0}, {"sheduler", "scheduler", 1}, {"", "abc", 3}} {
		require.Equal(t, c.d, editDistance(c.a, c.b), "%s/%s", c.a, c.b)
	}
}

// FuzzLoadConfig feeds arbitrary YAML (the file) and an arbitrary
// EASEL_BACKENDS value to LoadConfig: it never panics, and a failure is
// either a YAML syntax error or a list of problems that each name a field.
func FuzzLoadConfig(f *testing.F) {
	f.Add("", "")
	f.Add(string(configs.Example), `[{name: gpu0, url: "http://127.0.0.1:7860"}]`)
	f.Add("scheduler:\n  lease: 30\n", `[{name: a, utl: "http://x"}]`)
	f.Add("backends:\n  - url: ftp://x\n    kind: comfy\n    timeouts: {stall: -1s}\n", "{a: b}")
	f.Add("policy:\n  tenants:\n    api:x: {weight: lots}\n", "[1, 2]")
	f.Add("&a {x: *a}", "*b")
	f.Add("redis: [1\n", `[{name: "`)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, file, backends string) {
		p := filepath.Join(dir, "easel.yaml")
		require.NoError(t, os.WriteFile(p, []byte(file), 0o600))
		cfg, err := LoadConfig(p, true, env(map[string]string{"EASEL_BACKENDS": backends}))
		if err == nil {
			require.NotNil(t, cfg)
			return
		}
		var list ConfigErrors
		if errors.As(err, &list) {
			for _, ce := range list {
				require.NotEmpty(t, ce.Field, "%v", err)
			}
			return
		}
		require.True(t, strings.HasPrefix(err.Error(), "config"), "%v", err)
	})
}
