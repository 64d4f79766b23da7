package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters/httpapi"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
)

// routePattern finds the routes the package registers ("METHOD /path").
var routePattern = regexp.MustCompile(`Handle(?:Func)?\("([A-Z]+) (/[^"]*)"`)

// TestOpenAPICoversRoutes: every route the server registers is in
// /openapi.json, and every documented operation answers (not the catch-all
// 404 nor 405).
func TestOpenAPICoversRoutes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sched, err := scheduler.New(ctx, redistest.Store(t), scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(sched, pol, commands.Limits{}, zap.NewNop())
	require.NoError(t, err)
	api, err := httpapi.New(httpapi.Config{}, svc, sched, zap.NewNop(), httpapi.WithMetrics(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("# metrics\n")) })))
	require.NoError(t, err)
	t.Cleanup(func() { _ = api.Stop(t.Context()) })
	b := &bundle{ctx: ctx, sched: sched, api: api}
	b.srv = httptest.NewServer(api.Handler())
	t.Cleanup(b.srv.Close)

	resp, doc := b.do(t, "GET", "/openapi.json", "", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "3.1.0", doc["openapi"])
	paths := doc["paths"].(map[string]any)
	// Every event type a job's stream carries is documented.
	sse := paths["/v1/jobs/{id}/events"].(map[string]any)["get"].(map[string]any)["responses"].(map[string]any)["200"].(map[string]any)["x-sse-events"].(map[string]any)
	for _, typ := range scheduler.EventTypes {
		require.Contains(t, sse, string(typ), "event type %s is not in /openapi.json", typ)
	}

	documented := map[string]bool{}
	for p, ops := range paths {
		for m := range ops.(map[string]any) {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	registered := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range routePattern.FindAllStringSubmatch(string(src), -1) {
			p := strings.TrimSuffix(m[2], "{$}")
			require.True(t, documented[m[1]+" "+p], "route %s %s (%s) is not in /openapi.json", m[1], p, f)
			registered++
		}
	}
	require.Greater(t, registered, 20)

	sample := strings.NewReplacer("{id}", "nosuchjob", "{n}", "0", "{name}", "p0", "{user}", "someone", "{file}", "style.css", "{entry}", "1-0")
	for key := range documented {
		method, p, _ := strings.Cut(key, " ")
		if method == "GET" && (strings.HasSuffix(p, "/events") || strings.HasSuffix(p, "/overview/events")) {
			continue // checked below: a stream is not JSON
		}
		resp, body := b.do(t, method, sample.Replace(p), "", nil)
		require.NotEqual(t, http.StatusMethodNotAllowed, resp.StatusCode, key)
		if resp.StatusCode == http.StatusNotFound {
			e, _ := body["error"].(map[string]any)
			require.NotContains(t, e["message"], "no such endpoint", key)
		}
	}
	// The events route answers too (404 for a missing job, as JSON).
	resp, body := b.do(t, "GET", "/v1/jobs/nosuchjob/events", "", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, "not_found", body["error"].(map[string]any)["code"])
	raw, _ := json.Marshal(doc["components"])
	require.Contains(t, string(raw), "JobRequest")
}
