package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHistoryPages(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{worker: true})
	var ids []string
	for i, user := range []string{"ada", "bob", "ada"} {
		resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "fox", "seed": i, "user": user})
		require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
		id := m["id"].(string)
		b.sse(t, "/v1/jobs/"+id+"/events", "") // returns after the terminal event
		ids = append(ids, id)
	}
	ids3 := func(m map[string]any) []string {
		var out []string
		for _, j := range m["jobs"].([]any) {
			out = append(out, j.(map[string]any)["id"].(string))
		}
		return out
	}
	resp, m := b.do(t, "GET", "/v1/jobs?limit=2", "", nil)
	require.Equal(t, 200, resp.StatusCode, m)
	require.Equal(t, []string{ids[2], ids[1]}, ids3(m), "newest first")
	first := m["jobs"].([]any)[0].(map[string]any)
	require.Equal(t, "fox", first["request"].(map[string]any)["prompt"])
	require.Len(t, first["images"], 1)
	resp, m = b.do(t, "GET", "/v1/jobs?limit=2&cursor="+m["next_cursor"].(string), "", nil)
	require.Equal(t, 200, resp.StatusCode, m)
	require.Equal(t, []string{ids[0]}, ids3(m))
	require.NotContains(t, m, "next_cursor")

	_, m = b.do(t, "GET", "/v1/jobs?user=ada", "", nil)
	require.Equal(t, []string{ids[2], ids[0]}, ids3(m))

	for _, q := range []struct{ query, field string }{{"limit=0", "limit"}, {"limit=101", "limit"}, {"user=a%20b", "user"}, {"cursor=%7B", "cursor"}} {
		resp, m = b.do(t, "GET", "/v1/jobs?"+q.query, "", nil)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, q.query)
		require.Equal(t, q.field, m["error"].(map[string]any)["field"], q.query)
	}
}

func TestUpscaleRoute(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{worker: true})
	resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "fox", "width": 256, "height": 256, "user": "ada"})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	id := m["id"].(string)
	b.sse(t, "/v1/jobs/"+id+"/events", "")

	resp, m = b.do(t, "POST", "/v1/jobs/"+id+"/images/3/upscale", "", nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, m)
	require.Equal(t, "image", m["error"].(map[string]any)["field"])
	resp, m = b.do(t, "POST", "/v1/jobs/"+id+"/images/x/upscale", "", nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, m)
	resp, m = b.do(t, "POST", "/v1/jobs/nosuchjob/images/0/upscale", "", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, m)

	resp, m = b.do(t, "POST", "/v1/jobs/"+id+"/images/0/upscale", "", nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	up := m["id"].(string)
	require.Equal(t, "succeeded", lastEvent(b.sse(t, "/v1/jobs/"+up+"/events", "")))
	_, m = b.do(t, "GET", "/v1/jobs/"+up, "", nil)
	require.Equal(t, "ada", m["user"], "the upscale runs for the source job's user")
}

func lastEvent(types []string) string {
	if len(types) == 0 {
		return ""
	}
	return types[len(types)-1]
}
