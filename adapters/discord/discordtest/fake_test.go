package discordtest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/discord/discordtest"
)

// The fake refuses an autocomplete result breaking Discord's limits (at
// most 25 choices, name 1-100 characters, string value up to 100) with 400
// Invalid Form Body naming the field's path, and accepts one within them.
func TestAutocompleteResultLimits(t *testing.T) {
	t.Parallel()
	f := discordtest.New(t.Logf)
	t.Cleanup(f.Close)
	choice := func(name string, value any) map[string]any { return map[string]any{"name": name, "value": value} }
	many := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = choice(fmt.Sprint("m", i), fmt.Sprint("m", i))
		}
		return out
	}
	c100, c101 := strings.Repeat("é", 100), strings.Repeat("é", 101) // characters, not bytes
	for _, tc := range []struct {
		name    string
		choices []any
		path    []string // nil: accepted
		code    string
	}{
		{"25 choices at the limit", many(25), nil, ""},
		{"100-character name and value", []any{choice(c100, c100)}, nil, ""},
		{"number value", []any{choice("steps", 30)}, nil, ""},
		{"no choices", []any{}, nil, ""},
		{"26 choices", many(26), []string{"data", "choices"}, "BASE_TYPE_MAX_LENGTH"},
		{"101-character name", []any{choice("ok", "ok"), choice(c101, "v")}, []string{"data", "choices", "1", "name"}, "BASE_TYPE_BAD_LENGTH"},
		{"empty name", []any{choice("", "v")}, []string{"data", "choices", "0", "name"}, "BASE_TYPE_BAD_LENGTH"},
		{"101-character value", []any{choice("n", c101)}, []string{"data", "choices", "0", "value"}, "BASE_TYPE_MAX_LENGTH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := "tok-" + strings.ReplaceAll(tc.name, " ", "-")
			body, err := json.Marshal(map[string]any{"type": 8, "data": map[string]any{"choices": tc.choices}})
			require.NoError(t, err)
			resp, err := http.Post(f.URL+"/api/v9/interactions/1/"+tok+"/callback", "application/json", bytes.NewReader(body))
			require.NoError(t, err)
			defer resp.Body.Close()
			if tc.path == nil {
				require.Equal(t, http.StatusNoContent, resp.StatusCode)
				return
			}
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			var e struct {
				Code    int            `json:"code"`
				Message string         `json:"message"`
				Errors  map[string]any `json:"errors"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			require.Equal(t, 50035, e.Code)
			require.Equal(t, "Invalid Form Body", e.Message)
			node := e.Errors
			for _, k := range tc.path {
				next, ok := node[k].(map[string]any)
				require.True(t, ok, "errors lack %q along %v: %v", k, tc.path, e.Errors)
				node = next
			}
			errs, _ := node["_errors"].([]any)
			require.Len(t, errs, 1)
			require.Equal(t, tc.code, errs[0].(map[string]any)["code"])
			require.NotEmpty(t, errs[0].(map[string]any)["message"])
			// The refusal is recorded with its status.
			for _, c := range f.Calls() {
				if strings.Contains(c.Path, tok) {
					require.Equal(t, http.StatusBadRequest, c.Status)
				}
			}
		})
	}
	// Other callback types (a message reply) are not checked as choices.
	body := discordtest.MustJSON(map[string]any{"type": 4, "data": map[string]any{"content": strings.Repeat("x", 150)}})
	resp, err := http.Post(f.URL+"/api/v9/interactions/1/tok-msg/callback", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}
