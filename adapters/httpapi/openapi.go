package httpapi

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/easelbot/easel/commands"
)

// openapiDoc is the OpenAPI 3.1 document of the HTTP API, built once.
var openapiDoc = sync.OnceValue(func() []byte {
	b, err := json.MarshalIndent(openapiSpec(), "", "  ")
	if err != nil {
		panic(err) // a static document: cannot fail
	}
	return b
})

// openapi serves /openapi.json (public: it holds no secrets).
func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openapiDoc())
}

type obj = map[string]any

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func jsonBody(schema obj) obj { return obj{"content": obj{"application/json": obj{"schema": schema}}} }

func resp(desc string, schema obj) obj {
	r := obj{"description": desc}
	if schema != nil {
		r["content"] = obj{"application/json": obj{"schema": schema}}
	}
	return r
}

func param(name, in, desc string, schema obj) obj {
	return obj{"name": name, "in": in, "required": in == "path", "description": desc, "schema": schema}
}

var (
	str     = obj{"type": "string"}
	integer = obj{"type": "integer"}
	number  = obj{"type": "number"}
	boolean = obj{"type": "boolean"}
)

// op describes one operation; errs adds the shared error answers.
func op(summary string, params []obj, body obj, ok string, okResp obj, errs ...string) obj {
	o := obj{"summary": summary, "responses": obj{ok: okResp}}
	if params != nil {
		o["parameters"] = params
	}
	if body != nil {
		o["requestBody"] = body
	}
	for _, e := range errs {
		o["responses"].(obj)[e] = ref2("Error" + e)
	}
	return o
}

func ref2(name string) obj { return obj{"$ref": "#/components/responses/" + name} }

