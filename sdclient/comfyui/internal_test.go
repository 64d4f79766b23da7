package comfyui

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMapSampler(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sampler, scheduler string
		wantName, wantSch  string
	}{
		{"", "", "euler", "normal"},
		{"Euler a", "", "euler_ancestral", "normal"},
		{"Euler", "", "euler", "normal"},
		{"DPM++ 2M Karras", "", "dpmpp_2m", "karras"},
		{"dpm++ 2m  karras", "", "dpmpp_2m", "karras"},
		{"DPM++ 2M", "Karras", "dpmpp_2m", "karras"},
		{"DPM++ 2M", "Automatic", "dpmpp_2m", "normal"},
		{"DPM++ SDE Karras", "", "dpmpp_sde", "karras"},
		{"DPM++ 2M SDE Exponential", "", "dpmpp_2m_sde", "exponential"},
		{"DPM++ 2M SDE", "", "dpmpp_2m_sde", "normal"},
		{"DPM++ 3M SDE Karras", "", "dpmpp_3m_sde", "karras"},
		{"DPM2 a Karras", "", "dpm_2_ancestral", "karras"},
		{"DPM++ 2S a", "", "dpmpp_2s_ancestral", "normal"},
		{"LMS Karras", "", "lms", "karras"},
		{"DDIM", "", "ddim", "normal"},
		{"UniPC", "SGM Uniform", "uni_pc", "sgm_uniform"},
		{"DPM++ 2M Karras", "exponential", "dpmpp_2m", "exponential"},
		{"dpmpp_2m", "karras", "dpmpp_2m", "karras"},
		{"euler_ancestral", "", "euler_ancestral", "normal"},
		{"res_multistep", "beta", "res_multistep", "beta"},
		{"LCM", "", "lcm", "normal"},
	} {
		name, sch := mapSampler(tc.sampler, tc.scheduler)
		require.Equal(t, [2]string{tc.wantName, tc.wantSch}, [2]string{name, sch}, "%q %q", tc.sampler, tc.scheduler)
	}
}

func TestDescribePromptError(t *testing.T) {
	t.Parallel()
	raw := `{"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
	  "node_errors": {"4": {"errors": [{"type": "value_not_in_list", "message": "Value not in list",
	    "details": "ckpt_name: 'x.safetensors' not in ['a.safetensors']", "extra_info": {"input_name": "ckpt_name"}}],
	    "dependent_outputs": ["9"], "class_type": "CheckpointLoaderSimple"}}}`
	require.Equal(t, "Prompt outputs failed validation: node 4 (CheckpointLoaderSimple) input ckpt_name: Value not in list: ckpt_name: 'x.safetensors' not in ['a.safetensors']",
		describePromptError([]byte(raw)))
	require.Equal(t, "Cannot execute because node Foo does not exist. (Node ID '#3')",
		describePromptError([]byte(`{"error": {"type": "invalid_prompt", "message": "Cannot execute because node Foo does not exist.", "details": "Node ID '#3'", "extra_info": {}}, "node_errors": {}}`)))
	require.Equal(t, "no prompt", describePromptError([]byte(`{"error": "no prompt", "node_errors": []}`)))
	require.Equal(t, "<html> bad </html>", describePromptError([]byte("<html> bad\n</html>")))
}

func TestDecodeText(t *testing.T) {
	t.Parallel()
	ev, err := decodeText([]byte(`{"type": "executing", "data": {"node": null, "prompt_id": "p"}}`))
	require.NoError(t, err)
	require.Equal(t, event{Type: "executing", PromptID: "p", Done: true}, ev)
	ev, err = decodeText([]byte(`{"type": "executing", "data": {"node": "3", "display_node": "3", "prompt_id": "p"}}`))
	require.NoError(t, err)
	require.Equal(t, event{Type: "executing", PromptID: "p", Node: "3"}, ev)
	ev, err = decodeText([]byte(`{"type": "progress", "data": {"value": 3, "max": 20, "prompt_id": "p", "node": "3"}}`))
	require.NoError(t, err)
	require.Equal(t, event{Type: "progress", PromptID: "p", Node: "3", Value: 3, Max: 20}, ev)
	ev, err = decodeText([]byte(`{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 2}}, "sid": "c"}}`))
	require.NoError(t, err)
	require.Equal(t, 2, ev.QueueRemaining)
	ev, err = decodeText([]byte(`{"type": "execution_error", "data": {"prompt_id": "p", "node_id": "8", "node_type": "VAEDecode", "exception_type": "torch.OutOfMemoryError", "exception_message": "CUDA out of memory"}}`))
	require.NoError(t, err)
	require.Equal(t, event{Type: "execution_error", PromptID: "p", Node: "8", NodeType: "VAEDecode", ExceptionType: "torch.OutOfMemoryError", ExceptionMessage: "CUDA out of memory"}, ev)
	ev, err = decodeText([]byte(`{"type": "progress_state", "data": {"prompt_id": "p", "nodes": {}}}`))
	require.NoError(t, err)
	require.Equal(t, "progress_state", ev.Type)
	for _, bad := range []string{``, `[]`, `{"data": {}}`, `{"type": "progress", "data": {"value": "x", "max": 2}}`, `{"type": "executing", "data": {"node": {}}}`} {
		_, err := decodeText([]byte(bad))
		require.Error(t, err, bad)
	}
}

