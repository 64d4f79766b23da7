package comfyui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/easelbot/easel/sdclient"
)

// newID returns a random UUID-like id (ComfyUI accepts any string for
// client and prompt ids).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// socket is one websocket to /ws with a goroutine reading it into events.
type socket struct {
	conn   *websocket.Conn
	events chan wsItem
	done   chan struct{} // closed when the reader has returned
	stop   chan struct{} // closed by close
	once   sync.Once
	first  *wsItem // the message dial waited for, not yet handed on
}

type wsItem struct {
	ev  event
	err error // the connection ended (nil ev)
}

// dial opens /ws?clientId=id. ComfyUI sends progress and previews only to
// the socket registered under the prompt's client_id (server.py
// websocket_handler, send_sync with sid), so the socket is opened before
// the prompt is posted.
func (c *Client) dial(ctx context.Context, clientID string) (*socket, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeouts.Connect)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: c.timeouts.Connect, ReadBufferSize: 64 << 10}
	if tr, ok := c.http.Transport.(*http.Transport); ok && tr != nil {
		d.TLSClientConfig = tr.TLSClientConfig
		d.Proxy = tr.Proxy
	}
	h := http.Header{}
	c.auth(h)
	conn, resp, err := d.DialContext(ctx, c.wsBase+"/ws?clientId="+url.QueryEscape(clientID), h)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close() // the handshake's answer; the websocket has its own stream
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("comfyui: websocket: %w", err)
		}
		if resp != nil {
			return nil, fmt.Errorf("comfyui: websocket: %w: handshake answered HTTP %d", sdclient.ErrUnavailable, resp.StatusCode)
		}
		return nil, fmt.Errorf("comfyui: websocket: %w: %w", sdclient.ErrUnavailable, err)
	}
	conn.SetReadLimit(maxMessage)
	s := &socket{conn: conn, events: make(chan wsItem, 64), done: make(chan struct{}), stop: make(chan struct{})}
	go s.read()
	// The server registers the socket under clientId only after the
	// handshake and then sends "status" (server.py websocket_handler); a
	// prompt posted before that could run with its messages sent nowhere.
	// The first message, or the connect timeout, is the sign it is ready.
	select {
	case it := <-s.events:
		s.first = &it
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			s.close()
			return nil, fmt.Errorf("comfyui: websocket: %w", ctx.Err())
		}
	}
	return s, nil
}

// next returns the socket's channel of events, replaying the first one
// dial consumed.
func (s *socket) next() <-chan wsItem {
	if s.first == nil {
		return s.events
	}
	ch := make(chan wsItem, 1)
	ch <- *s.first
	s.first = nil
	return ch
}

func (s *socket) read() {
	defer close(s.done)
	for {
		typ, raw, err := s.conn.ReadMessage()
		var it wsItem
		switch {
		case err != nil:
			it.err = err
		case typ == websocket.BinaryMessage:
			it.ev, err = decodeBinary(raw)
		default:
			it.ev, err = decodeText(raw)
		}
		if err != nil && it.err == nil {
			continue // a malformed message is skipped, not fatal
		}
		select {
		case s.events <- it:
		case <-s.stop:
			return
		}
		if it.err != nil {
			return
		}
	}
}

// close ends the socket and waits for its reader.
func (s *socket) close() {
	s.once.Do(func() {
		close(s.stop)
		_ = s.conn.Close()
	})
	<-s.done
}

// maxDrops is how many times in a row the websocket may drop (each
// reconnected at once) before the server counts as unavailable.
const maxDrops = 5

// phase is where our prompt is, for the phase timeouts.
type phase int

const (
	phaseQueued  phase = iota // waiting behind other prompts
	phaseLoading              // started, no sampling step yet (model load)
	phaseRunning              // sampling or decoding
)

// promptError is a 400 answer to POST /prompt (server.py post_prompt):
// {"error": {type, message, details}, "node_errors": {id: {errors:
// [{type, message, details, extra_info: {input_name}}], class_type}}}.
type promptError struct {
	Error      json.RawMessage `json:"error"`
	NodeErrors json.RawMessage `json:"node_errors"`
}

