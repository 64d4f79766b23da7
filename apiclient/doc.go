// Package apiclient is the Go client of Easel's HTTP API and the
// `easel imagine` command built on it.
//
// # Overview
//
// A [Client] made by [New] submits jobs ([Client.Submit]), reads them
// ([Client.Job]), cancels them ([Client.Cancel]), downloads their images
// ([Client.Image]) and follows their Server-Sent Events ([Client.Events]).
// Answers other than 2xx come back as an [*APIError] carrying the HTTP
// status, the API's error code, the field at fault and the Retry-After
// delay, wrapped with the call's context ("submit: …").
//
// # Events
//
// [Client.Events] reads GET /v1/jobs/{id}/events with a parser of the full
// text/event-stream format (CRLF, LF or CR line ends, multi-line data,
// comments, id, event and retry fields). When the stream drops before the
// job's terminal event it reconnects with Last-Event-ID, so the caller sees
// every event once and in order: at once after a stream that brought news,
// then with a doubling pause, giving up after a few failures in a row.
// Client-side refusals (404, 401) and answers that are not an event stream
// end it at once.
//
// # Submitting safely
//
// With an idempotency key the server answers a repeated submit with the
// first job, so [Client.Submit] then resends a request whose answer was
// lost to a dropped connection; the `easel imagine` command always sends
// one.
//
// # The imagine command
//
// [RunImagine] is `easel imagine [flags] "prompt"`: it submits, shows the
// queue position and a progress bar with the server's ETA on stderr, writes
// the images and prints their paths on stdout. Canceling its context (Ctrl-C)
// cancels the job on the server. It returns an exit code instead of
// exiting and keeps no global state, so tests call it directly.
package apiclient
