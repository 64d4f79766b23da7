// Package comfytest is a ComfyUI server for tests: the HTTP and websocket
// protocol of ComfyUI's server.py and the execution semantics of its
// execution.py and main.py, over a real listener (httptest), with images
// rendered instead of sampled.
//
// # Overview
//
// What it models, from ComfyUI's sources (comfyanonymous/ComfyUI):
//   - One GPU, one global queue (execution.py PromptQueue): prompts from every
//     client run one at a time in submission order; GET /queue shows
//     queue_running and queue_pending as [number, prompt_id, prompt,
//     extra_data, outputs_to_execute]; POST /queue {"delete": [...]} removes
//     pending prompts, {"clear": true} all of them.
//   - POST /prompt validates the graph (execution.py validate_prompt) and
//     answers {prompt_id, number, node_errors} or 400 {error, node_errors}
//     with the real error types (invalid_prompt, prompt_no_outputs,
//     prompt_outputs_failed_validation with value_not_in_list,
//     required_input_missing, value_smaller_than_min, …). A given
//     "prompt_id" is honoured, as server.py does.
//   - /ws?clientId=: a status message on connect; execution_start,
//     execution_cached, executing, progress, executed, execution_success,
//     execution_error and execution_interrupted go to the prompt's client
//     id only, as do binary preview frames (4-byte big-endian event type 1,
//     4-byte image type 1 = JPEG, then the JPEG); status goes to everyone.
//     "executing" with node null follows once history is written (main.py
//     prompt_worker). A reconnect under the same id while its prompt runs
//     gets "executing" with the current node (server.py websocket_handler).
//   - Node output caching (execution.py, classic cache): outputs of the
//     previous prompt's nodes are kept; an identical node (same class,
//     inputs and upstream) is not run again: execution_cached lists it, a
//     cached sampler sends no progress, and a cached output node sends
//     "executed" with its earlier images.
//   - POST /interrupt: with {"prompt_id"} only when that prompt runs (newer
//     server.py post_interrupt), otherwise server-wide. Interrupting stops
//     the sampler at its next step; nodes that finished stay cached.
//   - GET /history[/{id}], GET /view, POST /upload/image (multipart "image"),
//     GET /models[/{folder}], GET /object_info[/{class}], GET /system_stats,
//     and every route again under /api.
//
// Knobs for tests: [Config.StepDuration], [Config.NoPreviews],
// [Config.LoadDuration], [Server.SetHang] (accept, never run),
// [Server.StallAt] (stop advancing mid-sampling), [Server.DropAt] (close the
// client's websocket mid-job), [Server.SubmitAs] (a prompt from another
// client), and [Server.Wait] to block on the server's state.
package comfytest
