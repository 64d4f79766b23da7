package comfytest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/easelbot/easel/sdclient/comfyui/comfytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}

type bundle struct {
	ctx  context.Context
	fake *comfytest.Server
	url  string
}

func setup(t *testing.T, cfg comfytest.Config) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	fake := comfytest.New(cfg)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(func() { fake.Close(); srv.Close() })
	return &bundle{ctx: ctx, fake: fake, url: srv.URL}
}

func graph(text string, steps int) map[string]any {
	return map[string]any{
		"4": map[string]any{"class_type": "CheckpointLoaderSimple", "inputs": map[string]any{"ckpt_name": "sd_xl_base_1.0.safetensors"}},
		"6": map[string]any{"class_type": "CLIPTextEncode", "inputs": map[string]any{"text": text, "clip": []any{"4", 1}}},
		"5": map[string]any{"class_type": "EmptyLatentImage", "inputs": map[string]any{"width": 64, "height": 32, "batch_size": 1}},
		"3": map[string]any{"class_type": "KSampler", "inputs": map[string]any{"seed": 1, "steps": steps, "cfg": 7,
			"sampler_name": "euler", "scheduler": "normal", "denoise": 1, "model": []any{"4", 0}, "positive": []any{"6", 0},
			"negative": []any{"6", 0}, "latent_image": []any{"5", 0}}},
		"8": map[string]any{"class_type": "VAEDecode", "inputs": map[string]any{"samples": []any{"3", 0}, "vae": []any{"4", 2}}},
		"9": map[string]any{"class_type": "SaveImage", "inputs": map[string]any{"filename_prefix": "t", "images": []any{"8", 0}}},
	}
}

func (b *bundle) post(t *testing.T, path string, body any) (int, []byte) {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	resp, err := http.Post(b.url+path, "application/json", bytes.NewReader(raw))
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

func (b *bundle) get(t *testing.T, path string, out any) int {
	t.Helper()
	resp, err := http.Get(b.url + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

type msg struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
	bin  []byte
}

// listen opens /ws for clientID and returns a channel of its messages.
func (b *bundle) listen(t *testing.T, clientID string) <-chan msg {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.DialContext(b.ctx, "ws"+strings.TrimPrefix(b.url, "http")+"/ws?clientId="+clientID, nil)
	require.NoError(t, err)
	ch := make(chan msg, 1024)
	go func() {
		defer close(ch)
		for {
			mt, raw, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var m msg
			if mt == websocket.BinaryMessage {
				m.Type, m.bin = "binary", raw
			} else if json.Unmarshal(raw, &m) != nil {
				continue
			}
			ch <- m
		}
	}()
	t.Cleanup(func() { conn.Close() })
	first := <-ch
	require.Equal(t, "status", first.Type, "server.py sends status on connect")
	require.Equal(t, clientID, first.Data["sid"])
	return ch
}

// until reads messages up to the end of promptID ("executing" node null).
func until(t *testing.T, ch <-chan msg, promptID string) []msg {
	t.Helper()
	var out []msg
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			require.True(t, ok, "socket closed")
			out = append(out, m)
			if m.Type == "executing" && m.Data["node"] == nil && m.Data["prompt_id"] == promptID {
				return out
			}
		case <-timeout:
			t.Fatal("prompt did not end")
		}
	}
}

func types(ms []msg) []string {
	var out []string
	for _, m := range ms {
		if len(out) == 0 || out[len(out)-1] != m.Type {
			out = append(out, m.Type)
		}
	}
	return out
}

