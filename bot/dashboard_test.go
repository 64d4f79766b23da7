package bot

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/sdclient/fakesd"
)

// TestDashboardMetricsExist checks that every metric the Grafana dashboard
// queries is one Easel exports.
func TestDashboardMetricsExist(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../deploy/grafana/easel-dashboard.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))

	// Every metric family a full serve registers.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fake := fakesd.New(fakesd.Config{})
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	cfg := &Config{Redis: redistest.Config(t)}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Backends = []BackendConfig{{Name: "sd", Kind: "fakesd", URL: srv.URL}}
	require.NoError(t, cfg.validate(env(nil)))
	app, err := New(cfg, RoleServe, zap.NewNop(), Options{})
	require.NoError(t, err)
	require.NoError(t, app.Start(ctx))
	defer func() { _ = app.Stop(context.Background()) }()
	reg := app.Registry
	// The chat metrics register only with a platform configured.
	reg.MustRegister(adapters.NewRelay(app.Sched, zap.NewNop()).Lag)
	src, err := os.ReadFile("../adapters/discord/discord.go")
	require.NoError(t, err)
	names := map[string]bool{}
	if regexp.MustCompile(`"easel_platform_errors_total"`).Match(src) {
		names["easel_platform_errors_total"] = true
	}
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		names[f.GetName()] = true
	}
	metric := regexp.MustCompile(`easel_[a-z_]+`)
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, m := range metric.FindAllString(target.Expr, -1) {
				base := regexp.MustCompile(`_(bucket|count|sum)$`).ReplaceAllString(m, "")
				require.True(t, names[m] || names[base] || isVec(reg, base), "panel %q queries %s, which Easel does not export", p.Title, m)
			}
		}
	}
}

// isVec reports whether a vector metric with no series yet is registered.
func isVec(reg *prometheus.Registry, name string) bool {
	err := reg.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "probe"}))
	if err == nil {
		reg.Unregister(prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "probe"}))
		return false
	}
	return true
}
