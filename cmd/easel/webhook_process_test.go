package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/internal/redistest"
)

// TestKilledServeWebhookDeliveredByAnother: a `serve` process is SIGKILLed
// while a webhook delivery is in flight (the receiver has the request and
// has not answered). Another `serve` process, started afterwards, takes the
// pending delivery over from the events stream's consumer group and
// delivers it with the same X-Easel-Event-Id.
func TestKilledServeWebhookDeliveredByAnother(t *testing.T) {
	t.Parallel()
	c := newCluster(t, redistest.Config(t))
	var key string
	for k := range c.keys {
		key = k
		break
	}

	var mu sync.Mutex
	var ids []string
	inFlight := make(chan struct{}) // the first delivery reached the receiver
	delivered := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		mu.Lock()
		ids = append(ids, r.Header.Get("X-Easel-Event-Id"))
		n := len(ids)
		mu.Unlock()
		switch n {
		case 1:
			close(inFlight)
			<-r.Context().Done() // held until its sender dies
		case 2:
			w.WriteHeader(http.StatusNoContent)
			close(delivered)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer hook.Close()

	webhookEnv := []string{"EASEL_HTTP_ALLOW_PRIVATE_CALLBACKS=true", "EASEL_HTTP_WEBHOOK_CLAIM_AFTER=500ms"}
	start := func(name string, extra ...string) (*proc, string) {
		addr := freeAddr(t)
		env := c.env(append([]string{backends(c.fakesd()), "EASEL_WORKER_NAME=" + name, "EASEL_HTTP_ADDR=" + addr},
			append(webhookEnv, extra...)...)...)
		p := startProc(t, env, "serve")
		p.waitListening(t, addr)
		return p, "http://" + addr
	}

	first, base := start("first")
	id, status := submit(t, base, key, map[string]any{"prompt": "a hooked fox", "width": 64, "height": 64, "steps": 2,
		"callback_url": hook.URL})
	require.Equal(t, http.StatusAccepted, status)
	select {
	case <-inFlight:
	case <-time.After(60 * time.Second):
		t.Fatal("the first serve never delivered the webhook")
	}
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.done

	// The second instance runs no worker: it only follows the events.
	start("second", "EASEL_WORKER_DISABLED=true")
	select {
	case <-delivered:
	case <-time.After(60 * time.Second):
		t.Fatal("the second serve did not take the pending delivery over")
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, ids, 2)
	require.Equal(t, ids[0], ids[1], "the same event id: the receiver can deduplicate")
	require.True(t, strings.HasPrefix(ids[0], id+"-"), ids[0])
}
