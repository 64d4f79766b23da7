// Package a1111 is the sdclient.Backend for AUTOMATIC1111, Forge and SD.Next
// servers started with --api: it speaks their /sdapi/v1 HTTP API.
//
// # Overview
//
// [Client.Generate] posts /sdapi/v1/txt2img and, while that request runs,
// polls /sdapi/v1/progress every [Config.ProgressInterval]. This is the one
// poll Easel allows itself: the A1111 API has no push channel, and the server
// answers progress without taking its generation lock, so the poll is cheap
// and never queues behind the job it watches. A progress report goes to the
// caller only when the step, the job or the preview image changed.
//
// When the caller's context ends, Generate posts /sdapi/v1/interrupt, waits
// (at most [Config.InterruptGrace]) for txt2img to come back with its partial
// images, and returns the context's error. A generation that outlives
// [Config.Timeout] is interrupted too and reported as unavailable.
//
// # Errors
//
// Connection failures, timeouts and HTTP 502, 503 and 504 wrap
// [sdclient.ErrUnavailable]: the server is down, restarting or behind a proxy
// that cannot reach it, and a retry elsewhere may help. Any other non-2xx
// answer is an [*sdclient.HTTPError] whose Message is read from the body
// shapes the servers use: A1111's exception handler writes
// {"error", "detail", "body", "errors"}, and FastAPI's request validation
// writes HTTP 422 {"detail": [{"loc", "msg", "type"}]}.
//
// Images arrive as bare base64 (a data: URL prefix is tolerated) in PNG, JPEG
// or WebP, whichever the server's samples_format says; the format is sniffed
// from the bytes.
package a1111
