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
// Like the real server it runs one job at a time behind a queue lock and
// answers progress without it, computing progress and eta_relative with
// A1111's formula; it keeps a preview every [Config.PreviewEvery] steps as
// current_image; an interrupt stops the job at its next step and txt2img
// answers 200 with the images as far as they got. Errors come in the real
// shapes: A1111's exception handler body {"error", "detail", "body",
// "errors"}, and FastAPI's 422 {"detail": [{"loc", "msg", "type"}]} for
// invalid requests.
//
// # Tests
//
// [Config.Instant] makes sampling take no time. [Server.WaitStarted] blocks
// until a txt2img job holds the queue lock, so a test can interrupt or cancel
// a running job without sleeping.
// [Server.FailNext] makes txt2img fail with a chosen status, [Server.SetDown]
// makes the server drop connections, and [Server.Interrupts],
// [Server.Generations] and [Server.LastRequest] show what the client did.
//
// Where it departs from A1111: width and height must be multiples of 8 within
// [Config.MaxSize] (A1111 rounds silently), an unknown model in
// override_settings is 404 "Model not found" (A1111 falls back to another
// checkpoint), and a job whose client went away stops at its next step.
package fakesd
