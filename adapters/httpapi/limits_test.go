package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/easelbot/easel/adapters/httpapi"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// started runs the API on its own listener (the http.Server with its
// timeouts, not just the handler) and returns its base URL.
func (b *bundle) started(t *testing.T) string {
	t.Helper()
	require.NoError(t, b.api.Start(b.ctx))
	return "http://" + b.api.Addr()
}

// A client that sends its body one byte at a time is cut off at
// BodyTimeout, long before its body would be complete.
func TestSlowBodyCutOff(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{cfg: httpapi.Config{Addr: "127.0.0.1:0", HeaderTimeout: 100 * time.Millisecond, BodyTimeout: 300 * time.Millisecond}})
	base := b.started(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	const size = 1000 // at 1 byte per 20 ms: 20 s to send
	_, err = fmt.Fprintf(conn, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", size)
	require.NoError(t, err)
	status := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		status <- line
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for sent := 0; ; sent++ {
		require.Less(t, sent, size, "the whole slow body was accepted")
		select {
		case line := <-status:
			require.Contains(t, line, "408", "cut off with 408 Request Timeout")
			active, err := b.sched.Active(b.ctx, "api:local")
			require.NoError(t, err)
			require.Empty(t, active, "nothing enqueued")
			return
		case <-tick.C:
			if _, err := conn.Write([]byte(" ")); err != nil {
				line := <-status
				require.True(t, line == "" || strings.Contains(line, "408"), line)
				return
			}
		}
	}
}

// An event stream outlives the server's body and write timeouts: it is
// exempt once it starts, each event bounded on its own.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	// Short enough to pass several times over, long enough that a loaded
	// machine gets the stream started before the first ends it.
	b := setup(t, opts{cfg: httpapi.Config{Addr: "127.0.0.1:0", HeaderTimeout: 300 * time.Millisecond,
		BodyTimeout: 400 * time.Millisecond, WriteTimeout: 400 * time.Millisecond}})
	base := b.started(t)
	// Submit and cancel through the plain handler (no timeouts), stream
	// through the server with them.
	resp, m := b.do(t, "POST", "/v1/jobs", "", `{"prompt":"x"}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	id := m["id"].(string)
	req, _ := http.NewRequestWithContext(b.ctx, "GET", base+"/v1/jobs/"+id+"/events", nil)
	stream, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer stream.Body.Close()
	sc := bufio.NewScanner(stream.Body)
	require.True(t, sc.Scan())
	require.Equal(t, "id: 1", sc.Text())
	// Let every server deadline pass several times over, then end the job.
	<-time.After(1500 * time.Millisecond)
	resp, _ = b.do(t, "DELETE", "/v1/jobs/"+id, "", nil)
	require.Equal(t, 200, resp.StatusCode)
	var last string
	for sc.Scan() {
		if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			last = ev
		}
	}
	require.Equal(t, "canceled", last, "the stream lived to see the end")
}

func TestStreamAndInFlightLimits(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{cfg: httpapi.Config{Keys: map[string]string{keyA: "a", keyB: "b"},
		MaxStreamsPerKey: 2, MaxStreamsPerAddr: 3, MaxInFlightPerAddr: 1}})
	resp, m := b.do(t, "POST", "/v1/jobs", keyA, `{"prompt":"x"}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	aJob := m["id"].(string)
	path := "/v1/jobs/" + aJob + "/events"
	open := func(key string) (*http.Response, func()) {
		ctx, cancel := context.WithCancel(b.ctx)
		req, _ := http.NewRequestWithContext(ctx, "GET", b.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp, func() { cancel(); resp.Body.Close() }
	}
	_, close1 := open(keyA)
	_, close2 := open(keyA)
	defer close2()
	third, close3 := open(keyA)
	require.Equal(t, http.StatusTooManyRequests, third.StatusCode, "a third stream for the key")
	require.Equal(t, "5", third.Header.Get("Retry-After"))
	var e map[string]map[string]any
	require.NoError(t, json.NewDecoder(third.Body).Decode(&e))
	require.Equal(t, "too_many_streams", e["error"]["code"])
	require.Contains(t, e["error"]["message"], "http.max_streams_per_key")
	close3()
	// Key b has streams to spare but the address has one left (3 in all).
	other, closeOther := open(keyB)
	defer closeOther()
	require.Equal(t, http.StatusNotFound, other.StatusCode, "key b's own stream limit passed; the job is a's")
	// On a job of its own, b takes the address's last stream; one more is
	// refused for the address, though b itself has streams to spare.
	resp, m = b.do(t, "POST", "/v1/jobs", keyB, `{"prompt":"b's"}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	path = "/v1/jobs/" + m["id"].(string) + "/events"
	own, closeOwn := open(keyB)
	require.Equal(t, http.StatusOK, own.StatusCode)
	fourth, closeFourth := open(keyB)
	require.Equal(t, http.StatusTooManyRequests, fourth.StatusCode, "a fourth stream from the address")
	require.Equal(t, "5", fourth.Header.Get("Retry-After"))
	require.NoError(t, json.NewDecoder(fourth.Body).Decode(&e))
	require.Equal(t, "too_many_streams", e["error"]["code"])
	require.Contains(t, e["error"]["message"], "http.max_streams_per_addr")
	closeFourth()
	closeOwn()
	path = "/v1/jobs/" + aJob + "/events"
	close1()
	// A slot freed: the key may open a stream again. The server releases
	// a slot when the stream's handler returns, after the client's close:
	// wait until the key and the address hold only close2's stream.
	require.NoError(t, b.api.WaitStreams(b.ctx, "k:"+keyA, 1))
	require.NoError(t, b.api.WaitStreams(b.ctx, "a:127.0.0.1", 1))
	again, closeAgain := open(keyA)
	require.Equal(t, http.StatusOK, again.StatusCode)
	closeAgain()

	// In-flight: a request whose body is still coming holds the address's
	// only slot; the server says when it holds it, then a probe is refused.
	pw, done := startSlow(t, b, keyA)
	require.NoError(t, b.api.WaitInFlight(b.ctx, "a:127.0.0.1", 1))
	requireInFlightRefused(t, b, keyB, "http.max_in_flight_per_addr")
	finishSlow(t, pw, done)
	resp, _ = b.do(t, "GET", "/v1/usage", keyB, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the slot is free again")
}

// Open mode refuses any proxy header, even empty, and says to configure
// keys.
func TestOpenModeRefusesEveryProxyHeader(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
		"X-Forwarded-Server", "X-Real-Ip", "X-Client-IP", "True-Client-IP", "CF-Connecting-IP", "Via"} {
		for _, v := range []string{"", "203.0.113.9"} {
			t.Run(h+"="+v, func(t *testing.T) {
				req := httptest.NewRequest("POST", "/v1/jobs", strings.NewReader(`{"prompt":"x"}`))
				req.RemoteAddr = "127.0.0.1:5000"
				req.Header[http.CanonicalHeaderKey(h)] = []string{v}
				rec := httptest.NewRecorder()
				b.api.Handler().ServeHTTP(rec, req)
				require.Equal(t, http.StatusForbidden, rec.Code, rec.Body.String())
				require.Contains(t, rec.Body.String(), "configure keys")
				require.Contains(t, rec.Body.String(), http.CanonicalHeaderKey(h))
			})
		}
	}
	active, err := b.sched.Active(b.ctx, "api:local")
	require.NoError(t, err)
	require.Empty(t, active)
}

// With Redis down every request answers 503 unavailable with Retry-After
// within RedisTimeout (plus slack), never 500 and never hanging; once it
// is back, submits succeed and the jobs from before are all there.
func TestRedisOutageAnswers503(t *testing.T) {
	t.Parallel()
	rs := redistest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := storage.Open(ctx, rs.Config(), zap.NewNop())
	require.NoError(t, err)
	defer store.Close()
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(sched, pol, commands.Limits{}, zap.NewNop())
	require.NoError(t, err)
	const budget = 300 * time.Millisecond
	// Errors are logged: a 500 here names the error that was not read as
	// an outage.
	api, err := httpapi.New(httpapi.Config{RedisTimeout: budget}, svc, sched, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	require.NoError(t, err)
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = api.Stop(c)
	}()
	b := &bundle{ctx: ctx, sched: sched, api: api, srv: srv}

	// While Redis is up, a call on a loaded machine may still run over the
	// budget and rightly answer 503: up asks again. Submits carry an
	// idempotency key, so a submit admitted after its 503 is one job.
	up := func(method, path string, body any, hdr ...string) (*http.Response, map[string]any) {
		for {
			resp, m := b.do(t, method, path, "", body, hdr...)
			if resp.StatusCode != http.StatusServiceUnavailable || ctx.Err() != nil {
				return resp, m
			}
			select { // not hammering a reconnecting client
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	var before []string
	for i := 0; i < 3; i++ {
		resp, m := up("POST", "/v1/jobs", map[string]any{"prompt": fmt.Sprint("before ", i)}, "Idempotency-Key", fmt.Sprint("before-", i))
		require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
		before = append(before, m["id"].(string))
	}

	rs.Stop()
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/jobs", `{"prompt":"during"}`},
		{"GET", "/v1/jobs/" + before[0], ""},
		{"GET", "/v1/jobs/" + before[0] + "/events", ""},
		{"DELETE", "/v1/jobs/" + before[1], ""},
		{"GET", "/v1/queue", ""},
		{"GET", "/v1/usage", ""},
		{"GET", "/v1/admin/policy", ""},
		{"GET", "/v1/jobs/" + before[0] + "/images/0", ""},
		{"GET", "/v1/jobs/" + before[0] + "/previews/p.png", ""},
		{"POST", "/v1/jobs/" + before[0] + "/images/0/upscale", ""},
		{"GET", "/v1/jobs", ""},
		{"GET", "/v1/models", ""},
		{"PATCH", "/v1/admin/policy", `{"field":"max_running","value":"3"}`},
		{"GET", "/v1/admin/defaults", ""},
		{"PATCH", "/v1/admin/defaults", `{"field":"steps","value":"20"}`},
		{"GET", "/v1/admin/usage", ""},
		{"POST", "/v1/admin/users/u1/reset", ""},
		{"PUT", "/v1/admin/users/u1/block", ""},
		{"GET", "/v1/admin/overview", ""},
		{"GET", "/v1/admin/overview/events", ""},
		{"POST", "/v1/admin/dead/1-0/retry", ""},
		{"DELETE", "/v1/admin/dead/1-0", ""},
	} {
		for range 2 { // the first call finds a broken connection, the next a refused one
			start := time.Now()
			var body any
			if c.body != "" {
				body = c.body
			}
			resp, m := b.do(t, c.method, c.path, "", body)
			took := time.Since(start)
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s %s: %v", c.method, c.path, m)
			require.Equal(t, "unavailable", m["error"].(map[string]any)["code"])
			require.NotEmpty(t, resp.Header.Get("Retry-After"))
			// Generous slack over the budget for a loaded machine; an
			// unbounded wait would run into the test's minute.
			require.Less(t, took, budget+5*time.Second, "%s %s", c.method, c.path)
		}
	}

	rs.Start()
	// Until rueidis has reconnected, calls fail fast with 503; up waits it out.
	resp, m := up("POST", "/v1/jobs", `{"prompt":"after"}`, "Idempotency-Key", "after")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "submits succeed once Redis is back: %v", m)
	for _, id := range before {
		resp, m := up("GET", "/v1/jobs/"+id, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, m)
		require.Equal(t, "queued", m["status"], "nothing lost")
	}
	active, err := sched.Active(ctx, "api:local")
	require.NoError(t, err)
	require.Len(t, active, len(before)+1)
}

// A submit that fetches its init image by URL gets limits.init_image_timeout
// for the fetch on top of http.redis_timeout: a fetch slower than the
// Redis budget still submits.
func TestInitImageFetchOutlastsRedisTimeout(t *testing.T) {
	t.Parallel()
	const redisBudget = 200 * time.Millisecond
	var pb bytes.Buffer
	require.NoError(t, png.Encode(&pb, image.NewRGBA(image.Rect(0, 0, 64, 64))))
	imgs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a slow image host: three Redis budgets
		case <-time.After(3 * redisBudget):
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(pb.Bytes())
	}))
	defer imgs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := redistest.Store(t)
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(sched, pol, commands.Limits{AllowPrivateImageURLs: true, InitImageTimeout: 20 * time.Second}, zap.NewNop())
	require.NoError(t, err)
	api, err := httpapi.New(httpapi.Config{RedisTimeout: redisBudget}, svc, sched, zap.NewNop())
	require.NoError(t, err)
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = api.Stop(c)
	}()
	b := &bundle{ctx: ctx, sched: sched, api: api, srv: srv}
	resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "x", "init_image": imgs.URL + "/slow.png"})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
}

// A key's in-flight limit holds whatever address its requests come from;
// another key is not affected.
func TestInFlightLimitPerKey(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{cfg: httpapi.Config{Keys: map[string]string{keyA: "a", keyB: "b"}, MaxInFlightPerKey: 1}})
	pw, done := startSlow(t, b, keyA)
	require.NoError(t, b.api.WaitInFlight(b.ctx, "k:"+keyA, 1))
	requireInFlightRefused(t, b, keyA, "http.max_in_flight_per_key")
	resp, _ := b.do(t, "GET", "/v1/usage", keyB, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "another key is not held")
	finishSlow(t, pw, done)
	resp, _ = b.do(t, "GET", "/v1/usage", keyA, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the slot is free again")
}

// A kept-alive connection with no next request is closed by the server
// at IdleTimeout.
func TestIdleConnectionClosed(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{cfg: httpapi.Config{Addr: "127.0.0.1:0", IdleTimeout: 200 * time.Millisecond}})
	base := b.started(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// Far longer than IdleTimeout, shorter than the body and header
	// timeouts (which would otherwise close an idle connection).
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = r.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the server closed the idle connection")
}

// startSlow starts a submit under key whose body is still coming, so it
// holds its in-flight slot until the test writes the rest to pw; done gets
// its answer.
func startSlow(t *testing.T, b *bundle, key string) (*io.PipeWriter, chan *http.Response) {
	t.Helper()
	pr, pw := io.Pipe()
	slow, err := http.NewRequestWithContext(b.ctx, "POST", b.srv.URL+"/v1/jobs", pr)
	require.NoError(t, err)
	slow.Header.Set("Authorization", "Bearer "+key)
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(slow)
		if err != nil {
			done <- nil
			return
		}
		resp.Body.Close()
		done <- resp
	}()
	_, err = pw.Write([]byte(`{"prompt":`))
	require.NoError(t, err)
	return pw, done
}

// requireInFlightRefused probes under key while a slow request holds the
// only slot: 429, Retry-After 1, naming the config field of the limit.
func requireInFlightRefused(t *testing.T, b *bundle, key, field string) {
	t.Helper()
	probe, m := b.do(t, "GET", "/v1/usage", key, nil)
	require.Equal(t, http.StatusTooManyRequests, probe.StatusCode, m)
	require.Equal(t, "1", probe.Header.Get("Retry-After"))
	require.Equal(t, "too_many_requests", m["error"].(map[string]any)["code"])
	require.Contains(t, m["error"].(map[string]any)["message"], field)
}

// finishSlow writes the rest of startSlow's body; the submit is accepted.
func finishSlow(t *testing.T, pw *io.PipeWriter, done chan *http.Response) {
	t.Helper()
	_, err := pw.Write([]byte(`"y"}`))
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	r := <-done
	require.NotNil(t, r)
	require.Equal(t, http.StatusAccepted, r.StatusCode)
}