func TestDecodeBinary(t *testing.T) {
	t.Parallel()
	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2}
	frame := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 1), 1)
	ev, err := decodeBinary(append(frame, jpeg...))
	require.NoError(t, err)
	require.Equal(t, "jpeg", ev.Preview.Format)
	require.Equal(t, jpeg, ev.Preview.Data)

	meta := []byte(`{"prompt_id": "p", "node_id": "3"}`)
	frame = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 4), uint32(len(meta)))
	ev, err = decodeBinary(append(append(frame, meta...), jpeg...))
	require.NoError(t, err)
	require.Equal(t, "p", ev.PromptID)
	require.Equal(t, "jpeg", ev.Preview.Format)

	_, err = decodeBinary([]byte{0, 0, 0})
	require.Error(t, err)
	_, err = decodeBinary([]byte{0, 0, 0, 1, 0, 0})
	require.Error(t, err)
	_, err = decodeBinary(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 4), 99))
	require.Error(t, err)
	ev, err = decodeBinary([]byte{0, 0, 0, 3, 'h', 'i'})
	require.NoError(t, err)
	require.Nil(t, ev.Preview, "a text frame carries no preview")
}

func FuzzDecodeText(f *testing.F) {
	for _, s := range []string{
		`{"type": "executing", "data": {"node": null, "prompt_id": "p"}}`,
		`{"type": "progress", "data": {"value": 3, "max": 20, "prompt_id": "p", "node": "3"}}`,
		`{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 2}}, "sid": "c"}}`,
		`{"type": "execution_cached", "data": {"nodes": ["4"], "prompt_id": "p"}}`,
		`{"type": "execution_error", "data": {"node_id": 8, "exception_message": "x"}}`,
		`{"type": "executed", "data": {"node": "9", "output": {"images": []}}}`,
		`{"type": "progress", "data": {"value": 1e99, "max": -1}}`,
		`nonsense`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := decodeText(raw)
		if err != nil {
			return
		}
		if ev.Type == "" {
			t.Fatal("decoded event without a type")
		}
		if ev.Value < 0 || ev.Max < 0 {
			t.Fatalf("negative progress %d/%d", ev.Value, ev.Max)
		}
	})
}

func FuzzDecodeBinary(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 1, 0xFF, 0xD8, 0xFF, 0})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 2, 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'})
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 2, '{', '}', 0xFF, 0xD8, 0xFF})
	f.Add([]byte{0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0, 0, 0, 3, 'x'})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := decodeBinary(raw)
		if err != nil {
			return
		}
		if ev.Preview != nil && ev.Preview.Format == "" {
			t.Fatal("preview without a format")
		}
	})
}

func FuzzParseWorkflow(f *testing.F) {
	f.Add([]byte(`{"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}", "clip": ["2", 1]}}, "2": {"class_type": "K", "inputs": {"seed": "{{seed}}"}}}`))
	f.Add([]byte(`{"1": {"class_type": "X", "inputs": {"text": "{{ prompt }} {{negative}}", "n": "{{seed}}", "l": [["a", {"b": "{{steps}}"}]]}}}`))
	f.Add([]byte(`{"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "{{model}}"}}, "2": {"class_type": "X", "inputs": {"t": "{{prompt}}", "s": "{{seed}}", "m": ["1", 0]}}}`))
	f.Add([]byte(`{"nodes": [], "links": []}`))
	f.Add([]byte(`{"1": {"class_type": "X", "inputs": {"t": "{{unknown}}"}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		w, err := parseWorkflow("fuzz.json", raw, kindTxt2Img)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		g := w.fill(map[string]any{"prompt": "p", "negative": "n", "seed": int64(1), "steps": 2, "cfg": 3.5,
			"width": 64, "height": 64, "batch": 1, "sampler": "euler", "scheduler": "normal", "model": "m", "denoise": 1.0})
		g.insertLoRAs(w.ckpt, []loraUse{{Name: "l", Weight: 1}})
		if _, err := json.Marshal(g); err != nil {
			t.Fatalf("filled graph does not marshal: %v", err)
		}
		for _, n := range g {
			for _, v := range n.Inputs {
				if s, ok := v.(string); ok && placeholderRE.MatchString(s) {
					t.Fatalf("placeholder left after fill: %q", s)
				}
			}
		}
	})
}
