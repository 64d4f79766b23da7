// Package a1111 is the sdclient.Backend for AUTOMATIC1111 (1.7+), Forge and
// SD.Next servers started with --api: it speaks their /sdapi/v1 HTTP API.
//
// # Our task, and nobody else's
//
// The server is shared: its web UI and other clients queue behind one
// lock (modules/call_queue.py), and /sdapi/v1/interrupt and
// /sdapi/v1/progress are server-wide. So [Client.Generate] sends every
// txt2img/img2img with a force_task_id of its own and follows that task
// only, with POST /internal/progress {id_task, id_live_preview,
// live_preview} (modules/progress.py), which answers active, queued,
// completed, progress, eta and the live preview for that task alone. The
// server-wide /sdapi/v1/progress is read for one thing only: while our
// task waits, whether the server runs anything at all (a queue that does
// not move behind an idle server is stuck). It is never used for our
// progress, previews or cancel, because it cannot tell whose task runs.
// A server without /internal/progress runs jobs without progress, bounded
// as a whole by Queue + ModelLoad + Stall, and is never interrupted.
//
// Cancel never interrupts another client's task. While ours is queued
// nothing is sent; the request is abandoned and a watcher interrupts our
// task the moment /internal/progress reports it active (A1111 runs an
// abandoned request anyway). Once active, POST /sdapi/v1/interrupt stops it
// at its next step. The interrupt is only sent right after the server said
// our task is the current one, and a task that begins later clears the
// flag (State.begin), so a late interrupt cannot hit the next task.
//
// # Phases and timeouts
//
// [sdclient.Timeouts] bound each phase: Connect (dial, and each short call:
// polls, catalog, health, interrupt), Queue (our task not yet active, or
// the server idle and ours not started for Stall), ModelLoad (active, no
// step yet: job_count -1 while weights load; also the time after the last
// step) and Stall (no progress advance, or no poll answered). A timeout
// abandons the attempt as a cancel does and returns an error wrapping
// [sdclient.ErrStalled], so the worker retries the job elsewhere at once.
//
// # Names
//
// Model, sampler, scheduler, LoRAs and the upscaler are checked against
// the server's lists (cached for a minute, fetched again once for an
// unknown name) before anything is sent, because the server silently runs
// something else for an unknown model or sampler. An unknown name is an
// [*sdclient.PermanentError] naming the field and the valid choices. A
// model override is sent as override_settings.sd_model_checkpoint (the
// title) with override_settings_restore_afterwards false, so the model
// stays loaded for the next job rather than being reloaded twice. Legacy
// sampler names with a scheduler suffix ("DPM++ 2M Karras") are split as
// A1111 does; LoRAs become <lora:name:weight> prompt tags; Forge's
// distilled_cfg_scale is passed through.
//
// # Errors
//
// Connection failures, timeouts, 502/503/504, 408/429, 401/403 (check the
// credentials) and a 404 from a missing /sdapi route ([ErrNoAPI]: started
// without --api) wrap [sdclient.ErrUnavailable]: retry elsewhere, take the
// backend out of rotation until Health passes. Other 4xx answers (422
// validation, an HTTPException about the request) and deterministic 500s
// (an HTTPException raised on purpose, or AssertionError, ValueError and
// the like: an unknown upscaler is an AssertionError) are
// [*sdclient.PermanentError]: the job fails without retry and the backend
// stays in rotation. Other 500s (CUDA errors, out of memory) are
// [*sdclient.HTTPError], retried. Messages are read from A1111's exception
// body {"error", "detail", "body", "errors"} and FastAPI's 422 {"detail":
// [{"loc", "msg", "type"}]}.
//
// Images arrive as bare base64 (a data: URL prefix is tolerated); PNG, JPEG
// and WebP are sniffed from the bytes. JPEG XL, TIFF, JPEG 2000 and other
// formats SD.Next can be set to are a PermanentError telling the owner to
// set samples_format to png. Seeds are read from info.all_seeds, and for a
// variation the subseeds from info.all_subseeds: a variation's images
// share the base seed.
package a1111
