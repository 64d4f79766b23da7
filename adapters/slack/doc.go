// Package slack is Easel's Slack adapter, over Socket Mode (with an app
// token; no public URL needed) or the HTTP Events API and interactivity
// endpoints, with the same handlers: `@easel <prompt> --flags` mentions and the
// /imagine slash command (the same flag syntax, see commands.ParseFlags),
// a reply in a thread that is updated with progress and the latest preview,
// the images uploaded into the thread once (files.getUploadURLExternal +
// completeUploadExternal, the file ids recorded in Redis) with Block Kit
// buttons, and workspace admin commands checked with users.info (cached).
//
// # Overview
//
// In HTTP mode every request is verified with the signing secret (v0
// HMAC-SHA256 over "v0:<ts>:<body>", ±5 minutes). In both modes requests
// are acknowledged at once and work happens off the request. Events are
// deduplicated by event id, slash commands and clicks by a digest of the
// signed body (Socket Mode: trigger_id), so retries and replays never
// enqueue twice. Prompts are unescaped (Unescape) before validation.
//
// Where the bot cannot post (not a member), a slash command's job answers
// through its response_url; any other failed post is explained to the user
// and nothing is enqueued. Final updates Slack refuses for good are settled
// with a new message in the thread or a notice, never retried as transient.
// The Slack fake in slackfake enforces Slack's documented rules in tests.
package slack