// describePromptError renders a 400 answer for the user: the error's
// message and each node's failing input, e.g. "Prompt outputs failed
// validation: node 4 (CheckpointLoaderSimple) ckpt_name: Value not in
// list: ckpt_name: 'x.safetensors' not in [...]".
func describePromptError(raw []byte) string {
	var pe promptError
	if err := json.Unmarshal(raw, &pe); err != nil {
		return truncate(strings.Join(strings.Fields(string(raw)), " "), 300)
	}
	var top struct {
		Message string `json:"message"`
		Details string `json:"details"`
	}
	msg := ""
	if json.Unmarshal(pe.Error, &msg) != nil {
		if json.Unmarshal(pe.Error, &top) == nil {
			msg = top.Message
			if top.Details != "" {
				msg += " (" + top.Details + ")"
			}
		}
	}
	var nodes map[string]struct {
		ClassType string `json:"class_type"`
		Errors    []struct {
			Message   string `json:"message"`
			Details   string `json:"details"`
			ExtraInfo struct {
				InputName string `json:"input_name"`
			} `json:"extra_info"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(pe.NodeErrors, &nodes)
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(nodes)) {
		n := nodes[id]
		for _, e := range n.Errors {
			s := fmt.Sprintf("node %s (%s)", id, n.ClassType)
			if e.ExtraInfo.InputName != "" {
				s += " input " + e.ExtraInfo.InputName
			}
			s += ": " + e.Message
			if e.Details != "" {
				s += ": " + e.Details
			}
			parts = append(parts, s)
		}
	}
	if msg == "" {
		msg = "prompt rejected"
	}
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, "; ")
	}
	return truncate(msg, 600)
}

// submit posts the graph under our client id and a prompt id we choose
// (server.py post_prompt honours a given "prompt_id"; older servers ignore
// it and the answer's id is the one used).
func (c *Client) submit(ctx context.Context, g Graph, clientID, promptID string) (string, error) {
	raw, err := c.postJSON(ctx, "/prompt", map[string]any{"prompt": g, "client_id": clientID, "prompt_id": promptID})
	var he *sdclient.HTTPError
	if errors.As(err, &he) && he.Status == http.StatusBadRequest {
		return "", &sdclient.PermanentError{Reason: "comfyui: " + describePromptError(raw), Err: he}
	}
	if err != nil {
		if ctx.Err() != nil {
			// It may have been queued before we gave up: take it back.
			_ = c.cancelPrompt(context.WithoutCancel(ctx), promptID)
		}
		return "", err
	}
	var ans struct {
		PromptID string `json:"prompt_id"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil || ans.PromptID == "" {
		return "", fmt.Errorf("comfyui: POST /prompt: answer has no prompt_id: %s", truncate(string(raw), 200))
	}
	return ans.PromptID, nil
}

// queueItem is one GET /queue entry: [number, prompt_id, prompt,
// extra_data, outputs_to_execute] (execution.py PromptQueue).
type queueState struct {
	Running [][]json.RawMessage `json:"queue_running"`
	Pending [][]json.RawMessage `json:"queue_pending"`
}

func inQueue(items [][]json.RawMessage, id string) bool {
	for _, it := range items {
		var pid string
		if len(it) > 1 && json.Unmarshal(it[1], &pid) == nil && pid == id {
			return true
		}
	}
	return false
}

// cancelPrompt stops our prompt and nothing else: a pending one is deleted
// from the queue (POST /queue {"delete"}); a running one is interrupted
// only after GET /queue shows it in queue_running, with {"prompt_id"} so a
// server that checks (server.py post_interrupt) never interrupts another
// client's prompt. A server too old to read prompt_id interrupts whatever
// runs, which the GET /queue check makes ours barring a race of a few
// milliseconds with its end.
func (c *Client) cancelPrompt(ctx context.Context, id string) error {
	var q queueState
	if err := c.getJSON(ctx, "/queue", &q); err != nil {
		return err
	}
	if inQueue(q.Pending, id) {
		if _, err := c.postJSON(ctx, "/queue", map[string]any{"delete": []string{id}}); err != nil {
			return err
		}
		// It may have started between the two calls.
		if err := c.getJSON(ctx, "/queue", &q); err != nil {
			return err
		}
	}
	if inQueue(q.Running, id) {
		if _, err := c.postJSON(ctx, "/interrupt", map[string]any{"prompt_id": id}); err != nil {
			return err
		}
	}
	return nil
}

// outputImage is one file a node wrote (nodes.py SaveImage/PreviewImage
// "ui" output).
type outputImage struct {
	Filename  string `json:"filename"`
	Subfolder string `json:"subfolder"`
	Type      string `json:"type"`
}

// historyEntry is one GET /history/{id} entry (execution.py
// PromptQueue.task_done): outputs by node, and status with the messages
// the run sent.
type historyEntry struct {
	Outputs map[string]struct {
		Images []outputImage `json:"images"`
	} `json:"outputs"`
	Status *struct {
		StatusStr string              `json:"status_str"`
		Completed bool                `json:"completed"`
		Messages  [][]json.RawMessage `json:"messages"`
	} `json:"status"`
}

// history returns our prompt's entry, or nil when it has none yet.
func (c *Client) history(ctx context.Context, id string) (*historyEntry, error) {
	var h map[string]*historyEntry
	if err := c.getJSON(ctx, "/history/"+url.PathEscape(id), &h); err != nil {
		return nil, err
	}
	return h[id], nil
}

// failure reads an unsuccessful entry's reason from its status messages.
func (h *historyEntry) failure() error {
	if h.Status == nil || h.Status.StatusStr != "error" {
		return nil
	}
	for _, m := range h.Status.Messages {
		if len(m) != 2 {
			continue
		}
		var name string
		if json.Unmarshal(m[0], &name) != nil {
			continue
		}
		raw, _ := json.Marshal(map[string]json.RawMessage{"type": json.RawMessage(strconv.Quote(name)), "data": m[1]})
		ev, err := decodeText(raw)
		if err != nil {
			continue
		}
		switch name {
		case "execution_error":
			return execError(ev)
		case "execution_interrupted":
			return errInterrupted
		}
	}
	return errors.New("comfyui: the prompt failed (history status error)")
}

// errInterrupted is our prompt stopped by an interrupt we did not send:
// someone else's server-wide POST /interrupt. A retry can run it.
var errInterrupted = errors.New("comfyui: the prompt was interrupted by another client of the server")

// execError turns an execution_error into an error. Out of memory may pass
// on another backend or later; anything else a node raised is a property
// of the request or the workflow.
func execError(ev event) error {
	err := fmt.Errorf("comfyui: node %s (%s) failed: %s: %s", ev.Node, ev.NodeType, ev.ExceptionType, truncate(strings.TrimSpace(ev.ExceptionMessage), 300))
	if strings.Contains(strings.ToLower(ev.ExceptionType+ev.ExceptionMessage), "out of memory") ||
		strings.Contains(ev.ExceptionType, "OutOfMemory") {
		return err
	}
	return &sdclient.PermanentError{Reason: err.Error()}
}

// images fetches the entry's images with GET /view: the "output" ones
// (SaveImage) in node id order, or the "temp" ones (PreviewImage) when the
// workflow saves none.
func (c *Client) images(ctx context.Context, h *historyEntry) ([]sdclient.Image, error) {
	ids := slices.SortedFunc(maps.Keys(h.Outputs), func(a, b string) int {
		x, errA := strconv.Atoi(a)
		y, errB := strconv.Atoi(b)
		if errA == nil && errB == nil {
			return x - y
		}
		return strings.Compare(a, b)
	})
	var pick []outputImage
	for _, want := range []string{"output", "temp"} {
		for _, id := range ids {
			for _, im := range h.Outputs[id].Images {
				if im.Type == want {
					pick = append(pick, im)
				}
			}
		}
		if len(pick) > 0 {
			break
		}
	}
	if len(pick) == 0 {
		return nil, &sdclient.PermanentError{Reason: "comfyui: the workflow produced no images (it needs a SaveImage or PreviewImage node)"}
	}
	out := make([]sdclient.Image, 0, len(pick))
	for _, im := range pick {
		q := url.Values{"filename": {im.Filename}, "subfolder": {im.Subfolder}, "type": {im.Type}}
		raw, err := c.call(ctx, http.MethodGet, "/view?"+q.Encode(), "", nil)
		if err != nil {
			return nil, err
		}
		f := sdclient.SniffFormat(raw)
		if f == "" {
			return nil, &sdclient.PermanentError{Reason: fmt.Sprintf("comfyui: image %s is not PNG, JPEG or WebP; save images as PNG in the workflow", im.Filename)}
		}
		out = append(out, sdclient.Image{Data: raw, Format: f})
	}
	return out, nil
}

// run executes g: socket first, then the prompt, then events until our
// prompt ends, then the images from history. onProgress gets sampling
// steps and previews.
func (c *Client) run(ctx context.Context, g Graph, onProgress func(sdclient.Progress)) ([]sdclient.Image, error) {
	clientID := newID()
	sock, err := c.dial(ctx, clientID)
	if err != nil {
		return nil, err
	}
	defer func() { sock.close() }()
	id, err := c.submit(ctx, g, clientID, newID())
	if err != nil {
		return nil, err
	}
	bg := context.WithoutCancel(ctx)
	abandon := func(cause error) error {
		if err := c.cancelPrompt(bg, id); err != nil {
			return fmt.Errorf("%w (and cancelling prompt %s failed: %w)", cause, id, err)
		}
		return cause
	}

	ph := phaseQueued
	timer := time.NewTimer(c.timeouts.Queue)
	defer timer.Stop()
	reset := func(d time.Duration) {
		timer.Stop()
		timer.Reset(d)
	}
	var (
		step, steps int
		node        string
		first       time.Time
		finalErr    error
		// ComfyUI sends a step's preview frame right after its progress
		// message (latent_preview.py in the sampler callback). Once a run
		// has shown previews, a step's report waits for its frame, so the
		// caller gets one report per step rather than two.
		sawPreview, held bool
		drops            int // websocket drops since the last message
	)
	emit := func(preview *sdclient.Image) {
		held = false
		if onProgress == nil || steps <= 0 {
			return
		}
		p := sdclient.Progress{Step: step, Steps: steps, Fraction: float64(step) / float64(steps), Preview: preview}
		if step > 0 && step < steps {
			el := time.Since(first)
			p.ETA = el * time.Duration(steps-step) / time.Duration(step)
		}
		onProgress(p)
	}
	// runningTimeout is Stall while a sampler steps; once the last step
	// is done, decoding and saving (or the next node's model load) send no
	// steps, so they get ModelLoad if it is longer.
	runningTimeout := func() time.Duration {
		if steps > 0 && step >= steps {
			return max(c.timeouts.Stall, c.timeouts.ModelLoad)
		}
		return c.timeouts.Stall
	}
	started := func() {
		if ph == phaseQueued {
			ph = phaseLoading
			reset(c.timeouts.ModelLoad)
		} else if ph == phaseRunning {
			reset(runningTimeout())
		}
	}
loop:
	for {
		select {
		case <-ctx.Done():
			return nil, abandon(fmt.Errorf("comfyui: prompt %s: %w", id, ctx.Err()))
		case <-timer.C:
			// A message lost on the way (a proxy, a reconnect race) must
			// not turn a finished prompt into a stall: ask history first.
			if h, err := c.history(ctx, id); err == nil && h != nil {
				if err := h.failure(); err != nil {
					return nil, err
				}
				break loop
			}
			why := map[phase]string{
				phaseQueued:  fmt.Sprintf("did not start within %s in the server's queue", c.timeouts.Queue),
				phaseLoading: fmt.Sprintf("no sampling step within %s of starting (model load)", c.timeouts.ModelLoad),
				phaseRunning: fmt.Sprintf("no progress for %s", runningTimeout()),
			}[ph]
			return nil, abandon(fmt.Errorf("comfyui: prompt %s %s: %w", id, why, sdclient.ErrStalled))
		case it := <-sock.next():
			if held && it.ev.Type != "preview" {
				emit(nil)
			}
			if it.err != nil {
				// The socket dropped (a proxy's idle timeout, a server
				// restart). Reconnect under the same client id, then read
				// history: a prompt that ended meanwhile is there (history is
				// written before "executing" null), and one still running
				// reports to the new socket.
				sock.close()
				if drops++; drops > maxDrops {
					return nil, abandon(fmt.Errorf("comfyui: prompt %s: %w: the websocket dropped %d times without a message between", id, sdclient.ErrUnavailable, drops))
				}
				ns, derr := c.dial(ctx, clientID)
				h, herr := c.history(ctx, id)
				if herr == nil && h != nil {
					if ns != nil {
						ns.close()
					}
					if err := h.failure(); err != nil {
						return nil, err
					}
					break loop
				}
				if derr != nil {
					if ctx.Err() != nil {
						return nil, abandon(fmt.Errorf("comfyui: prompt %s: %w", id, ctx.Err()))
					}
					return nil, abandon(fmt.Errorf("comfyui: prompt %s: websocket lost and not reopened: %w", id, derr))
				}
				sock = ns
				continue
			}
			ev := it.ev
			if ev.Type != "status" {
				drops = 0
			}
			if ev.PromptID != "" && ev.PromptID != id {
				continue // another prompt of ours would have another client id; be safe
			}
			switch ev.Type {
			case "execution_start", "execution_cached":
				started()
			case "executing":
				if ev.Done {
					if ev.PromptID == id {
						break loop
					}
					// Servers before prompt ids in messages: history tells
					// whether the end was ours.
					if h, err := c.history(ctx, id); ev.PromptID == "" && err == nil && h != nil {
						break loop
					}
					continue
				}
				started()
				node = ev.Node
			case "progress":
				if ph == phaseQueued {
					started()
				}
				advanced := ph != phaseRunning || ev.Value != step || ev.Max != steps || ev.Node != node
				if ph != phaseRunning {
					first = time.Now()
					ph = phaseRunning
				}
				step, steps, node = ev.Value, ev.Max, cmpOr(ev.Node, node)
				if advanced {
					reset(runningTimeout())
				}
				if sawPreview {
					held = true
				} else {
					emit(nil)
				}
			case "preview":
				if ph != phaseQueued && ev.Preview != nil {
					sawPreview = true
					emit(ev.Preview)
				}
			case "executed":
				if ph == phaseRunning {
					reset(runningTimeout())
				}
			case "execution_error":
				finalErr = execError(ev)
			case "execution_interrupted":
				finalErr = errInterrupted
			}
		}
	}
	if held {
		emit(nil)
	}
	if finalErr != nil {
		return nil, finalErr
	}
	h, err := c.history(bg, id)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("comfyui: prompt %s finished but GET /history has no entry for it", id)
	}
	if err := h.failure(); err != nil {
		return nil, err
	}
	return c.images(bg, h)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
