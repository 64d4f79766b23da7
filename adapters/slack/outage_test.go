package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/slack/slackfake"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
)

// answer is a response of the Slack endpoints, read whole.
type answer struct {
	status int
	header http.Header
	body   string
}

// send posts body signed at ts as Slack does and reads the whole answer.
func (b *bundle) send(t *testing.T, path, contentType, body, ts, sig string) answer {
	t.Helper()
	req, _ := http.NewRequestWithContext(b.ctx, "POST", b.app.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{resp.StatusCode, resp.Header, string(raw)}
}

// slashText is the text of a slash command's immediate reply ("" for none).
func slashText(t *testing.T, a answer) string {
	t.Helper()
	require.Equal(t, http.StatusOK, a.status, a.body)
	if a.body == "" {
		return ""
	}
	var m map[string]string
	require.NoError(t, json.Unmarshal([]byte(a.body), &m), a.body)
	require.Equal(t, "ephemeral", m["response_type"])
	return m["text"]
}

// TestRedisOutageAnswersUnavailable: while Redis is down, each Slack
// endpoint answers within http.redis_timeout (never hangs on the request's
// own deadline-less context): the Events API and interactivity with 503 and
// Retry-After, a slash command with an ephemeral "unavailable" reply; none
// starts anything. Once Redis is back a slash command enqueues one job, and
// its replay none.
func TestRedisOutageAnswersUnavailable(t *testing.T) {
	t.Parallel()
	rs := redistest.NewServer(t)
	const budget = 300 * time.Millisecond
	b := setupWith(t, options{redis: rs, redisTimeout: budget, noStart: true})
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.bot.Stop(c)
	})
	const form = "application/x-www-form-urlencoded"
	click := func() string {
		payload, _ := json.Marshal(map[string]any{"type": "block_actions", "team": map[string]any{"id": "T1"},
			"user": map[string]any{"id": "U1"}, "channel": map[string]any{"id": "C1"}, "trigger_id": "trig.outage",
			"response_url": b.fake.NewResponseURL(),
			"actions":      []any{map[string]any{"action_id": "easel:reroll:1-0", "block_id": "r", "type": "button"}}})
		return "payload=" + url.QueryEscape(string(payload))
	}

	rs.Stop()
	mention, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox during the outage"})
	for _, c := range []struct{ name, path, contentType, body string }{
		{"event", "/slack/events", "application/json", mention},
		{"slash command", "/slack/commands", form, slashBody(b.fake, "C1", "U1", "a fox during the outage")},
		{"click", "/slack/interactivity", form, click()},
	} {
		for range 2 { // the first call finds a broken connection, the next a refused one
			ts, sig := sign(c.body, time.Now())
			start := time.Now()
			a := b.send(t, c.path, c.contentType, c.body, ts, sig)
			took := time.Since(start)
			// Generous slack over the budget for a loaded machine; an
			// unbounded wait would run into the test's deadline.
			require.Less(t, took, budget+5*time.Second, c.name)
			require.NotEmpty(t, a.header.Get("Retry-After"), c.name)
			if c.path == "/slack/commands" {
				require.Contains(t, slashText(t, a), "try again", c.name)
				continue
			}
			require.Equal(t, http.StatusServiceUnavailable, a.status, "%s: %s", c.name, a.body)
			var m map[string]map[string]any
			require.NoError(t, json.Unmarshal([]byte(a.body), &m), a.body)
			require.Equal(t, "unavailable", m["error"]["code"], c.name)
		}
	}

	rs.Start()
	// Until the client has reconnected, commands are answered "unavailable"
	// and start nothing; each try is a new command (as a user's retry is).
	var done answer
	var body, ts, sig string
	for {
		body = slashBody(b.fake, "C1", "U1", "a fox after the outage --steps 2")
		ts, sig = sign(body, time.Now())
		a := b.send(t, "/slack/commands", form, body, ts, sig)
		if !strings.Contains(slashText(t, a), "try again") {
			done = a
			break
		}
		select { // not hammering a reconnecting client
		case <-b.ctx.Done():
			t.Fatal("Redis never came back")
		case <-time.After(10 * time.Millisecond):
		}
	}
	require.Equal(t, "On it…", slashText(t, done))
	// The replay starts nothing: it is answered empty, or, while the
	// client's other connections still find Redis gone, "try again"
	// (nothing started either); it is sent until the empty answer.
	for {
		text := slashText(t, b.send(t, "/slack/commands", form, body, ts, sig))
		if text == "" {
			break
		}
		require.Contains(t, text, "try again", "a replay starts nothing")
		select {
		case <-b.ctx.Done():
			t.Fatal("the replay was never recognised")
		case <-time.After(10 * time.Millisecond):
		}
	}
	require.Len(t, activeAfterStop(t, b), 1, "one job: none from the outage, one after it")
}

// lastAck is the newest Socket Mode acknowledgement the fake received.
func lastAck(t *testing.T, cs []slackfake.Call) slackfake.Call {
	t.Helper()
	acks := calls(cs, "socket.ack")
	require.NotEmpty(t, acks)
	return acks[len(acks)-1]
}

