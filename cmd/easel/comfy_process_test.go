package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png" // DecodeConfig of the results
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// TestComfyUIBackendProcess runs `easel fakecomfy` and an `easel worker`
// configured with kind comfyui through EASEL_BACKENDS, as an owner would:
// a job goes queued → started → progress (with previews) → succeeded.
func TestComfyUIBackendProcess(t *testing.T) {
	t.Parallel()
	rcfg := redistest.Config(t)
	fakeAddr := freeAddr(t)
	startProc(t, nil, "fakecomfy", "--addr", fakeAddr, "--step", "20ms").waitListening(t, fakeAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := storage.Open(ctx, rcfg, zap.NewNop())
	require.NoError(t, err)
	defer store.Close()
	startProc(t, []string{
		"EASEL_REDIS_URL=" + rcfg.URL,
		"EASEL_REDIS_PREFIX=" + rcfg.Prefix,
		"EASEL_BACKENDS=[{name: c, kind: comfyui, url: \"http://" + fakeAddr + "\", timeouts: {stall: 10s}}]",
		sharedImages(t, store),
	}, "worker")
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	payload, _ := json.Marshal(map[string]any{"prompt": "a lighthouse", "width": 96, "height": 64, "steps": 5, "count": 2,
		"seed": -1, "sampler": "Euler a"})
	res, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: payload, Images: 2})
	require.NoError(t, err)

	var types []scheduler.EventType
	previews := 0
	require.NoError(t, sched.Follow(ctx, res.ID, 0, func(e scheduler.Event) error {
		if len(types) == 0 || types[len(types)-1] != e.Type {
			types = append(types, e.Type)
		}
		if e.Preview != "" {
			previews++
		}
		return nil
	}))
	require.Equal(t, []scheduler.EventType{"queued", "started", "progress", "succeeded"}, types)
	require.Positive(t, previews)
	j, err := sched.Get(ctx, res.ID)
	require.NoError(t, err)
	require.Equal(t, 2, j.Images)
	require.Len(t, j.Seeds, 2)
	require.Equal(t, j.Seeds[0], j.Seeds[1], "a ComfyUI batch shares its seed, reported as run")
	require.GreaterOrEqual(t, j.Seeds[0], int64(0))
	img, err := sched.Image(ctx, j, 1)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(img), "\x89PNG"))
}

