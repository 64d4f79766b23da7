// Package slack is Easel's Slack adapter over the HTTP Events API and
// interactivity endpoints: `@easel <prompt> --flags` mentions and the
// /imagine slash command (the same flag syntax, see commands.ParseFlags),
// a reply in a thread that is updated with progress, the images uploaded
// into the thread (files.getUploadURLExternal + completeUploadExternal) with
// Block Kit buttons, and workspace admin commands checked with users.info.
//
// # Overview
//
// Every request is verified with the signing secret (v0 HMAC-SHA256 over
// "v0:<ts>:<body>", ±5 minutes) and acknowledged at once; work happens off
// the request. Deliveries are deduplicated by event id in Redis, so Slack's
// retries (X-Slack-Retry-Num) never enqueue twice. Socket Mode is not built
// yet.
package slack
