package scheduler

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRequestEncoding(t *testing.T) {
	t.Parallel()
	discord := `{"kind":"discord","app_id":"1180000000000000000","token":"aW50ZXJhY3Rpb246MTE4MDAwMDAwMDAwMDAwMDAwMDp",` +
		`"channel_id":"1180000000000000001","guild_id":"1180000000000000002","user_id":"1180000000000000003","created_ms":1764600000000}`
	for _, c := range []struct {
		name, payload, origin string
		compact               bool
	}{
		{"discord", `{"prompt":"a cat","width":512,"height":512,"steps":20,"seed":123456789012345,"count":1}`, discord, true},
		{"slack", `{"prompt":"x"}`, `{"kind":"slack","team":"T1","channel":"C1","user":"U1"}`, true},
		{"no origin", `{"prompt":"x"}`, `null`, true},
		{"empty", ``, ``, true},
		{"leading zero and long runs kept as text", `[0123456789012,123456789012345678901234,12345678901]`, `null`, true},
		{"digits at the ends", `18446744073709551615`, `18446744073709551616`, true},
		{"unicode", `{"prompt":"猫 \u0001 é"}`, `null`, true},
		{"raw control byte: plain", "{\"prompt\":\"a\x02b\"}", `null`, false},
		{"base64 url and std, short and not canonical kept", `["` + strings.Repeat("ab-_", 10) + `","` + strings.Repeat("ab+/", 10) +
			`","abcd","` + strings.Repeat("a", 33) + `","` + strings.Repeat("a", 40) + `x"]`, `null`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := encodeRequest(json.RawMessage(c.payload), json.RawMessage(c.origin))
			require.Equal(t, c.compact, s != "" && s[0] == reqCompact)
			p, o := decodeRequest(s)
			require.Equal(t, c.payload, string(p))
			require.Equal(t, c.origin, string(o))
		})
	}
	// A Discord request shrinks by about a third.
	s := encodeRequest(json.RawMessage(`{"prompt":"bench","width":64,"height":64,"steps":1,"count":1}`), json.RawMessage(discord))
	require.Less(t, len(s), 2*(61+len(discord))/3)
	// Its token is stored as bytes.
	tok := encodeRequest(json.RawMessage(`"`+strings.Repeat("aW50", 50)+`"`), nil)
	// marker, payload length "202:", quote, base64 marker, "150:", the bytes, quote
	require.Len(t, tok, 1+4+1+1+4+150+1)
	// The plain form written before the compact one still reads.
	p, o := decodeRequest(`7:{"a":1}null`)
	require.Equal(t, `{"a":1}`, string(p))
	require.Equal(t, `null`, string(o))
	// Malformed stored values read as nothing.
	for _, bad := range []string{"", "x", "9:{}", "\x01", "\x01\x05\x02\x00", "\x01\xff", "\x01-1:", "\x010:\x039:ab", "\x010:\x03x:", "\x015:ab"} {
		p, o := decodeRequest(bad)
		require.Nil(t, p, "%q", bad)
		require.Nil(t, o, "%q", bad)
	}
	// Every word has its own byte, none of them tab, newline or return.
	seen := map[byte]bool{}
	for i := range reqWords {
		b := wordByte(i)
		require.False(t, seen[b])
		require.NotContains(t, []byte{'\t', '\n', '\r', reqCompact, reqDigits, reqBase64, reqBase64URL}, b)
		require.Less(t, b, byte(0x20))
		seen[b] = true
	}
}

// FuzzRequestEncoding: any payload and origin come back as they went in.
func FuzzRequestEncoding(f *testing.F) {
	f.Add([]byte(`{"prompt":"a","width":512}`), []byte(`{"kind":"discord","app_id":"1180000000000000000","created_ms":1764600000000}`))
	f.Add([]byte(`00000000000012`), []byte("\x01\x02"))
	f.Add([]byte(""), []byte("null"))
	f.Fuzz(func(t *testing.T, payload, origin []byte) {
		s := encodeRequest(payload, origin)
		p, o := decodeRequest(s)
		if string(p) != string(payload) || string(o) != string(origin) {
			t.Fatalf("round trip of %q %q gave %q %q", payload, origin, p, o)
		}
		decodeRequest(string(payload)) // never panics on stored garbage
	})
}
