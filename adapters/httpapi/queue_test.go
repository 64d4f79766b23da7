package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

// fill queues n jobs for tenant api:local spread over users, straight
// through the scheduler (no admission limits).
func fill(tb testing.TB, b *bundle, n, users int) []string {
	tb.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		res, err := b.sched.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:local", User: fmt.Sprint("u", i%users),
			Payload: json.RawMessage(`{"prompt":"x"}`)})
		require.NoError(tb, err)
		ids = append(ids, res.ID)
	}
	return ids
}

func TestQueuePaged(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	ids := fill(t, b, 230, 7)
	slices.Sort(ids)
	var got []string
	cursor, pages := "", 0
	for {
		resp, m := b.do(t, "GET", "/v1/queue?limit=100&cursor="+cursor, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, m)
		pages++
		for _, j := range m["jobs"].([]any) {
			v := j.(map[string]any)
			got = append(got, v["id"].(string))
			require.Equal(t, "queued", v["status"])
			require.Greater(t, v["position"], 0.0)
		}
		next, ok := m["next_cursor"].(string)
		if !ok {
			break
		}
		cursor = next
	}
	require.Equal(t, 3, pages)
	require.Equal(t, ids, got, "every job once, oldest first")

	resp, m := b.do(t, "GET", "/v1/queue?user=u3&limit=5", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, m)
	require.Len(t, m["jobs"], 5)
	require.NotEmpty(t, m["next_cursor"])

	for _, c := range []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=101", "limit"}, {"limit=ten", "limit"}, {"cursor=no%20such", "cursor"},
	} {
		resp, m := b.do(t, "GET", "/v1/queue?"+c.query, "", nil)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, c.query)
		require.Equal(t, c.field, m["error"].(map[string]any)["field"], c.query)
	}
}

// BenchmarkQueuePage pages through 10 000 queued jobs (100 users) 100 at
// a time and reports the page latency's median and 99th percentile.
func BenchmarkQueuePage(bb *testing.B) {
	b := setup(bb, opts{timeout: 10 * time.Minute})
	fill(bb, b, 10000, 100)
	client := &http.Client{}
	var lat []time.Duration
	cursor := ""
	bb.ResetTimer()
	for range bb.N {
		t0 := time.Now()
		resp, err := client.Get(b.srv.URL + "/v1/queue?limit=100&cursor=" + cursor)
		require.NoError(bb, err)
		var m struct {
			Jobs []json.RawMessage `json:"jobs"`
			Next string            `json:"next_cursor"`
		}
		require.NoError(bb, json.NewDecoder(resp.Body).Decode(&m))
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
		require.Equal(bb, http.StatusOK, resp.StatusCode)
		require.NotEmpty(bb, m.Jobs)
		cursor = m.Next
	}
	bb.StopTimer()
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	bb.ReportMetric(ms(0.5), "p50-ms")
	bb.ReportMetric(ms(0.99), "p99-ms")
}
