package apiclient_test

import (
	"bytes"
	"errors"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/apiclient"
	"github.com/easelbot/easel/scheduler"
)

func TestSubmitJobImage(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	seed := int64(7)
	sub, err := b.client.Submit(b.ctx, apiclient.JobRequest{Prompt: "a fox", Steps: 3, Width: 64, Height: 72, Seed: &seed}, "")
	require.NoError(t, err)
	require.NotEmpty(t, sub.ID)
	require.Equal(t, b.url+"/v1/jobs/"+sub.ID, sub.Links.Self, "links resolved against the base URL")
	require.Equal(t, b.url+"/v1/jobs/"+sub.ID+"/events", sub.Links.Events)

	var last apiclient.Event
	require.NoError(t, b.client.Events(b.ctx, sub.ID, 0, func(e apiclient.Event) error { last = e; return nil }))
	require.Equal(t, apiclient.EventSucceeded, last.Type)
	require.Equal(t, sub.ID, last.JobID)
	require.Equal(t, "api:local", last.Tenant)
	require.False(t, last.Time.IsZero())

	j, err := b.client.Job(b.ctx, sub.ID)
	require.NoError(t, err)
	require.Equal(t, string(scheduler.StatusSucceeded), j.Status)
	require.NotNil(t, j.CreatedAt)
	require.NotNil(t, j.FinishedAt)
	require.Nil(t, j.Error)
	require.Len(t, j.Images, 1)
	require.Equal(t, b.url+"/v1/jobs/"+sub.ID+"/images/0", j.Images[0].URL, "image URL resolved against the base URL")
	require.Equal(t, seed, j.Images[0].Seed)

	raw, err := b.client.Image(b.ctx, sub.ID, 0)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(raw))
	require.NoError(t, err)
	require.Equal(t, 64, img.Bounds().Dx())

	_, err = b.client.Image(b.ctx, sub.ID, 5)
	var ae *apiclient.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusNotFound, ae.Status)

	err = b.client.Cancel(b.ctx, sub.ID)
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusConflict, ae.Status)
	require.Equal(t, "finished", ae.Code)
}

func TestSubmitRefusedIsAPIError(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{policy: scheduler.PolicyConfig{Defaults: scheduler.Policy{
		UserRate: &scheduler.Rate{PerMinute: 1, Burst: 1}}}})
	_, err := b.client.Submit(b.ctx, apiclient.JobRequest{Prompt: "x", Width: 7}, "")
	var ae *apiclient.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusBadRequest, ae.Status)
	require.Equal(t, "invalid_request", ae.Code)
	require.Equal(t, "width", ae.Field)
	require.True(t, strings.HasPrefix(err.Error(), "submit: width: "), err.Error())

	_, err = b.client.Submit(b.ctx, apiclient.JobRequest{Prompt: "x"}, "")
	require.NoError(t, err)
	_, err = b.client.Submit(b.ctx, apiclient.JobRequest{Prompt: "y"}, "")
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusTooManyRequests, ae.Status)
	require.Equal(t, "user_rate", ae.Code)
	require.Greater(t, ae.RetryAfter, time.Duration(0))
	require.LessOrEqual(t, ae.RetryAfter, time.Minute)
}

// TestSubmitResendsLostAnswer drops the connection after the server took
// the first submit; Submit resends with the same Idempotency-Key and gets
// the same job, and the server holds one job, not two.
func TestSubmitResendsLostAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{step: 50 * time.Millisecond})
	target, err := url.Parse(b.url)
	require.NoError(t, err)
	proxy := relay(target)
	var mu sync.Mutex
	var keys []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			proxy.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		first := len(keys) == 1
		mu.Unlock()
		if first {
			proxy.ServeHTTP(dropAnswer{w}, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	c, err := apiclient.New(front.URL, "", nil)
	require.NoError(t, err)

	sub, err := c.Submit(b.ctx, apiclient.JobRequest{Prompt: "once", Steps: 100}, "k-1")
	require.NoError(t, err)
	mu.Lock()
	require.Equal(t, []string{"k-1", "k-1"}, keys)
	mu.Unlock()
	active, err := b.app.Sched.Active(b.ctx, "api:local")
	require.NoError(t, err)
	require.Len(t, active, 1, "one job despite two submits")
	require.Equal(t, sub.ID, active[0].ID)
	require.NoError(t, c.Cancel(b.ctx, sub.ID))
}

// dropAnswer lets the proxied request through, then aborts the connection
// instead of answering.
type dropAnswer struct{ http.ResponseWriter }

func (dropAnswer) WriteHeader(int) { panic(http.ErrAbortHandler) }

func TestNewRejectsBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://h", "http://", "http://u:p@h", "http://h/?q=1"} {
		_, err := apiclient.New(u, "", nil)
		require.Error(t, err, u)
		require.NotContains(t, err.Error(), ":p@", "no password in errors")
	}
	_, err := apiclient.New("https://easel.example/prefix", "k", nil)
	require.NoError(t, err)
}

func TestAPIErrorMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  apiclient.APIError
		want string
	}{
		{apiclient.APIError{Status: 400, Field: "steps", Message: "steps: must be at most 150"}, "steps: must be at most 150"},
		{apiclient.APIError{Status: 400, Field: "steps", Message: "must be at most 150"}, "steps: must be at most 150"},
		{apiclient.APIError{Status: 404, Message: "no such job"}, "no such job"},
		{apiclient.APIError{Status: 502}, "HTTP 502 Bad Gateway"},
	} {
		require.Equal(t, tc.want, tc.err.Error())
		var target *apiclient.APIError
		require.True(t, errors.As(error(&tc.err), &target))
	}
}
