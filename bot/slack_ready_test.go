package bot

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/easelbot/easel/adapters/slack"
	"github.com/easelbot/easel/adapters/slack/slackfake"
	"github.com/easelbot/easel/internal/redistest"
)

// TestServeSocketModeReadiness runs `easel serve` in-process with Slack in
// Socket Mode against the Slack fake: a wrong app token (apps.connections.open
// answers invalid_auth) makes /readyz answer 503 naming slack.app_token, and
// the log line says the same; neither prints the token. The right tokens
// make /readyz answer 200.
func TestServeSocketModeReadiness(t *testing.T) {
	t.Parallel()
	const good = "xapp-1-A1-good-5e1c0d9a7b"
	for _, tc := range []struct {
		name     string
		appToken string
		ready    bool
	}{
		{"invalid_auth", "xapp-1-A1-wrong-9f3b7c21d4", false},
		{"valid tokens", good, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			fake := slackfake.New(slackfake.Config{AppToken: good})
			t.Cleanup(fake.Close)
			core, logs := observer.New(zapcore.DebugLevel)

			cfg := &Config{Redis: redistest.Config(t)}
			cfg.HTTP.Addr = "127.0.0.1:0"
			cfg.Worker.Disabled = true // /readyz checks Redis and Slack only
			cfg.Slack = slack.Config{BotToken: "xoxb-test", AppToken: tc.appToken, APIBase: fake.URL()}
			require.NoError(t, cfg.validate(env(nil)))
			app, err := New(cfg, RoleServe, zap.New(core), Options{})
			require.NoError(t, err)
			require.NoError(t, app.Start(ctx))
			t.Cleanup(func() {
				c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = app.Stop(c)
			})
			require.NotNil(t, app.Slack)

			// Wait on the adapter's state changes (no polling) until Socket
			// Mode has either connected or stopped for good.
			for {
				changed := app.Slack.StateChanged()
				err := app.Slack.Ready(ctx)
				if tc.ready && err == nil || !tc.ready && err != nil && strings.Contains(err.Error(), "invalid_auth") {
					break
				}
				select {
				case <-changed:
				case <-ctx.Done():
					t.Fatalf("slack never reached the expected state; last: %v", err)
				}
			}

			resp, err := http.Get("http://" + app.HTTP.Addr() + "/readyz")
			require.NoError(t, err)
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			body := string(raw)
			var got map[string]string
			require.NoError(t, json.Unmarshal(raw, &got), body)

			var logged strings.Builder
			for _, e := range logs.All() {
				logged.WriteString(e.Message)
				for k, v := range e.ContextMap() {
					logged.WriteString(" " + k + "=")
					b, _ := json.Marshal(v)
					logged.Write(b)
				}
				logged.WriteString("\n")
			}
			for _, secret := range []string{tc.appToken, good, "xoxb-test"} {
				require.NotContains(t, body, secret, "a token in /readyz")
				require.NotContains(t, logged.String(), secret, "a token in the log")
			}

			if tc.ready {
				require.Equal(t, http.StatusOK, resp.StatusCode, body)
				require.Equal(t, "ready", got["status"])
				require.Empty(t, logs.FilterMessageSnippet("socket mode stopped").All())
				return
			}
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
			require.Equal(t, "not ready", got["status"])
			require.Contains(t, got["reason"], "invalid_auth")
			require.Contains(t, got["reason"], "slack.app_token", "the reason says what to fix")
			lines := logs.FilterMessageSnippet("socket mode stopped").All()
			require.Len(t, lines, 1, logged.String())
			require.Equal(t, zapcore.ErrorLevel, lines[0].Level)
			require.Contains(t, lines[0].Message, "slack.app_token", "the log line says what to fix")
			require.Contains(t, lines[0].ContextMap()["error"], "invalid_auth")
		})
	}
}
