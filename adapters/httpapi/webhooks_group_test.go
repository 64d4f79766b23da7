package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters/httpapi"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// A stopped instance leaves a webhook delivery it had in hand to another
// instance, which delivers it with the same X-Easel-Event-Id.
func TestWebhookTakenOverByAnotherInstance(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var ids []string
	firstArrived := make(chan struct{})
	delivered := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // then the server notices the client hanging up
		mu.Lock()
		ids = append(ids, r.Header.Get("X-Easel-Event-Id"))
		n := len(ids)
		mu.Unlock()
		if n == 1 {
			close(firstArrived)
			<-r.Context().Done() // instance A is stopped in the middle
			return
		}
		w.WriteHeader(http.StatusNoContent)
		if n == 2 {
			close(delivered)
		}
	}))
	defer hook.Close()

	cfg := redistest.Config(t)
	cfgAPI := httpapi.Config{Addr: "127.0.0.1:0", AllowPrivateCallbacks: true, WebhookClaimAfter: 300 * time.Millisecond}
	a := instance(t, cfg, cfgAPI, "a")
	a.startWorker(t)
	resp, m := a.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "x", "steps": 2, "callback_url": hook.URL})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	select {
	case <-firstArrived:
	case <-a.ctx.Done():
		t.Fatal("instance a did not deliver")
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, a.api.Stop(gone), "a abandons the delivery in hand")

	b := instance(t, cfg, cfgAPI, "b")
	require.NoError(t, b.api.Start(b.ctx))
	select {
	case <-delivered:
	case <-b.ctx.Done():
		t.Fatal("instance b did not take the delivery over")
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, ids, 2)
	require.Equal(t, ids[0], ids[1], "the same event id: the receiver can deduplicate")
	require.Contains(t, ids[0], m["id"].(string)+"-")
}

// instance is one `serve`'s API on the shared store config.
func instance(t *testing.T, cfg storage.Config, api httpapi.Config, name string) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	store, err := storage.Open(ctx, cfg, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(store.Close)
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(sched, pol, commands.Limits{}, zap.NewNop())
	require.NoError(t, err)
	s, err := httpapi.New(api, svc, sched, zap.NewNop())
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(c)
	})
	return &bundle{ctx: ctx, sched: sched, api: s, srv: srv}
}
