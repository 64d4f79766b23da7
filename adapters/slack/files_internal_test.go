package slack

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The bot token goes to Slack's hosts (and the configured API's) only.
func TestSlackHost(t *testing.T) {
	t.Parallel()
	a := &Adapter{cfg: Config{APIBase: "http://127.0.0.1:4000/api/"}}
	for u, want := range map[string]bool{
		"https://files.slack.com/files-pri/T1-F1/cat.png": true,
		"https://slack.com/x":                             true,
		"http://files.slack.com/x":                        false,
		"https://files.slack.com.evil.example/x":          false,
		"https://evilslack.com/x":                         false,
		"http://127.0.0.1:9999/files-pri/x":               true,
		"https://127.0.0.1/x":                             false,
		"ftp://files.slack.com/x":                         false,
		"not a url\x7f":                                   false,
	} {
		require.Equal(t, want, a.slackHost(u), u)
	}
	require.False(t, (&Adapter{}).slackHost("http://127.0.0.1/x"), "no API base: only Slack")
}