func openapiSpec() obj {
	idP := param("id", "path", "job id", str)
	jobAccepted := resp("queued", ref("Accepted"))
	page := []obj{param("limit", "query", "page size, 1-100", integer), param("cursor", "query", "next_cursor of the previous page", str),
		param("user", "query", "only this user's jobs", str)}
	image := obj{"description": "the image", "content": obj{"image/png": obj{"schema": obj{"type": "string", "format": "binary"}},
		"image/jpeg": obj{"schema": obj{"type": "string", "format": "binary"}}, "image/webp": obj{"schema": obj{"type": "string", "format": "binary"}}}}
	events := obj{}
	for _, e := range []struct{ name, desc string }{
		{"queued", "waiting: position, eta_s"},
		{"position", "still waiting, and the place in line or the reason changed: position, eta_s (ceil(position / worker slots) × the average run time), or waiting while every GPU backend is down; at most one a second per job"},
		{"started", "running: backend, attempt"},
		{"progress", "step, steps, fraction, eta_s, preview (blob name for /previews/{name})"},
		{"retrying", "attempt, after_s, reason"}, {"succeeded", "images, seeds, info (terminal)"},
		{"failed", "code, message (terminal)"}, {"canceled", "by (terminal)"},
		{"error", "the stream broke: message (not a job event; reconnect with Last-Event-ID)"},
	} {
		events[e.name] = obj{"description": e.desc, "allOf": []obj{ref("Event")}}
	}
	paths := obj{
		"/v1/jobs": obj{
			"post": op("Queue an image job", []obj{param("Idempotency-Key", "header", "repeats with the same key return the first job", str)},
				jsonBody(ref("JobRequest")), "202", jobAccepted, "400", "401", "403", "429", "503"),
			"get": op("History: finished jobs, newest first (images kept for storage.image_ttl)", page, nil, "200",
				resp("a page", obj{"type": "object", "properties": obj{"jobs": obj{"type": "array", "items": ref("Job")}, "next_cursor": str}}), "400", "401"),
		},
		"/v1/jobs/{id}": obj{
			"get":    op("A job", []obj{idP}, nil, "200", resp("the job", ref("Job")), "401", "404"),
			"delete": op("Cancel a job", []obj{idP}, nil, "200", resp("the canceled job", ref("Job")), "401", "404", "409"),
		},
		"/v1/jobs/{id}/events": obj{"get": op("The job's events as Server-Sent Events (id: seq, event: type, data: Event JSON); resumes after Last-Event-ID",
			[]obj{idP, param("Last-Event-ID", "header", "resume after this sequence number", str)}, nil, "200",
			obj{"description": "event stream; event types in x-sse-events", "content": obj{"text/event-stream": obj{"schema": str}}, "x-sse-events": events}, "401", "404")},
		"/v1/jobs/{id}/images/{n}": obj{"get": imageResponses(op("Result image n (0-based), or with ?size=thumb its JPEG thumbnail (256 px on the long side, made on first ask and kept beside the image; never a redirect)",
			[]obj{idP, param("n", "path", "image number, 0-based", integer), param("size", "query", "full (default) or thumb", obj{"type": "string", "enum": []string{"full", "thumb"}})},
			nil, "200", image, "400", "401", "404"), true)},
		"/v1/jobs/{id}/images/{n}/upscale": obj{"post": op("Queue a 2× upscale of image n", []obj{idP, param("n", "path", "image number, 0-based", integer),
			param("Idempotency-Key", "header", "repeats with the same key return the first job", str)}, nil, "202", jobAccepted, "400", "401", "404", "429")},
		"/v1/jobs/{id}/previews/{name}": obj{"get": imageResponses(op("A preview image named by a progress event", []obj{idP, param("name", "path", "preview name", str)}, nil, "200", image, "401", "404"), false)},
		"/v1/queue": obj{"get": op("The tenant's active jobs with positions and ETAs", page, nil, "200",
			resp("a page", obj{"type": "object", "properties": obj{"jobs": obj{"type": "array", "items": ref("Job")}, "next_cursor": str}}), "400", "401")},
		"/v1/usage":  obj{"get": op("Usage and limits of a user", []obj{param("user", "query", "the user (default api)", str)}, nil, "200", resp("usage", obj{"type": "object"}), "401")},
		"/v1/models": obj{"get": op("Models, samplers, schedulers, LoRAs and upscalers of the healthy backends", nil, nil, "200", resp("the catalog", ref("Catalog")), "401")},
		"/v1/admin/policy": obj{
			"get":   op("The tenant's policy and its users' overrides (admin)", nil, nil, "200", resp("policy", obj{"type": "object"}), "401", "403"),
			"patch": op("Set one policy field for the tenant or a user (admin)", nil, jsonBody(ref("PolicyPatch")), "200", resp("the new policy", obj{"type": "object"}), "400", "401", "403"),
		},
		"/v1/admin/defaults": obj{
			"get": op("The tenant's server defaults, and a channel's with ?channel= (admin)", []obj{param("channel", "query", "a channel id", str)}, nil,
				"200", resp("defaults", obj{"type": "object"}), "401", "403"),
			"patch": op("Set one field of the server's (or a channel's) defaults; empty value clears it (admin)", nil,
				jsonBody(obj{"type": "object", "required": []string{"field"}, "additionalProperties": false, "properties": obj{
					"field": obj{"type": "string", "enum": commands.DefaultFields}, "value": str, "channel": str}}),
				"200", resp("the new defaults", obj{"type": "object"}), "400", "401", "403"),
		},
		"/v1/admin/usage":              obj{"get": op("Top users by usage (admin)", nil, nil, "200", resp("top users", obj{"type": "object"}), "401", "403")},
		"/v1/admin/users/{user}/reset": obj{"post": op("Reset a user's usage (admin)", []obj{param("user", "path", "user", str)}, nil, "200", resp("reset", obj{"type": "object"}), "401", "403")},
		"/v1/admin/users/{user}/block": obj{"put": op("Block a user (admin)", []obj{param("user", "path", "user", str)}, nil, "200", resp("blocked", obj{"type": "object"}), "401", "403"), "delete": op("Unblock a user (admin)", []obj{param("user", "path", "user", str)}, nil, "200", resp("unblocked", obj{"type": "object"}), "401", "403")},
		"/v1/admin/overview": obj{"get": op("The dashboard's snapshot of the tenant: users' pending and running jobs with their entitled shares, active jobs with backend and progress, served and entitled shares, backends and models, recent failures and images, dead letters, policy, usage, refusals by reason over every instance (admin)",
			nil, nil, "200", resp("overview", obj{"type": "object"}), "401", "403")},
		"/v1/admin/overview/events": obj{"get": op("The overview as Server-Sent Events: an \"overview\" event at once and after each change of the tenant's jobs and each refusal of its submits (admin)",
			nil, nil, "200", obj{"description": "event stream", "content": obj{"text/event-stream": obj{"schema": str}},
				"x-sse-events": obj{"overview": obj{"description": "the GET /v1/admin/overview body"}, "error": obj{"description": "message; the stream ends"}}}, "401", "403")},
		"/v1/admin/dead/{entry}/retry": obj{"post": op("Queue a dead letter's request again (a new job) and remove the letter (admin)", []obj{param("entry", "path", "dead-letter entry id", str)},
			nil, "202", jobAccepted, "401", "403", "404", "429")},
		"/v1/admin/dead/{entry}": obj{"delete": op("Remove a dead letter (admin)", []obj{param("entry", "path", "dead-letter entry id", str)}, nil, "200", resp("deleted", obj{"type": "object"}), "401", "403", "404")},
		"/admin":                 obj{"get": op("The dashboard page", nil, nil, "200", obj{"description": "HTML", "content": obj{"text/html": obj{"schema": str}}}, "403")},
		"/healthz":               obj{"get": op("Liveness", nil, nil, "200", resp("ok", obj{"type": "object"}))},
		"/readyz":                obj{"get": op("Readiness (Redis and adapters)", nil, nil, "200", resp("ready", obj{"type": "object"}), "503")},
		"/metrics":               obj{"get": op("Prometheus metrics (when enabled)", nil, nil, "200", obj{"description": "text exposition", "content": obj{"text/plain": obj{"schema": str}}})},
		"/openapi.json":          obj{"get": op("This document", nil, nil, "200", resp("OpenAPI 3.1", obj{"type": "object"}))},
		"/":                      obj{"get": op("The playground page", nil, nil, "200", obj{"description": "HTML", "content": obj{"text/html": obj{"schema": str}}}, "403")},
		"/web/{file}":            obj{"get": op("The pages' scripts and styles", []obj{param("file", "path", "file name", str)}, nil, "200", obj{"description": "JS or CSS"}, "404")},
	}
	errorResp := func(desc string) obj { return resp(desc, ref("Error")) }
	return obj{
		"openapi": "3.1.0",
		"info": obj{"title": "Easel HTTP API", "version": "1",
			"description": "Queue Stable Diffusion jobs, follow them over Server-Sent Events, fetch images. Authenticate with Authorization: Bearer <key>; with no keys configured only loopback clients are served."},
		"security": []obj{{"bearer": []string{}}},
		"paths":    paths,
		"components": obj{
			"securitySchemes": obj{"bearer": obj{"type": "http", "scheme": "bearer"}},
			"responses": obj{
				"Error400": errorResp("invalid request: error.field names the field"), "Error401": errorResp("no valid API key"),
				"Error403": errorResp("forbidden"), "Error404": errorResp("not found"), "Error409": errorResp("the job already finished"),
				"Error429": errorResp("refused (quota, rate, concurrency): error.code is the reason; Retry-After"),
				"Error503": errorResp("Redis unavailable; Retry-After"),
			},
			"schemas": obj{
				"Error": obj{"type": "object", "required": []string{"error"}, "properties": obj{"error": obj{"type": "object", "required": []string{"code", "message"},
					"properties": obj{"code": str, "message": str, "field": str, "retry_after_s": integer}}}},
				"JobRequest": obj{"type": "object", "required": []string{"prompt"}, "additionalProperties": false, "properties": obj{
					"prompt": str, "negative_prompt": str, "width": integer, "height": integer, "steps": integer, "cfg_scale": number,
					"seed": obj{"type": "integer", "description": "-1 or absent for random"}, "sampler": str, "scheduler": str, "model": str,
					"count": integer, "variation_strength": number, "denoising_strength": number,
					"distilled_cfg_scale": obj{"type": "number", "description": "guidance of Flux-style models (Forge distilled_cfg_scale, ComfyUI FluxGuidance); absent for the backend's 3.5"},
					"init_image":          obj{"type": "string", "description": "http(s) URL, data: URL or base64"},
					"loras":               obj{"type": "array", "items": obj{"type": "object", "required": []string{"name"}, "properties": obj{"name": str, "weight": number}}},
					"user":                str, "callback_url": str}},
				"Accepted": obj{"type": "object", "properties": obj{"id": str, "status": str, "position": integer, "relaxed": boolean,
					"links": obj{"type": "object", "properties": obj{"self": str, "events": str}}}},
				"Job": obj{"type": "object", "properties": obj{"id": str, "status": obj{"enum": []string{"queued", "dispatched", "running", "succeeded", "failed", "canceled"}},
					"position": integer, "eta_s": number, "progress": number, "step": integer, "steps": integer,
					"created_at": obj{"type": []string{"string", "null"}, "format": "date-time"}, "started_at": obj{"type": []string{"string", "null"}, "format": "date-time"},
					"finished_at": obj{"type": []string{"string", "null"}, "format": "date-time"},
					"error":       obj{"type": []string{"object", "null"}, "properties": obj{"code": str, "message": str}},
					"images": obj{"type": "array", "items": obj{"type": "object", "properties": obj{"url": str, "thumb_url": obj{"type": "string", "description": "url?size=thumb: a JPEG thumbnail, 256 px on the long side"}, "seed": integer,
						"subseed": obj{"type": "integer", "description": "the variation subseed; absent unless the job was a variation"}}}},
					"request": obj{"type": "object"}, "user": str, "attempt": integer, "waiting": ref("Waiting")}},
				"Waiting": obj{"type": "object", "description": "why a queued job cannot start: no worker slot is free or busy and these backends are down",
					"properties": obj{"message": str, "backends": obj{"type": "array", "items": obj{"type": "object",
						"properties": obj{"name": str, "since": obj{"type": "string", "format": "date-time"}}}}}},
				"Event": obj{"type": "object", "properties": obj{"type": str, "job_id": str, "tenant": str, "seq": integer, "time": obj{"type": "string", "format": "date-time"},
					"position": integer, "backend": str, "attempt": integer, "step": integer, "steps": integer, "fraction": number, "eta_s": number,
					"preview": str, "after_s": number, "reason": str, "images": integer, "seeds": obj{"type": "array", "items": integer},
					"subseeds": obj{"type": "array", "items": integer, "description": "a variation's subseeds (succeeded)"},
					"info":     str, "code": str, "message": str, "by": str, "waiting": ref("Waiting")}},
				"Catalog": obj{"type": "object", "properties": obj{"models": obj{"type": "array", "items": obj{"type": "object",
					"properties": obj{"name": str, "backends": obj{"type": "array", "items": str}, "loaded_on": obj{"type": "array", "items": str}}}},
					"samplers": obj{"type": "array", "items": str}, "schedulers": obj{"type": "array", "items": str},
					"loras": obj{"type": "array", "items": str}, "upscalers": obj{"type": "array", "items": str}, "backends": obj{"type": "array", "items": str}}},
				"PolicyPatch": obj{"type": "object", "required": []string{"field", "value"}, "additionalProperties": false,
					"properties": obj{"field": str, "value": str, "user": obj{"type": "string", "description": "a user's override; absent for the tenant"}}},
			},
		},
	}
}
