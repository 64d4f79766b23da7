package bot

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/configs"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/fakesd"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadConfigFileAndEnvironment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "easel.yaml")
	require.NoError(t, os.WriteFile(path, []byte("http:\n  addr: 127.0.0.1:9999\nscheduler:\n  lease: 45s\n"), 0o600))
	cfg, err := LoadConfig(path, true, env(map[string]string{
		"EASEL_REDIS_URL":                 "redis://127.0.0.1:6379/2",
		"EASEL_SCHEDULER_MAX_ATTEMPTS":    "5",
		"EASEL_BACKENDS":                  `[{name: gpu0, url: "http://10.0.0.5:7860", password_env: GPU_PW}]`,
		"GPU_PW":                          "pw",
		"EASEL_HTTP_KEYS":                 `{"0123456789abcdef0123": "acme"}`,
		"EASEL_POLICY_DEFAULTS_USER_RATE": "{per_minute: 6, burst: 3}",
	}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9999", cfg.HTTP.Addr)
	require.Equal(t, 45*time.Second, cfg.Scheduler.Lease)
	require.Equal(t, 5, cfg.Scheduler.MaxAttempts)
	require.Equal(t, "redis://127.0.0.1:6379/2", cfg.Redis.URL)
	require.Equal(t, "a1111", cfg.Backends[0].Kind)
	require.Equal(t, "acme", cfg.HTTP.Keys["0123456789abcdef0123"])
	require.Equal(t, scheduler.Rate{PerMinute: 6, Burst: 3}, *cfg.Policy.Defaults.UserRate)
	pw, err := cfg.Backends[0].password(env(map[string]string{"GPU_PW": "pw"}))
	require.NoError(t, err)
	require.Equal(t, "pw", pw)

	// The example config loads.
	ex := filepath.Join(dir, "example.yaml")
	require.NoError(t, os.WriteFile(ex, configs.Example, 0o600))
	_, err = LoadConfig(ex, true, env(nil))
	require.NoError(t, err)
	// No file, no environment: the demo.
	cfg, err = LoadConfig(filepath.Join(dir, "absent.yaml"), false, env(nil))
	require.NoError(t, err)
	require.Empty(t, cfg.Redis.URL)
}

func TestInvalidConfigNamesTheField(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		name, yaml string
		env        map[string]string
		field      string
	}{
		{"unknown field", "sheduler:\n  lease: 1s\n", nil, "sheduler"},
		{"bad duration env", "", map[string]string{"EASEL_SCHEDULER_LEASE": "soon"}, "scheduler.lease"},
		{"bad backend url", "backends:\n  - url: ftp://x\n", nil, "backends[0].url"},
		{"bad kind", "backends:\n  - url: http://x\n    kind: comfy\n", nil, "must be a1111, comfyui or fakesd"},
		{"bad workflow file", "backends:\n  - url: http://x\n    kind: comfyui\n    workflows:\n      txt2img: /nonexistent/w.json\n", nil, "backends[0].workflows"},
		{"workflows on a1111", "backends:\n  - url: http://x\n    workflows:\n      txt2img: /w.json\n", nil, "backends[0].workflows"},
		{"missing password env", "backends:\n  - url: http://x\n    password_env: NOPE\n", nil, "backends[0].password_env"},
		{"log level", "log:\n  level: loud\n", nil, "log.level"},
		{"redis url", "redis:\n  url: http://x\n", nil, "redis.url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name+".yaml")
			require.NoError(t, os.WriteFile(p, []byte(c.yaml), 0o600))
			_, err := LoadConfig(p, true, env(c.env))
			require.Error(t, err)
			require.Contains(t, err.Error(), c.field)
		})
	}
	// Values checked when the app is built name their field too.
	cfg := &Config{Scheduler: scheduler.Config{Lease: time.Millisecond}}
	require.NoError(t, cfg.validate(env(nil)))
	_, err := New(cfg, RoleServe, zap.NewNop(), Options{})
	var ce *ConfigError
	require.True(t, errors.As(err, &ce), "%v", err)
	require.Equal(t, "scheduler.lease", ce.Field)
	_, err = New(&Config{}, RoleWorker, zap.NewNop(), Options{})
	require.True(t, errors.As(err, &ce))
	require.Equal(t, "backends", ce.Field)
}

