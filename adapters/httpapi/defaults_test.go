package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/httpapi"
)

// The admin API sets server and channel defaults; a plain key is refused,
// bad values name the field, and a job of the tenant takes the defaults.
func TestAdminDefaultsAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{cfg: httpapi.Config{Keys: map[string]string{keyA: "a"}, AdminKeys: map[string]string{adminKey: "a"}}})
	resp, _ := b.do(t, "PATCH", "/v1/admin/defaults", keyA, `{"field":"steps","value":"9"}`)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = b.do(t, "GET", "/v1/admin/defaults", keyA, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	resp, m := b.do(t, "PATCH", "/v1/admin/defaults", adminKey, `{"field":"steps","value":"9999"}`)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, m)
	require.Equal(t, "steps", m["error"].(map[string]any)["field"])
	resp, m = b.do(t, "PATCH", "/v1/admin/defaults", adminKey, `{"field":"steps","value":"9","bogus":1}`)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, m)

	resp, m = b.do(t, "PATCH", "/v1/admin/defaults", adminKey, `{"field":"steps","value":"9"}`)
	require.Equal(t, 200, resp.StatusCode, m)
	require.Equal(t, 9.0, m["steps"])
	resp, m = b.do(t, "PATCH", "/v1/admin/defaults", adminKey, `{"field":"negative_prompt","value":"blurry","channel":"C9"}`)
	require.Equal(t, 200, resp.StatusCode, m)
	resp, m = b.do(t, "GET", "/v1/admin/defaults?channel=C9", adminKey, nil)
	require.Equal(t, 200, resp.StatusCode, m)
	require.Equal(t, 9.0, m["server"].(map[string]any)["steps"])
	require.Equal(t, "blurry", m["channel"].(map[string]any)["negative_prompt"])

	resp, m = b.do(t, "POST", "/v1/jobs", keyA, `{"prompt":"x"}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	j, err := b.sched.Get(b.ctx, m["id"].(string))
	require.NoError(t, err)
	require.Contains(t, string(j.Payload), `"steps":9`)
}
