package scheduler

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
)

// A job's request (its payload and origin) is stored in a string of its own
// (storage.Keys.JobRequest), the largest thing a queued job keeps in Redis.
// It is stored compactly: the JSON members every Discord, Slack and
// /imagine request repeats are written as one byte each, long runs of
// digits (snowflake ids, millisecond times) as their 8-byte binary value,
// and long base64 strings (Discord's interaction token) as their bytes.
// Valid JSON never holds a raw byte below 0x20 other than tab, newline and
// carriage return, so those bytes can mark both without ambiguity; a
// request that holds one anyway is stored plainly.
//
// Formats: "<len(payload)>:<payload><origin>" (plain, and every request
// written before the compact form), or reqCompact, then len(payload) in
// decimal and ":", then the payload and origin encoded.
const (
	reqCompact = '\x01'
	// reqDigits is followed by 8 bytes, big-endian: a run of digits.
	reqDigits = '\x02'
	// Digit runs this long or longer (and at most 19, no leading zero, so
	// they fit a uint64 and print back the same) are packed.
	minDigitRun = 12
	// reqBase64 and reqBase64URL are followed by a length in decimal, ":"
	// and that many bytes: a whole JSON string's text in base64 (standard or URL
	// alphabet, no padding) of at least minBase64 characters.
	reqBase64    = '\x03'
	reqBase64URL = '\x04'
	minBase64    = 32
)

// reqWords are the members written as one byte each: byte reqWord0+i for
// reqWords[i]. Longer ones come first where one starts another.
var reqWords = []string{
	`{"kind":"discord","app_id":"`, `","token":"`, `","channel_id":"`, `","guild_id":"`, `","user_id":"`,
	`","created_ms":`, `,"locale":"`, `{"kind":"slack","team":"`, `","channel":"`, `","thread_ts":"`,
	`","reply_ts":"`, `","user":"`, `","response_url":"https://hooks.slack.com/`,
	`{"prompt":"`, `","negative_prompt":"`, `,"width":`, `,"height":`, `,"steps":`, `,"cfg_scale":`,
	`,"seed":`, `,"sampler":"`, `,"model":"`, `,"count":`,
}

// reqWord0 is the byte of reqWords[0]: bytes from 0x05, skipping tab,
// newline and carriage return.
const reqWord0 = 0x05

// wordBytes[i] marks reqWords[i].
var wordBytes = func() []byte {
	var out []byte
	for b := byte(reqWord0); len(out) < len(reqWords); b++ {
		if b != '\t' && b != '\n' && b != '\r' {
			out = append(out, b)
		}
	}
	if out[len(out)-1] >= 0x20 {
		panic("scheduler: too many request words for the control bytes")
	}
	return out
}()

func wordByte(i int) byte { return wordBytes[i] }

// wordOf is the index of the word marked by byte b, or -1.
var wordOf = func() [32]int {
	var w [32]int
	for i := range w {
		w[i] = -1
	}
	for i, b := range wordBytes {
		w[b] = i
	}
	return w
}()

// encodeRequest joins a job's payload and origin into one string.
func encodeRequest(payload, origin json.RawMessage) string {
	for _, part := range [][]byte{payload, origin} {
		for _, c := range part {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return strconv.Itoa(len(payload)) + ":" + string(payload) + string(origin)
			}
		}
	}
	var b strings.Builder
	b.Grow(len(payload) + len(origin) + 4)
	b.WriteByte(reqCompact)
	b.WriteString(strconv.Itoa(len(payload)) + ":")
	compactInto(&b, payload)
	compactInto(&b, origin)
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isBase64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || isDigit(c) || c == '+' || c == '/' || c == '-' || c == '_'
}

// packBase64 writes the string text s[i:j] (between quotes) as bytes when it
// is base64 that prints back the same.
func packBase64(b *strings.Builder, text string) bool {
	for _, enc := range []struct {
		mark byte
		e    *base64.Encoding
	}{{reqBase64, base64.RawStdEncoding}, {reqBase64URL, base64.RawURLEncoding}} {
		raw, err := enc.e.DecodeString(text)
		if err != nil || enc.e.EncodeToString(raw) != text {
			continue
		}
		b.WriteByte(enc.mark)
		b.WriteString(strconv.Itoa(len(raw)) + ":")
		b.Write(raw)
		return true
	}
	return false
}

func compactInto(b *strings.Builder, s []byte) {
	for i := 0; i < len(s); {
		if i > 0 && s[i-1] == '"' && isBase64(s[i]) {
			// A string's text starts here (a closing quote is never
			// followed by a letter or digit).
			j := i
			for j < len(s) && isBase64(s[j]) {
				j++
			}
			if j-i >= minBase64 && j < len(s) && s[j] == '"' && packBase64(b, string(s[i:j])) {
				i = j
				continue
			}
		}
		if isDigit(s[i]) {
			j := i
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if v, err := strconv.ParseUint(string(s[i:j]), 10, 64); err == nil && j-i >= minDigitRun && s[i] != '0' {
				var n [8]byte
				binary.BigEndian.PutUint64(n[:], v)
				b.WriteByte(reqDigits)
				b.Write(n[:])
			} else {
				b.Write(s[i:j])
			}
			i = j
			continue
		}
		matched := false
		for w, word := range reqWords {
			if len(s)-i >= len(word) && string(s[i:i+len(word)]) == word {
				b.WriteByte(wordByte(w))
				i += len(word)
				matched = true
				break
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
}

// decodeRequest splits a stored request into payload and origin; (nil, nil)
// when it is malformed.
func decodeRequest(s string) (payload, origin json.RawMessage) {
	if len(s) == 0 || s[0] != reqCompact {
		n, rest, ok := strings.Cut(s, ":")
		l, err := strconv.Atoi(n)
		if !ok || err != nil || l < 0 || l > len(rest) {
			return nil, nil
		}
		return json.RawMessage(rest[:l]), json.RawMessage(rest[l:])
	}
	ps, rest, ok := strings.Cut(s[1:], ":")
	plen, err := strconv.Atoi(ps)
	if !ok || err != nil || plen < 0 {
		return nil, nil
	}
	out := make([]byte, 0, 2*len(s))
	s = rest
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == reqDigits:
			if len(s)-i < 9 {
				return nil, nil
			}
			out = strconv.AppendUint(out, binary.BigEndian.Uint64([]byte(s[i+1:i+9])), 10)
			i += 9
		case c == reqBase64 || c == reqBase64URL:
			ns, tail, ok := strings.Cut(s[i+1:], ":")
			n, err := strconv.Atoi(ns)
			if !ok || err != nil || n < 0 || n > len(tail) {
				return nil, nil
			}
			if c == reqBase64 {
				out = base64.RawStdEncoding.AppendEncode(out, []byte(tail[:n]))
			} else {
				out = base64.RawURLEncoding.AppendEncode(out, []byte(tail[:n]))
			}
			i = len(s) - len(tail) + n
		case c < 0x20 && wordOf[c] >= 0:
			out = append(out, reqWords[wordOf[c]]...)
			i++
		default:
			out = append(out, c)
			i++
		}
	}
	if plen > len(out) {
		return nil, nil
	}
	return json.RawMessage(out[:plen]), json.RawMessage(out[plen:])
}
