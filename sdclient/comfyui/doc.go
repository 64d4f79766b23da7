// Package comfyui is the sdclient.Backend for ComfyUI servers: it builds
// API-format workflow graphs, runs them through /prompt and the /ws
// websocket, and reads results from /history and /view.
//
// # Overview
//
// [Client.Generate] builds a graph — the built-in txt2img or img2img one
// (see builtinGenerate), or an owner's workflow file with placeholders (see
// [Workflows]) — then:
//
//  1. opens /ws?clientId=ID with a fresh client id, so progress and
//     previews, which ComfyUI sends only to the submitting client
//     (server.py send_sync with sid), reach us;
//  2. posts /prompt {prompt, client_id, prompt_id} (a 400 {error,
//     node_errors} becomes an [sdclient.PermanentError] naming the node and
//     input);
//  3. follows the socket: execution_start / executing mark the prompt as
//     started, progress {value, max} and binary preview frames become
//     [sdclient.Progress], and "executing" with node null and our prompt id
//     ends the run (main.py sends it after history is written);
//  4. reads GET /history/{prompt_id} and fetches each image with GET /view.
//     Results never come from "executed" alone: a cached graph (ComfyUI
//     keeps the previous prompt's node outputs) runs no sampler and sends no
//     progress, and history has its images all the same.
//
// A dropped socket is reopened under the same client id and history is
// read at once, so a prompt that ended meanwhile is not waited for.
//
// # Cancel and timeouts
//
// When the caller's context ends, or a phase timeout of [sdclient.Timeouts]
// fires (Queue: not started; ModelLoad: started, no sampling step yet;
// Stall: no step advance, or ModelLoad once the last step is done and the
// graph decodes and saves), the client stops its own prompt only: pending →
// POST /queue {"delete": [id]}; running (GET /queue lists it in
// queue_running) → POST /interrupt {"prompt_id": id}. A timeout returns an
// error wrapping [sdclient.ErrStalled].
//
// # Errors
//
// Connection failures and HTTP 5xx wrap [sdclient.ErrUnavailable]. A 400
// from /prompt and an execution_error other than out-of-memory are
// [*sdclient.PermanentError]s. Any other non-2xx answer is an
// [*sdclient.HTTPError].
package comfyui