// TestServeRestartLosesNothing queues jobs with no worker running, stops
// serve, starts a new serve with a backend on the same Redis, and checks
// every job completes.
func TestServeRestartLosesNothing(t *testing.T) {
	t.Parallel()
	rcfg := redistest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fake := fakesd.New(fakesd.Config{})
	fsrv := httptest.NewServer(fake.Handler())
	defer fsrv.Close()
	fake.SetDown(true) // the first serve's worker cannot run anything

	start := func() *App {
		cfg := &Config{Redis: rcfg}
		cfg.HTTP.Addr = "127.0.0.1:0"
		cfg.Backends = []BackendConfig{{Name: "fake", Kind: "fakesd", URL: fsrv.URL}}
		cfg.Scheduler.RetryBackoff = 10 * time.Millisecond
		cfg.Scheduler.MaxAttempts = 100
		require.NoError(t, cfg.validate(env(nil)))
		app, err := New(cfg, RoleServe, zap.NewNop(), Options{})
		require.NoError(t, err)
		require.NoError(t, app.Start(ctx))
		return app
	}
	first := start()
	var ids []string
	for i := range 5 {
		p, _ := json.Marshal(map[string]any{"prompt": "p", "width": 64, "height": 64, "steps": 2, "seed": i, "count": 1})
		r, err := first.Sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: p, Images: 1})
		require.NoError(t, err)
		ids = append(ids, r.ID)
	}
	stop, c := context.WithTimeout(ctx, 5*time.Second)
	require.NoError(t, first.Stop(stop))
	c()

	fake.SetDown(false)
	second := start()
	defer func() {
		stop, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = second.Stop(stop)
	}()
	for _, id := range ids {
		var last scheduler.Event
		require.NoError(t, second.Sched.Follow(ctx, id, 0, func(e scheduler.Event) error { last = e; return nil }))
		require.Equal(t, scheduler.EventSucceeded, last.Type, "job %s", id)
	}
}

// TestPolicyChangeReachesSecondServe: a tenant admin changes the policy
// through one serve; the other serve applies it (its cache lasts a second). A
// non-admin key is refused.
func TestPolicyChangeReachesSecondServe(t *testing.T) {
	t.Parallel()
	rcfg := redistest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const admin, member = "admin-key-0123456789", "member-key-0123456789"
	start := func() *App {
		cfg := &Config{Redis: rcfg}
		cfg.HTTP.Addr = "127.0.0.1:0"
		cfg.HTTP.AdminKeys = map[string]string{admin: "acme"}
		cfg.HTTP.Keys = map[string]string{member: "acme"}
		require.NoError(t, cfg.validate(env(nil)))
		app, err := New(cfg, RoleServe, zap.NewNop(), Options{})
		require.NoError(t, err)
		require.NoError(t, app.Start(ctx))
		t.Cleanup(func() {
			c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = app.Stop(c)
		})
		return app
	}
	a, b := start(), start()
	call := func(app *App, method, path, key, body string) int {
		req, err := http.NewRequestWithContext(ctx, method, "http://"+app.HTTP.Addr()+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusForbidden, call(a, "PATCH", "/v1/admin/policy", member, `{"field":"max_steps","value":"30"}`))
	require.Equal(t, http.StatusAccepted, call(b, "POST", "/v1/jobs", member, `{"prompt":"x","steps":40}`))
	require.Equal(t, http.StatusOK, call(a, "PATCH", "/v1/admin/policy", admin, `{"field":"max_steps","value":"30"}`))
	// The other serve's policy cache lasts a second; the bound here is
	// generous so a loaded machine does not fail it (speed is not what a
	// test asserts).
	require.Eventually(t, func() bool {
		return call(b, "POST", "/v1/jobs", member, `{"prompt":"x","steps":40}`) == http.StatusBadRequest
	}, 15*time.Second, 20*time.Millisecond)
}