// TestRedisOutageOverSocketMode: while Redis is down, Socket Mode answers
// within http.redis_timeout as HTTP mode does: a slash command is
// acknowledged with the "cannot reach its job queue" reply and starts
// nothing; an app_mention is left unacknowledged, so Slack redelivers it
// (retry_attempt 1, 2, …), and the redelivery that arrives once Redis is
// back is acknowledged and makes exactly one job; a click is acknowledged
// and dropped. A slash command after the outage enqueues once.
func TestRedisOutageOverSocketMode(t *testing.T) {
	t.Parallel()
	rs := redistest.NewServer(t)
	const budget = 300 * time.Millisecond
	b := setupWith(t, options{redis: rs, redisTimeout: budget, noStart: true, appToken: "xapp-test"})
	require.NoError(t, b.bot.Start(b.ctx))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.bot.Stop(c)
	})
	b.fake.WaitConnected(t, 1)
	waitState(t, b.bot, "ready", func(err error) bool { return err == nil })
	slash := func(text string) json.RawMessage {
		raw, _ := json.Marshal(map[string]any{"token": "x", "team_id": "T1", "channel_id": "C1", "user_id": "U1",
			"command": "/imagine", "text": text, "trigger_id": fmt.Sprintf("trig.%d", nextSeq()),
			"response_url": b.fake.NewResponseURL()})
		return raw
	}
	// reply sends a slash command and returns its acknowledgement's text.
	reply := func(text string) string {
		ack, err := b.fake.Send("slash_commands", slash(text), 0)
		require.NoError(t, err)
		waitClosed(t, ack, "slash ack")
		var p map[string]string
		require.NoError(t, json.Unmarshal([]byte(lastAck(t, b.fake.Calls()).Form.Get("payload")), &p))
		require.Equal(t, "ephemeral", p["response_type"])
		return p["text"]
	}

	rs.Stop()
	for range 2 { // the first call finds a broken connection, the next a refused one
		require.Contains(t, reply("a fox during the outage"), "cannot reach its job queue")
	}

	// A click is acknowledged (Slack shows nothing else for it) and dropped.
	clickURL := b.fake.NewResponseURL()
	click, _ := json.Marshal(map[string]any{"type": "block_actions", "team": map[string]any{"id": "T1"},
		"user": map[string]any{"id": "U2"}, "channel": map[string]any{"id": "C1"}, "trigger_id": "trig.sock-outage",
		"response_url": clickURL,
		"actions":      []any{map[string]any{"action_id": "easel:reroll:1-0", "block_id": "r", "type": "button"}}})
	ack, err := b.fake.Send("interactive", click, 0)
	require.NoError(t, err)
	waitClosed(t, ack, "click ack")
	require.Empty(t, lastAck(t, b.fake.Calls()).Form.Get("payload"))

	acked := len(calls(b.fake.Calls(), "socket.ack"))
	mention, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a mentioned fox during the outage"})
	_, err = b.fake.Send("events_api", json.RawMessage(mention), 0)
	require.NoError(t, err)
	// The fake records an envelope left unacknowledged for its ack timeout
	// (3 s, ten times the Redis budget) before it redelivers it.
	cs := b.fake.Wait(t, "the event left unacknowledged", func(cs []slackfake.Call) bool {
		for _, c := range calls(cs, "socket.retry") {
			if c.Form.Get("retry_attempt") == "0" {
				return true
			}
		}
		return false
	})
	require.Len(t, calls(cs, "socket.ack"), acked, "nothing acknowledged while Redis is down")

	rs.Start()
	cs = b.fake.Wait(t, "a redelivery acknowledged", func(cs []slackfake.Call) bool {
		return len(calls(cs, "socket.ack")) > acked
	})
	redelivered := calls(cs, "socket.ack")[acked].Form.Get("envelope_id")
	for _, c := range calls(cs, "socket.retry") {
		require.NotEqual(t, c.Form.Get("envelope_id"), redelivered, "an envelope acknowledged after it was given up")
	}
	require.Equal(t, "On it…", reply("a fox after the outage --steps 2"))

	require.Len(t, activeAfterStop(t, b), 2, "one job from the redelivered mention, one from the slash command after the outage, none during it")
	for _, c := range b.fake.Calls() {
		require.False(t, c.Method == "response_url" && strings.HasSuffix(clickURL, "/"+c.Form.Get("id")), "the click was dropped: %v", c.Form)
		require.False(t, c.Method == "chat.postEphemeral" && c.Form.Get("user") == "U2", "the click was dropped: %v", c.Form)
	}
	require.Empty(t, b.fake.Violations(), "the withheld ack was redelivered, not lost")
}

// activeAfterStop stops the adapter, which waits for the work it started
// (each job enqueued or refused), and returns the workspace's active jobs.
func activeAfterStop(t *testing.T, b *bundle) []*scheduler.Job {
	t.Helper()
	c, cancel := context.WithTimeout(b.ctx, slackfake.WaitTimeout)
	defer cancel()
	require.NoError(t, b.bot.Stop(c))
	active, err := b.sched.Active(b.ctx, "slack:T1")
	require.NoError(t, err)
	return active
}
