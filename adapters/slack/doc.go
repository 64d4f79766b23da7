// Package slack is Easel's Slack adapter, over Socket Mode (with an app
// token; no public URL needed) or the HTTP Events API and interactivity
// endpoints, with the same handlers: `@easel <prompt> --flags` mentions and the
// /imagine slash command (the same flag syntax, see commands.ParseFlags),
// a reply in a thread that is updated with progress, the images uploaded
// into the thread (files.getUploadURLExternal + completeUploadExternal) with
// Block Kit buttons, and workspace admin commands checked with users.info.
//
// # Overview
//
// In HTTP mode every request is verified with the signing secret (v0
// HMAC-SHA256 over "v0:<ts>:<body>", ±5 minutes). In both modes requests
// are acknowledged at once and work happens off the request, and deliveries
// are deduplicated by event id in Redis, so Slack's retries never enqueue
// twice.
package slack
