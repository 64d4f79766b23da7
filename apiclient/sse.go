package apiclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// sseMessage is one dispatched Server-Sent Events message.
type sseMessage struct {
	// ID is the stream's last event ID when the message was dispatched: it
	// carries over from earlier messages, as the spec says.
	ID string
	// Event is the event type, "message" when the message named none.
	Event string
	// Data is the data lines joined with "\n".
	Data string
}

// Limits on one line and on one message's data, against a stream that
// never ends a line or a message.
const (
	maxSSELine = 1 << 20
	maxSSEData = 4 << 20
)

// errSSETooLong is a line or a message over the limits.
var errSSETooLong = errors.New("event stream: line or message too long")

// sseReader parses the text/event-stream format as the WHATWG HTML spec
// describes it: lines end in CRLF, LF or a lone CR; a leading BOM is
// skipped; ':' starts a comment; "field: value" drops one space after the
// colon and a line without a colon is a field with an empty value; "data"
// lines are joined with "\n"; "id" sets the last event ID (ignored when it
// holds NUL) which persists across messages; "retry" sets the reconnect
// delay in milliseconds when all digits; other fields are ignored. A blank
// line dispatches the message, unless it had no data; a message cut off by
// the end of the stream is dropped.
type sseReader struct {
	sc    *bufio.Scanner
	lines lineSplitter
	first bool

	lastID string
	// retry is the delay the server asked for in a "retry" field; 0 when
	// none.
	retry time.Duration
}

func newSSEReader(r io.Reader) *sseReader {
	sr := &sseReader{sc: bufio.NewScanner(r), first: true}
	sr.sc.Buffer(make([]byte, 4096), maxSSELine)
	sr.sc.Split(sr.lines.split)
	return sr
}

// Next returns the next message, io.EOF when the stream ended (cleanly or
// not: an unfinished message is dropped either way), or the read error.
func (r *sseReader) Next() (sseMessage, error) {
	var (
		event   string
		data    strings.Builder
		hasData bool
	)
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if r.first {
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
			r.first = false
		}
		if len(line) == 0 {
			if !hasData {
				event = ""
				continue
			}
			if event == "" {
				event = "message"
			}
			return sseMessage{ID: r.lastID, Event: event, Data: data.String()}, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := bytes.Cut(line, []byte(":"))
		if found {
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			event = string(value)
		case "data":
			if data.Len()+len(value)+1 > maxSSEData {
				return sseMessage{}, errSSETooLong
			}
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				r.lastID = string(value)
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil && isDigits(value) {
				r.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return sseMessage{}, errSSETooLong
		}
		return sseMessage{}, fmt.Errorf("event stream: %w", err)
	}
	return sseMessage{}, io.EOF
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// lineSplitter is a bufio.SplitFunc for CRLF, LF and lone CR line ends. A
// CR at the end of the data read so far ends its line at once (a server
// that ends lines in CR alone must not wait for the next byte to be
// heard); a LF right after it is then skipped.
type lineSplitter struct {
	skipLF bool
}

func (s *lineSplitter) split(data []byte, atEOF bool) (int, []byte, error) {
	if s.skipLF && len(data) > 0 {
		s.skipLF = false
		if data[0] == '\n' {
			return 1, nil, nil
		}
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		s.skipLF = true
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
