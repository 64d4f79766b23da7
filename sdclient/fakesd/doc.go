// Package fakesd is an AUTOMATIC1111-compatible Stable Diffusion server that
// needs no GPU. Tests, benchmarks and the zero-setup demo run against it, over
// real HTTP, through the real a1111 client.
//
// # Overview
//
// [Server] answers the /sdapi/v1 routes Easel uses with A1111's JSON shapes:
// txt2img, progress, interrupt, extra-single-image, sd-models, samplers and
// options (GET and POST). It renders deterministic pictures from the seed and
// prompt (a gradient and a few discs, washed towards grey in proportion to
// the sampling steps not taken), so the same request gives the same bytes and
// another seed visibly another picture.
//
// Like the real server (AUTOMATIC1111 1.9/1.10 modules/api/api.py,
// modules/progress.py, modules/processing.py, modules/shared_state.py) it
// has one GPU: every client's txt2img, img2img and extras wait for one
// queue lock in arrival order, and a request its client abandons keeps its
// place and still runs. Each generation is a task named by its
// force_task_id (or a made-up "task(txt2img-XXXXXXX)"), pending until it
// takes the lock, then current, then finished; POST /internal/progress
// reports one task (active, queued, completed, progress, eta, a data: URL
// live preview with its id_live_preview), while GET /sdapi/v1/progress
// reports whatever runs, whoever's it is, computing progress and
// eta_relative with A1111's formula. POST /sdapi/v1/interrupt is
// server-wide and sets a flag the running task stops on at its next step
// (answering 200 with the images as far as they got); State.begin clears
// the flag, so a task that starts later runs in full.
//
// A checkpoint override loads the model (the first load of each takes
// [Config.FirstLoadDuration], job_count -1 meanwhile) and, unless
// override_settings_restore_afterwards is false, loads the previous one
// again afterwards; [Server.Loads] counts loads. An unknown checkpoint is
// dropped and the loaded one runs; an unknown sampler silently becomes the
// first one; legacy names like "DPM++ 2M Karras" are split into sampler and
// scheduler. Lists: sd-models, samplers, schedulers, loras, upscalers and
// options. An unknown upscaler is a 500 AssertionError, as in A1111. Errors
// come in the real shapes: A1111's exception handler body {"error",
// "detail", "body", "errors"}, and FastAPI's 422 {"detail": [{"loc", "msg",
// "type"}]} for invalid requests.
//
// # Tests
//
// [Config.Instant] makes sampling take no time. [Server.WaitStarted] blocks
// until a job holds the queue lock; [Server.Await] blocks until a condition
// holds, checking it again at each change of the server's state (no
// polling). Other clients are simply other HTTP
// requests (a test posts txt2img with its own force_task_id).
// [Server.FailNext] makes txt2img fail with a chosen status,
// [Server.SetDown] drops connections, [Server.SetHang] accepts generations
// and never answers, [Server.StallAt] freezes jobs mid-sampling until they
// are interrupted, [Config.NoAPI] answers 404 on /sdapi like a server
// without --api, and [Config.SamplesFormat] "jxl" answers in a format
// clients cannot decode. [Server.Tasks], [Server.Interrupts],
// [Server.Generations], [Server.Loads] and [Server.LastRequest] show what
// happened. [Server.Close] stops the jobs.
//
// Where it departs from A1111: width and height must be multiples of 8
// within [Config.MaxSize] (A1111 rounds silently), and loading a checkpoint
// cannot fail.
package fakesd