func TestRunSendsTheRealMessageSequenceToTheSubmitterOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{})
	mine, theirs := b.listen(t, "me"), b.listen(t, "other")
	code, raw := b.post(t, "/prompt", map[string]any{"prompt": graph("a fox", 3), "client_id": "me"})
	require.Equal(t, http.StatusOK, code, string(raw))
	var ans struct {
		PromptID   string         `json:"prompt_id"`
		Number     int            `json:"number"`
		NodeErrors map[string]any `json:"node_errors"`
	}
	require.NoError(t, json.Unmarshal(raw, &ans))
	require.NotEmpty(t, ans.PromptID)
	require.Empty(t, ans.NodeErrors)

	got := until(t, mine, ans.PromptID)
	require.Equal(t, []string{"status", "execution_start", "execution_cached", "executing", "progress", "binary",
		"progress", "binary", "progress", "binary", "executing", "executed", "execution_success", "executing"}, types(got))
	for _, m := range got {
		if m.Type == "binary" {
			require.Equal(t, uint32(1), binary.BigEndian.Uint32(m.bin), "PREVIEW_IMAGE")
			require.Equal(t, uint32(1), binary.BigEndian.Uint32(m.bin[4:]), "JPEG")
			require.Equal(t, []byte{0xFF, 0xD8, 0xFF}, m.bin[8:11])
		}
	}
	// The other client saw queue status only, up to the status broadcast
	// that follows the end (queue_remaining 0).
	for {
		m := <-theirs
		require.Equal(t, "status", m.Type)
		if m.Data["status"].(map[string]any)["exec_info"].(map[string]any)["queue_remaining"] == float64(0) {
			break
		}
	}

	var hist map[string]struct {
		Outputs map[string]struct {
			Images []struct{ Filename, Subfolder, Type string } `json:"images"`
		} `json:"outputs"`
		Status struct {
			StatusStr string `json:"status_str"`
			Completed bool   `json:"completed"`
		} `json:"status"`
	}
	require.Equal(t, http.StatusOK, b.get(t, "/history/"+ans.PromptID, &hist))
	e := hist[ans.PromptID]
	require.Equal(t, "success", e.Status.StatusStr)
	require.True(t, e.Status.Completed)
	im := e.Outputs["9"].Images[0]
	require.Equal(t, "output", im.Type)
	resp, err := http.Get(b.url + "/api/view?filename=" + im.Filename + "&subfolder=&type=output")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	png, _ := io.ReadAll(resp.Body)
	require.Equal(t, "\x89PNG", string(png[:4]))
}

func TestIdenticalGraphIsCached(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{})
	ws := b.listen(t, "me")
	_, raw := b.post(t, "/prompt", map[string]any{"prompt": graph("same", 2), "client_id": "me"})
	var a struct {
		PromptID string `json:"prompt_id"`
	}
	require.NoError(t, json.Unmarshal(raw, &a))
	until(t, ws, a.PromptID)
	_, raw = b.post(t, "/prompt", map[string]any{"prompt": graph("same", 2), "client_id": "me"})
	require.NoError(t, json.Unmarshal(raw, &a))
	got := until(t, ws, a.PromptID)
	require.NotContains(t, types(got), "progress")
	require.Contains(t, types(got), "executed", "cached output nodes still report their images")
	for _, m := range got {
		if m.Type == "execution_cached" {
			require.ElementsMatch(t, []any{"3", "4", "5", "6", "8", "9"}, m.Data["nodes"])
		}
	}
}

func TestValidationErrorsHaveTheRealShape(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{})
	g := graph("x", 2)
	g["4"].(map[string]any)["inputs"].(map[string]any)["ckpt_name"] = "nope.safetensors"
	code, raw := b.post(t, "/prompt", map[string]any{"prompt": g})
	require.Equal(t, http.StatusBadRequest, code)
	var e struct {
		Error      struct{ Type, Message string } `json:"error"`
		NodeErrors map[string]struct {
			ClassType string `json:"class_type"`
			Errors    []struct {
				Type      string         `json:"type"`
				Details   string         `json:"details"`
				ExtraInfo map[string]any `json:"extra_info"`
			} `json:"errors"`
			DependentOutputs []string `json:"dependent_outputs"`
		} `json:"node_errors"`
	}
	require.NoError(t, json.Unmarshal(raw, &e))
	require.Equal(t, "prompt_outputs_failed_validation", e.Error.Type)
	ne := e.NodeErrors["4"]
	require.Equal(t, "CheckpointLoaderSimple", ne.ClassType)
	require.Equal(t, "value_not_in_list", ne.Errors[0].Type)
	require.Equal(t, "ckpt_name", ne.Errors[0].ExtraInfo["input_name"])
	require.Equal(t, []string{"9"}, ne.DependentOutputs)

	g = graph("x", 2)
	g["7"] = map[string]any{"class_type": "FancyCustomNode", "inputs": map[string]any{}}
	code, raw = b.post(t, "/prompt", map[string]any{"prompt": g})
	require.Equal(t, http.StatusBadRequest, code)
	require.NoError(t, json.Unmarshal(raw, &e))
	require.Equal(t, "invalid_prompt", e.Error.Type)
	require.Contains(t, e.Error.Message, "FancyCustomNode does not exist")

	code, raw = b.post(t, "/prompt", map[string]any{"prompt": map[string]any{"4": g["4"]}})
	require.Equal(t, http.StatusBadRequest, code)
	require.NoError(t, json.Unmarshal(raw, &e))
	require.Equal(t, "prompt_no_outputs", e.Error.Type)
	require.Empty(t, b.fake.Prompts(), "nothing queued")
}

