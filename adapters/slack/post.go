package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/easelbot/easel/commands"
)

// maxRateWaits is how many 429s (each waited out per Retry-After) one post
// or update rides through before it fails.
const maxRateWaits = 3

// errorCode is Slack's error code of err ("not_in_channel", …), or err's
// text when Slack sent none.
func errorCode(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return "ratelimited"
	}
	return err.Error()
}

// noAccess reports whether err says the bot cannot post in the channel.
func noAccess(err error) bool {
	switch errorCode(err) {
	case "not_in_channel", "channel_not_found", "is_archived", "restricted_action", "ekm_access_denied":
		return true
	}
	return false
}

// permanent reports whether retrying the same call cannot succeed (Slack
// documents these as errors of the request, not of the moment).
func permanent(err error) bool {
	if noAccess(err) {
		return true
	}
	switch errorCode(err) {
	case "invalid_blocks", "invalid_blocks_format", "msg_too_long", "message_not_found", "cant_update_message",
		"thread_not_found", "no_text", "too_many_attachments", "edit_window_closed", "invalid_auth",
		"not_authed", "token_revoked", "account_inactive", "missing_scope", "file_not_found",
		"invalid_url", "expired_url", "used_url":
		return true
	}
	return false
}

// postFailure explains to the user, in the language of loc, why their
// request got no message.
func postFailure(loc string, err error) string {
	switch code := errorCode(err); {
	case noAccess(err):
		return commands.T(loc, "slack_post_no_access", code)
	case code == "ratelimited":
		return commands.T(loc, "slack_post_ratelimited")
	case code == "missing_scope":
		return commands.T(loc, "slack_post_missing_scope", code)
	default:
		return commands.T(loc, "slack_post_failed", code)
	}
}

// wait sleeps out a rate limit; false when ctx ended first.
func wait(ctx context.Context, err error, attempt int) bool {
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || attempt >= maxRateWaits {
		return false
	}
	t := time.NewTimer(max(rl.RetryAfter, 100*time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// post posts text (and blocks) in the thread (or channel), riding out rate
// limits, and returns the message ts.
func (a *Adapter) post(ctx context.Context, channel, thread, text string, blocks ...slack.Block) (string, error) {
	_, ts, err := a.postIn(ctx, channel, thread, text, blocks...)
	return ts, err
}

// directMessage posts text (and blocks) into the app's DM with user (its
// App Home's Messages tab; chat:write suffices) and returns the DM's
// channel as Slack answers it, D…, which is where the message lives: an
// update or a reply in its thread must name that id, not the user's.
func (a *Adapter) directMessage(ctx context.Context, user, text string, blocks ...slack.Block) (channel, ts string, err error) {
	channel, ts, err = a.postIn(ctx, user, "", text, blocks...)
	if err == nil && channel == user {
		// Slack always answers with the conversation's own id; keep going
		// with what it said, but say so.
		a.log.Warn("slack: a direct message came back under the user's id", zap.String("user", user))
	}
	return channel, ts, err
}

// postIn is post, also returning the channel Slack posted in.
func (a *Adapter) postIn(ctx context.Context, channel, thread, text string, blocks ...slack.Block) (string, string, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if thread != "" {
		opts = append(opts, slack.MsgOptionTS(thread))
	}
	if len(blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	for attempt := 0; ; attempt++ {
		in, ts, err := a.api.PostMessageContext(ctx, channel, opts...)
		if err == nil {
			return in, ts, nil
		}
		if !wait(ctx, err, attempt) {
			return "", "", fmt.Errorf("slack: chat.postMessage: %w", err)
		}
	}
}

// update replaces a message's text and blocks, riding out rate limits.
func (a *Adapter) update(ctx context.Context, channel, ts, text string, blocks []slack.Block) error {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if blocks != nil {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	for attempt := 0; ; attempt++ {
		_, _, _, err := a.api.UpdateMessageContext(ctx, channel, ts, opts...)
		if err == nil {
			return nil
		}
		if !wait(ctx, err, attempt) {
			return fmt.Errorf("slack: chat.update: %w", err)
		}
	}
}

// updateText replaces a message with plain text (no blocks).
func (a *Adapter) updateText(ctx context.Context, channel, ts, text string) error {
	return a.update(ctx, channel, ts, text, []slack.Block{})
}

// notify tells one user something (errors, help, personal answers): an
// ephemeral message in the channel (in the thread when there is one); where
// the bot cannot post, through the request's response_url; else a direct
// message. A notice nobody could receive is logged as an error.
func (a *Adapter) notify(ctx context.Context, r req, text string) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if r.thread != "" {
		opts = append(opts, slack.MsgOptionTS(r.thread))
	}
	var err error
	for attempt := 0; ; attempt++ {
		if _, err = a.api.PostEphemeralContext(ctx, r.channel, r.user, opts...); err == nil {
			return
		}
		if !wait(ctx, err, attempt) {
			break
		}
	}
	if r.responseURL != "" {
		rerr := a.respond(ctx, r.responseURL, map[string]any{"response_type": "ephemeral", "text": text})
		if rerr == nil {
			return
		}
		err = errors.Join(err, rerr)
	}
	// A direct message: posting to a user id opens the app's DM with them.
	if ch, _, derr := a.directMessage(ctx, r.user, text); derr == nil {
		a.log.Info("slack: told the user by direct message", zap.String("user", r.user), zap.String("dm", ch))
		return
	} else {
		err = errors.Join(err, derr)
	}
	a.log.Error("slack: could not tell the user", zap.String("user", r.user), zap.String("channel", r.channel), zap.Error(err))
}

// respond posts a message body to a response_url (30 minutes, 5 uses).
func (a *Adapter) respond(ctx context.Context, url string, body map[string]any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("slack: response_url: %w", err)
	}
	rq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("slack: response_url: %w", err)
	}
	rq.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(rq)
	if err != nil {
		return fmt.Errorf("slack: response_url: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("slack: response_url: %w", slack.SlackErrorResponse{Err: string(bytes.TrimSpace(msg))})
	}
	return nil
}
