// Package discord is Easel's Discord adapter: slash commands over the
// gateway (discordgo, no privileged intents), an immediate answer with the
// job's place in line, progress edits with previews through the relay, the
// final images with buttons (Reroll, V1–V4, Cancel), and the admin
// commands, re-checking Manage Server on every call.
//
// # Overview
//
// Config.APIBase points REST and, through /gateway, the websocket at any
// Discord-compatible server: a rate-limit proxy in production, the fake
// Discord of this package's tests. Buttons carry the action and job id in
// their custom_id, so they keep working after a restart. Interaction tokens
// live 15 minutes; jobs that outlive them are delivered as a reply with the
// bot token.
package discord