// TestServeWithComfyUIProcess is the README's ComfyUI set-up as processes:
// `easel fakecomfy` and `easel serve` with EASEL_BACKENDS of kind comfyui,
// driven over the HTTP API only: GET /v1/models lists ComfyUI's models,
// samplers, schedulers and LoRAs; a job streams progress with previews (a
// live one is served) and ends with PNGs of the asked size; cancelling a
// running job interrupts its prompt; cancelling one that waits in
// ComfyUI's queue behind another client's prompt deletes it from the queue
// and the other client's prompt runs to its end.
func TestServeWithComfyUIProcess(t *testing.T) {
	t.Parallel()
	rcfg := redistest.Config(t)
	fake := "http://" + freeAddr(t)
	startProc(t, nil, "fakecomfy", "--addr", strings.TrimPrefix(fake, "http://"), "--step", "100ms").
		waitListening(t, strings.TrimPrefix(fake, "http://"))
	comfy := watchComfy(t, fake)
	addr := freeAddr(t)
	base := "http://" + addr
	serve := startProc(t, []string{
		"EASEL_REDIS_URL=" + rcfg.URL, "EASEL_REDIS_PREFIX=" + rcfg.Prefix, "EASEL_HTTP_ADDR=" + addr,
		"EASEL_DATA_DIR=" + t.TempDir(), sharedImages(t, nil),
		"EASEL_BACKENDS=[{name: c, kind: comfyui, url: \"" + fake + "\"}]",
	}, "serve")
	serve.waitListening(t, addr)

	// A job: progress with previews, then two 96×64 PNGs. It names a
	// checkpoint, so it runs only on a slot that advertised it; the worker
	// publishes its backend's catalog before the slot's capabilities
	// (worker.advertiseOne), so once it has run the catalog is in Redis.
	a := submitJSON(t, base, `{"prompt":"a lighthouse","width":96,"height":64,"steps":4,"count":2,`+
		`"model":"sd_xl_base_1.0.safetensors","sampler":"DPM++ 2M Karras","loras":[{"name":"detail","weight":0.5}]}`)
	evs := followJob(t, base, a, nil)
	require.Equal(t, "succeeded", evs[len(evs)-1].Type)

	// The catalog is ComfyUI's.
	var cat struct {
		Models []struct {
			Name     string   `json:"name"`
			Backends []string `json:"backends"`
		} `json:"models"`
		Samplers, Schedulers, LoRAs, Backends []string
	}
	getJSON(t, base+"/v1/models", &cat)
	require.Equal(t, []string{"c"}, cat.Backends, "GET /v1/models does not list the comfyui backend\n%s", serve.output())
	require.NotEmpty(t, cat.Models)
	require.Contains(t, cat.Samplers, "dpmpp_2m")
	require.Contains(t, cat.Schedulers, "karras")
	require.Contains(t, cat.LoRAs, "detail.safetensors")

	previews := 0
	for _, e := range evs {
		if e.Type == "progress" && e.Preview != "" {
			previews++
		}
	}
	require.Positive(t, previews, "previews from ComfyUI's binary frames")
	for n := range 2 {
		resp, err := http.Get(fmt.Sprintf("%s/v1/jobs/%s/images/%d", base, a, n))
		require.NoError(t, err)
		cfg, format, err := image.DecodeConfig(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, "png", format)
		require.Equal(t, [2]int{96, 64}, [2]int{cfg.Width, cfg.Height})
	}
	graph := fakeGraph(t, fake, "a lighthouse")
	require.Contains(t, graph, `"sampler_name":"dpmpp_2m"`)
	require.Contains(t, graph, `"scheduler":"karras"`)
	require.Contains(t, graph, `"lora_name":"detail.safetensors"`)

	// Cancel while running: a live preview is served, then the prompt is
	// interrupted and the job ends canceled.
	b := submitJSON(t, base, `{"prompt":"a long one","width":96,"height":64,"steps":100}`)
	served := false
	evs = followJob(t, base, b, func(e jobEvent) bool {
		if e.Type != "progress" || e.Preview == "" {
			return false
		}
		// The latest preview replaces the one before: a slow fetch
		// may miss it, so try again on the next one.
		resp, err := http.Get(base + "/v1/jobs/" + b + "/previews/" + e.Preview)
		require.NoError(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		require.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
		served = true
		cancelJob(t, base, b)
		return true
	})
	require.True(t, served)
	require.Equal(t, "canceled", evs[len(evs)-1].Type)
	comfy.await(t, "the running prompt interrupted", func() bool {
		return strings.Contains(fakeHistory(t, fake, "a long one"), "execution_interrupted")
	})

	// Cancel while waiting in ComfyUI's queue behind another client's prompt.
	graph = fakeGraph(t, fake, "a lighthouse")
	require.Contains(t, graph, `"steps":4`)
	other := strings.Replace(strings.Replace(graph, "a lighthouse", "someone else's", 1), `"steps":4`, `"steps":60`, 1)
	resp, err := http.Post(fake+"/prompt", "application/json",
		strings.NewReader(`{"client_id":"someone-else","prompt":`+other+`}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	c := submitJSON(t, base, `{"prompt":"behind someone","width":96,"height":64,"steps":4}`)
	comfy.await(t, "our prompt queued behind the other", func() bool {
		return strings.Contains(fakeQueue(t, fake).Pending, "behind someone")
	})
	cancelJob(t, base, c)
	evs = followJob(t, base, c, nil)
	require.Equal(t, "canceled", evs[len(evs)-1].Type)
	q := fakeQueue(t, fake)
	require.NotContains(t, q.Pending, "behind someone", "deleted from ComfyUI's queue")
	comfy.await(t, "the other client's prompt run to its end", func() bool {
		return strings.Contains(fakeHistory(t, fake, "someone else's"), `"status_str":"success"`)
	})
	require.NotContains(t, fakeHistory(t, fake, "someone else's"), "execution_interrupted")
	require.Empty(t, fakeHistory(t, fake, "behind someone"), "our canceled prompt never ran")
}

// comfyWatch is a websocket client of the fake ComfyUI, as a web UI tab
// is: every message the fake sends it (the status broadcast of
// ComfyUI's server.py on each change of the queue, a broadcast
// execution_interrupted) wakes await, which then reads the fake's HTTP
// state once.
type comfyWatch struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced by every message
	err     error         // the read that ended the connection
}

func watchComfy(t *testing.T, fake string) *comfyWatch {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(fake, "http")+"/ws?clientId=test-watch", nil)
	require.NoError(t, err)
	resp.Body.Close()
	w := &comfyWatch{changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, _, err := conn.ReadMessage()
			w.mu.Lock()
			close(w.changed)
			if err != nil {
				w.err = err
				w.mu.Unlock()
				return
			}
			w.changed = make(chan struct{})
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = conn.Close(); <-done })
	return w
}

// await blocks until cond holds, checking it again at each message from
// the fake; it fails the test when the connection ends or after a
// generous 30 s.
func (w *comfyWatch) await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ch, err := w.changed, w.err
		w.mu.Unlock()
		if cond() {
			return
		}
		require.NoError(t, err, "the fake's websocket closed before %s", what)
		select {
		case <-ch:
		case <-deadline.C:
			require.FailNow(t, "no signal", "%s: not within 30 s", what)
		}
	}
}

type jobEvent struct {
	Type    string `json:"type"`
	Preview string `json:"preview"`
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

func submitJSON(t *testing.T, base, body string) string {
	t.Helper()
	resp, err := http.Post(base+"/v1/jobs", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var r struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	return r.ID
}

func cancelJob(t *testing.T, base, id string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, base+"/v1/jobs/"+id, nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// followJob reads a job's Server-Sent Events to its end; each calls on
// every event until it returns true.
func followJob(t *testing.T, base, id string, each func(jobEvent) bool) []jobEvent {
	t.Helper()
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Get(base + "/v1/jobs/" + id + "/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var evs []jobEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e jobEvent
		require.NoError(t, json.Unmarshal([]byte(data), &e))
		evs = append(evs, e)
		if each != nil && each(e) {
			each = nil
		}
		if e.Type == "succeeded" || e.Type == "failed" || e.Type == "canceled" {
			return evs
		}
	}
	t.Fatalf("job %s: events ended without an outcome: %v (%v)", id, evs, sc.Err())
	return nil
}

// fakeHistory returns the fake ComfyUI's history entry (JSON) of the prompt
// whose text contains text, or "".
func fakeHistory(t *testing.T, fake, text string) string {
	t.Helper()
	var h map[string]json.RawMessage
	getJSON(t, fake+"/history", &h)
	for _, e := range h {
		if strings.Contains(string(e), text) {
			return string(e)
		}
	}
	return ""
}

// fakeGraph returns the API-format graph (JSON) of the fake's history
// entry for text: history's prompt is [number, id, graph, extra, outputs].
func fakeGraph(t *testing.T, fake, text string) string {
	t.Helper()
	var e struct {
		Prompt []json.RawMessage `json:"prompt"`
	}
	require.NoError(t, json.Unmarshal([]byte(fakeHistory(t, fake, text)), &e))
	require.Greater(t, len(e.Prompt), 2)
	return string(e.Prompt[2])
}

// fakeQueue returns GET /queue's running and pending entries as JSON text.
func fakeQueue(t *testing.T, fake string) (q struct{ Running, Pending string }) {
	t.Helper()
	var raw struct {
		Running json.RawMessage `json:"queue_running"`
		Pending json.RawMessage `json:"queue_pending"`
	}
	getJSON(t, fake+"/queue", &raw)
	return struct{ Running, Pending string }{string(raw.Running), string(raw.Pending)}
}
