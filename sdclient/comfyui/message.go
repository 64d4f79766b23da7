package comfyui

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/easelbot/easel/sdclient"
)

// event is one decoded websocket message. Which fields are set depends on
// Type; the shapes are those ComfyUI's server.py send_json and
// execution.py send_sync write: {"type": T, "data": {...}}.
type event struct {
	Type     string
	PromptID string
	// Node is the executing node; Done is true for "executing" with node
	// null, which main.py prompt_worker sends after history is written.
	Node string
	Done bool
	// Value and Max are a "progress" message's step and step count.
	Value, Max int
	// QueueRemaining is a "status" message's exec_info.queue_remaining.
	QueueRemaining int
	// Error describes "execution_error": node, class and exception.
	NodeType, ExceptionType, ExceptionMessage string
	// Preview is a binary preview frame's image.
	Preview *sdclient.Image
}

// maxMessage caps one websocket message; previews are small JPEGs, but
// executed/status JSON can list many files.
const maxMessage = 32 << 20

// decodeText decodes a JSON websocket message. Unknown types decode to an
// event with only Type set; callers ignore them (newer servers add types
// such as progress_state).
func decodeText(raw []byte) (event, error) {
	var m struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return event{}, fmt.Errorf("comfyui: websocket message: %w", err)
	}
	if m.Type == "" {
		return event{}, errors.New("comfyui: websocket message: no type")
	}
	ev := event{Type: m.Type}
	if len(bytes.TrimSpace(m.Data)) == 0 || string(bytes.TrimSpace(m.Data)) == "null" {
		return ev, nil
	}
	var d struct {
		PromptID         *string         `json:"prompt_id"`
		Node             json.RawMessage `json:"node"`
		NodeID           json.RawMessage `json:"node_id"`
		NodeType         string          `json:"node_type"`
		Value            json.Number     `json:"value"`
		Max              json.Number     `json:"max"`
		ExceptionType    string          `json:"exception_type"`
		ExceptionMessage string          `json:"exception_message"`
		Status           *struct {
			ExecInfo struct {
				QueueRemaining json.Number `json:"queue_remaining"`
			} `json:"exec_info"`
		} `json:"status"`
	}
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return event{}, fmt.Errorf("comfyui: websocket %s message: %w", m.Type, err)
	}
	if d.PromptID != nil {
		ev.PromptID = *d.PromptID
	}
	switch m.Type {
	case "executing":
		node, null, err := nodeID(d.Node)
		if err != nil {
			return event{}, fmt.Errorf("comfyui: websocket executing message: node: %w", err)
		}
		ev.Node, ev.Done = node, null
	case "progress":
		v, err1 := d.Value.Float64()
		mx, err2 := d.Max.Float64()
		if err := errors.Join(err1, err2); err != nil || v < 0 || mx < 0 || v > 1e9 || mx > 1e9 {
			return event{}, fmt.Errorf("comfyui: websocket progress message: value %q and max %q must be numbers in 0..1e9", d.Value, d.Max)
		}
		ev.Value, ev.Max = int(v), int(mx)
		ev.Node, _, _ = nodeID(d.Node)
	case "status":
		if d.Status != nil && d.Status.ExecInfo.QueueRemaining != "" {
			n, err := d.Status.ExecInfo.QueueRemaining.Int64()
			if err != nil {
				return event{}, fmt.Errorf("comfyui: websocket status message: queue_remaining: %w", err)
			}
			ev.QueueRemaining = int(n)
		}
	case "execution_error", "execution_interrupted":
		ev.Node, _, _ = nodeID(d.NodeID)
		ev.NodeType, ev.ExceptionType, ev.ExceptionMessage = d.NodeType, d.ExceptionType, d.ExceptionMessage
	default:
		ev.Node, _, _ = nodeID(d.Node)
	}
	return ev, nil
}

// nodeID reads a node id: a string, a number (some custom nodes), or null.
func nodeID(raw json.RawMessage) (id string, null bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, false, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", false, errors.New("not a string, number or null")
	}
	return n.String(), false, nil
}

// Binary event types (ComfyUI server.py BinaryEventTypes).
const (
	binaryPreview             = 1
	binaryPreviewWithMetadata = 4
)

// decodeBinary decodes a binary websocket frame: a 4-byte big-endian event
// type, then for a preview (type 1) a 4-byte image type (1 JPEG, 2 PNG) and
// the image bytes (server.py send_image, encode_bytes); for type 4 a 4-byte
// metadata length, that much JSON metadata (prompt_id among it) and the
// image. Other event types decode to an event with no preview. The image's
// format is sniffed from its bytes; a preview in a format Easel does not
// know is dropped rather than failing the job.
func decodeBinary(b []byte) (event, error) {
	if len(b) < 4 {
		return event{}, fmt.Errorf("comfyui: binary websocket frame of %d bytes: shorter than its 4-byte event type", len(b))
	}
	ev := event{Type: "binary"}
	switch binary.BigEndian.Uint32(b) {
	case binaryPreview:
		if len(b) < 8 {
			return event{}, fmt.Errorf("comfyui: preview frame of %d bytes: shorter than its 8-byte header", len(b))
		}
		ev.Type = "preview"
		data := b[8:]
		if f := sdclient.SniffFormat(data); f != "" {
			ev.Preview = &sdclient.Image{Data: bytes.Clone(data), Format: f}
		}
	case binaryPreviewWithMetadata:
		if len(b) < 8 {
			return event{}, fmt.Errorf("comfyui: preview frame of %d bytes: shorter than its 8-byte header", len(b))
		}
		n := binary.BigEndian.Uint32(b[4:])
		if uint64(n) > uint64(len(b)-8) {
			return event{}, fmt.Errorf("comfyui: preview frame: metadata length %d exceeds the frame's %d bytes", n, len(b)-8)
		}
		var meta struct {
			PromptID string `json:"prompt_id"`
		}
		if err := json.Unmarshal(b[8:8+n], &meta); err != nil {
			return event{}, fmt.Errorf("comfyui: preview frame metadata: %w", err)
		}
		ev.Type, ev.PromptID = "preview", meta.PromptID
		data := b[8+n:]
		if f := sdclient.SniffFormat(data); f != "" {
			ev.Preview = &sdclient.Image{Data: bytes.Clone(data), Format: f}
		}
	}
	return ev, nil
}
