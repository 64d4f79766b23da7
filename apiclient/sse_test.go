package apiclient

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
)

// readAll parses a whole stream.
func readAll(r io.Reader) ([]sseMessage, time.Duration, error) {
	sr := newSSEReader(r)
	var got []sseMessage
	for {
		m, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return got, sr.retry, nil
		}
		if err != nil {
			return got, sr.retry, err
		}
		got = append(got, m)
	}
}

func TestSSEReader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		in    string
		want  []sseMessage
		retry time.Duration
	}{
		{"fields", "id: 1\nevent: queued\ndata: {\"a\":1}\n\n",
			[]sseMessage{{ID: "1", Event: "queued", Data: `{"a":1}`}}, 0},
		{"CRLF", "id: 1\r\nevent: queued\r\ndata: x\r\n\r\n",
			[]sseMessage{{ID: "1", Event: "queued", Data: "x"}}, 0},
		{"lone CR", "id: 1\revent: queued\rdata: x\r\rdata: y\r\r",
			[]sseMessage{{ID: "1", Event: "queued", Data: "x"}, {ID: "1", Event: "message", Data: "y"}}, 0},
		{"mixed line ends", "data: a\r\ndata: b\rdata: c\n\r\n",
			[]sseMessage{{Event: "message", Data: "a\nb\nc"}}, 0},
		{"multi-line data", "data: line1\ndata: line2\ndata:\ndata: line4\n\n",
			[]sseMessage{{Event: "message", Data: "line1\nline2\n\nline4"}}, 0},
		{"comments and keep-alives", ": hello\n\n: keep-alive\n\ndata: x\n: mid-message comment\n\n",
			[]sseMessage{{Event: "message", Data: "x"}}, 0},
		{"one space dropped, not more", "data:no space\n\ndata:  two spaces\n\n",
			[]sseMessage{{Event: "message", Data: "no space"}, {Event: "message", Data: " two spaces"}}, 0},
		{"colon in value", "data: {\"t\":\"a:b\"}\n\n",
			[]sseMessage{{Event: "message", Data: `{"t":"a:b"}`}}, 0},
		{"field without colon", "data\n\ndata\ndata\n\n",
			[]sseMessage{{Event: "message", Data: ""}, {Event: "message", Data: "\n"}}, 0},
		{"no data, no message; event type reset", "event: queued\nid: 3\n\ndata: x\n\n",
			[]sseMessage{{ID: "3", Event: "message", Data: "x"}}, 0},
		{"id persists, empty id resets", "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
			[]sseMessage{{ID: "7", Event: "message", Data: "a"}, {ID: "7", Event: "message", Data: "b"}, {ID: "", Event: "message", Data: "c"}}, 0},
		{"id with NUL ignored", "id: 1\n\nid: a\x00b\ndata: x\n\n",
			[]sseMessage{{ID: "1", Event: "message", Data: "x"}}, 0},
		{"unknown fields ignored", "foo: bar\nEvent: caps\ndata: x\n\n",
			[]sseMessage{{Event: "message", Data: "x"}}, 0},
		{"retry", "retry: 1500\n\nretry: 2s\n\nretry: -1\n\n", nil, 1500 * time.Millisecond},
		{"leading BOM", "\uFEFFdata: x\n\n", []sseMessage{{Event: "message", Data: "x"}}, 0},
		{"BOM only at the start", "data: x\n\n\uFEFFdata: y\n\n", []sseMessage{{Event: "message", Data: "x"}}, 0},
		{"unfinished message dropped", "data: x\n\ndata: cut off\n", []sseMessage{{Event: "message", Data: "x"}}, 0},
		{"unfinished line dropped", "data: x\n\ndata: y", []sseMessage{{Event: "message", Data: "x"}}, 0},
		{"empty", "", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, retry, err := readAll(strings.NewReader(tc.in))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.retry, retry)
			// Byte by byte, as a slow network delivers it: the same.
			got, _, err = readAll(iotest.OneByteReader(strings.NewReader(tc.in)))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestSSEReaderCRNotWaitingForNextByte: a line ended by a CR is complete
// before the next byte arrives, so a CR-only server's message is
// dispatched at once.
func TestSSEReaderCRNotWaitingForNextByte(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	defer func() { _ = pr.Close() }()
	go func() { _, _ = pw.Write([]byte("data: x\r\r")) }() // then nothing, not even EOF
	m, err := newSSEReader(pr).Next()
	require.NoError(t, err)
	require.Equal(t, sseMessage{Event: "message", Data: "x"}, m)
}

func TestSSEReaderLimits(t *testing.T) {
	t.Parallel()
	_, _, err := readAll(strings.NewReader("data: " + strings.Repeat("x", maxSSELine) + "\n\n"))
	require.ErrorIs(t, err, errSSETooLong)
	line := "data: " + strings.Repeat("x", 1000) + "\n"
	_, _, err = readAll(strings.NewReader(strings.Repeat(line, maxSSEData/1000+1) + "\n"))
	require.ErrorIs(t, err, errSSETooLong)
}

// FuzzSSEReader: any input parses without panic into well-formed messages,
// and the same ones however the bytes are split up by the network.
func FuzzSSEReader(f *testing.F) {
	f.Add("id: 1\nevent: progress\ndata: {}\n\n")
	f.Add(": x\r\n\r\ndata\n\n")
	f.Add("data: a\rdata: b\r\n\r")
	f.Add("\uFEFFretry: 10\nid: 2\x00\ndata:  y\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		whole, _, err := readAll(strings.NewReader(s))
		require.NoError(t, err)
		for _, m := range whole {
			require.NotEmpty(t, m.Event)
			require.NotContains(t, m.Data, "\r")
			require.NotContains(t, m.Event+m.ID, "\n")
			require.NotContains(t, m.ID, "\x00")
		}
		split, _, err := readAll(iotest.OneByteReader(strings.NewReader(s)))
		require.NoError(t, err)
		require.Equal(t, whole, split)
	})
}
