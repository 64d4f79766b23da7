package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFetchesImage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		body string
		want bool
	}{
		{`{"prompt":"x","init_image":"https://example.com/a.png"}`, true},
		{`{"init_image":"  HTTP://example.com/a.png"}`, true},
		{`{"init_image":"data:image/png;base64,AAAA"}`, false},
		{`{"init_image":"iVBORw0KGgo="}`, false},
		{`{"prompt":"http://example.com/a.png"}`, false},
		{`{"init_image":7}`, false},
		{`not json`, false},
		{``, false},
	} {
		require.Equal(t, c.want, fetchesImage([]byte(c.body)), c.body)
	}
}

// fetchesImage reads a raw request body: it never panics, and says yes
// only for a JSON object whose init_image is an http(s) URL.
func FuzzFetchesImage(f *testing.F) {
	for _, s := range []string{`{"init_image":"https://example.com/a.png"}`, `{"init_image":"data:,"}`, `{"init_image":null}`, `[`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !fetchesImage(body) {
			return
		}
		var req struct {
			InitImage string `json:"init_image"`
		}
		require.NoError(t, json.Unmarshal(body, &req))
		src := strings.ToLower(strings.TrimSpace(req.InitImage))
		require.True(t, strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"), src)
	})
}