func TestGlobalQueueDeleteAndInterrupt(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{})
	b.fake.StallAt(1)
	first, err := b.fake.SubmitAs("a", graph("first", 3))
	require.NoError(t, err)
	second, err := b.fake.SubmitAs("b", graph("second", 3))
	require.NoError(t, err)
	third, err := b.fake.SubmitAs("c", graph("third", 3))
	require.NoError(t, err)
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Running == first && s.Step == 1 }))

	var q struct {
		Running [][]json.RawMessage `json:"queue_running"`
		Pending [][]json.RawMessage `json:"queue_pending"`
	}
	require.Equal(t, http.StatusOK, b.get(t, "/queue", &q))
	require.Len(t, q.Running, 1)
	require.Len(t, q.Pending, 2)
	require.JSONEq(t, `"`+first+`"`, string(q.Running[0][1]))
	require.Contains(t, string(q.Running[0][3]), `"client_id":"a"`)

	// An interrupt naming a prompt that is not running does nothing.
	code, _ := b.post(t, "/interrupt", map[string]any{"prompt_id": second})
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, comfytest.Running, b.fake.Status(first))
	// Delete touches pending prompts only.
	code, _ = b.post(t, "/queue", map[string]any{"delete": []string{second, first}})
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, comfytest.Deleted, b.fake.Status(second))
	require.Equal(t, comfytest.Running, b.fake.Status(first))
	// No prompt_id: server-wide, whoever runs.
	code, _ = b.post(t, "/interrupt", map[string]any{})
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool {
		return s.Status[first] == comfytest.Interrupted && s.Status[third] == comfytest.Success
	}))
	require.Equal(t, []comfytest.Interrupt{{Requested: second}, {Stopped: first}}, b.fake.Interrupts())
}

func TestUploadModelsObjectInfoAndStats(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{})
	upload := func() string {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("image", "src.png")
		_, _ = fw.Write([]byte("\x89PNG\r\n\x1a\n"))
		require.NoError(t, mw.Close())
		resp, err := http.Post(b.url+"/upload/image", mw.FormDataContentType(), &body)
		require.NoError(t, err)
		defer resp.Body.Close()
		var ans struct{ Name, Subfolder, Type string }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&ans))
		require.Equal(t, "input", ans.Type)
		return ans.Name
	}
	require.Equal(t, "src.png", upload())
	require.Equal(t, "src (1).png", upload(), "without overwrite a second upload is renamed")

	var ckpts []string
	require.Equal(t, http.StatusOK, b.get(t, "/models/checkpoints", &ckpts))
	require.Contains(t, ckpts, "sd_xl_base_1.0.safetensors")
	require.Equal(t, http.StatusNotFound, b.get(t, "/models/nonsense", nil))
	var info map[string]struct {
		Input struct {
			Required map[string][]json.RawMessage `json:"required"`
		} `json:"input"`
	}
	require.Equal(t, http.StatusOK, b.get(t, "/object_info/KSampler", &info))
	var samplers []string
	require.NoError(t, json.Unmarshal(info["KSampler"].Input.Required["sampler_name"][0], &samplers))
	require.Contains(t, samplers, "dpmpp_2m")
	var none map[string]any
	require.Equal(t, http.StatusOK, b.get(t, "/object_info/Nope", &none))
	require.Empty(t, none)
	var stats map[string]any
	require.Equal(t, http.StatusOK, b.get(t, "/system_stats", &stats))
	require.Contains(t, stats, "devices")
}
