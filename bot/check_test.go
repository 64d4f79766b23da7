package bot

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/easelbot/easel/internal/redisproc"
	"github.com/easelbot/easel/scheduler"
)

// TestCheck: the component-level problems are found without connecting to
// anything (the Redis URL points nowhere), each naming field and variable.
func TestCheck(t *testing.T) {
	t.Parallel()
	nowhere := "redis://127.0.0.1:1/0"
	ok := &Config{}
	ok.Redis.URL = nowhere
	require.NoError(t, ok.validate(env(nil)))
	require.NoError(t, Check(ok, RoleServe))

	for _, c := range []struct {
		name  string
		cfg   Config
		role  Role
		field string
	}{
		{"trusted networks", func() Config {
			c := Config{}
			c.HTTP.TrustedNetworks = []string{"docker"}
			return c
		}(), RoleServe, "http.trusted_networks"},
		{"scheduler lease", Config{Scheduler: scheduler.Config{Lease: time.Millisecond}}, RoleServe, "scheduler.lease"},
		{"worker without backends", Config{}, RoleWorker, "backends"},
		{"worker without redis", Config{Backends: []BackendConfig{{URL: "http://127.0.0.1:1"}}}, RoleWorker, "redis.url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			if c.field != "redis.url" {
				cfg.Redis.URL = nowhere
			}
			require.NoError(t, cfg.validate(env(nil)))
			err := Check(&cfg, c.role)
			require.Error(t, err)
			require.Contains(t, err.Error(), c.field)
			require.Contains(t, err.Error(), EnvFor(c.field))
		})
	}
}

// TestRedactedHidesEverySecret sets every field whose doc comment says
// "Secret" (and a password in each URL) and checks `config print` shows
// none of them; a new secret field is covered by its doc comment.
func TestRedactedHidesEverySecret(t *testing.T) {
	t.Parallel()
	docs := structDocs(t, "..")
	cfg := &Config{}
	cfg.Redis.URL = "redis://user:SENTINEL-redis@127.0.0.1:6379/0"
	cfg.Backends = []BackendConfig{{Name: "gpu0", URL: "http://me:SENTINEL-backend@10.0.0.5:7860"}}
	var set []string
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			fv := v.Field(i)
			p := path + "." + f.Name
			if fv.Kind() == reflect.Struct && fv.Type() != durationType {
				walk(fv, p)
				continue
			}
			if !strings.Contains(docs[docKey(t.PkgPath(), t.Name(), f.Name)], "Secret") {
				continue
			}
			switch fv.Kind() {
			case reflect.String:
				fv.SetString("SENTINEL" + p)
			case reflect.Map:
				fv.Set(reflect.ValueOf(map[string]string{"SENTINEL-key" + p: "acme"}))
			default:
				panic("secret field of an unexpected type: " + p)
			}
			set = append(set, p)
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "")
	require.GreaterOrEqual(t, len(set), 7, "secret fields found: %v", set)
	out, err := Redacted(cfg)
	require.NoError(t, err)
	require.NotContains(t, string(out), "SENTINEL")
	require.Contains(t, string(out), "acme")
	require.Contains(t, string(out), "redis://user:xxxxx@127.0.0.1:6379/0")
	var back map[string]any
	require.NoError(t, yaml.Unmarshal(out, &back))
}

// TestFailedBuildStopsRedisChild: when the app cannot be built after the
// durable redis-server started (here: an invalid lease), the child is
// stopped and its data dir unlocked, so a corrected start can use it.
func TestFailedBuildStopsRedisChild(t *testing.T) {
	t.Parallel()
	if !redisproc.Available() {
		t.Skip("redis-server not on PATH (./test.sh installs it)")
	}
	dir := filepath.Join(t.TempDir(), "data")
	cfg := &Config{DataDir: dir, Scheduler: scheduler.Config{Lease: time.Millisecond}}
	cfg.HTTP.Addr = "127.0.0.1:0"
	require.NoError(t, cfg.validate(env(nil)))
	_, err := New(cfg, RoleServe, zap.NewNop(), Options{})
	require.ErrorContains(t, err, "scheduler.lease")
	srv, err := redisproc.StartDurable(dir)
	require.NoError(t, err, "the failed build left its redis-server running on the data dir")
	require.NoError(t, srv.Stop(10*time.Second))
}
