package sdclient

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseBaseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, url, user, pass, err string
	}{
		{raw: "http://127.0.0.1:7860", url: "http://127.0.0.1:7860"},
		{raw: "https://u:p%40ss@gpu.example/sd/?x=1#f", url: "https://gpu.example/sd/", user: "u", pass: "p@ss"},
		{raw: "http://u@h:8188", url: "http://h:8188", user: "u"},
		{raw: "ftp://h", err: "Config.BaseURL must be an http:// or https:// URL"},
		{raw: "ftp://u:hunter22@h", err: `(got "ftp://u:xxxxx@h")`},
		{raw: "http://", err: "Config.BaseURL must be"},
		{raw: "127.0.0.1:7860", err: "Config.BaseURL must be"},
		{raw: "", err: "Config.BaseURL must be"},
	} {
		b, err := ParseBaseURL(tc.raw)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.raw)
			continue
		}
		require.NoError(t, err, tc.raw)
		require.Equal(t, tc.url, b.URL.String())
		require.Equal(t, tc.user, b.Username)
		require.Equal(t, tc.pass, b.Password)
	}
}

func TestTimeoutsValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Timeouts{}.Validate())
	require.NoError(t, Timeouts{Stall: time.Second}.Validate())
	require.EqualError(t, Timeouts{ModelLoad: -time.Second}.Validate(), "Config.Timeouts.ModelLoad must not be negative (got -1s)")
}

// FuzzParseBaseURL: whatever the owner writes, a parsed URL keeps no
// credentials, query or fragment, and the password never reaches an error.
func FuzzParseBaseURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:7860", "https://u:secret@h/x?q#f", "ftp://h", "", "http://[::1]:8188", "http://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		b, err := ParseBaseURL(raw)
		if err != nil {
			if u, perr := url.Parse(raw); perr == nil && u.User != nil {
				if p, ok := u.User.Password(); ok && len(p) > 3 {
					require.NotContains(t, err.Error(), p, "the password must not reach the error")
				}
			}
			return
		}
		require.Nil(t, b.URL.User)
		require.Empty(t, b.URL.RawQuery)
		require.Empty(t, b.URL.Fragment)
		require.True(t, strings.HasPrefix(b.URL.String(), "http://") || strings.HasPrefix(b.URL.String(), "https://"))
	})
}
