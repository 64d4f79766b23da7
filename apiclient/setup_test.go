package apiclient_test

import (
	"context"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/easelbot/easel/apiclient"
	"github.com/easelbot/easel/bot"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/fakesd"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._background"),
		// rueidis sleeps out a reconnect back-off in a goroutine of its own (singleflight DelayDo), which can outlive a closed client by up to a second.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("os/exec.(*Cmd).Wait"),
		goleak.IgnoreAnyFunction("github.com/easelbot/easel/internal/redisproc.startOn.func1"))
}

// opts tune the Easel that setup runs.
type opts struct {
	// step is the fake backend's time per sampling step.
	step time.Duration
	// sched and policy are the scheduler config and the owner's policy.
	sched  scheduler.Config
	policy scheduler.PolicyConfig
}

type bundle struct {
	ctx    context.Context
	url    string
	app    *bot.App
	fake   *fakesd.Server
	client *apiclient.Client
}

// setup runs a real Easel (serve role, API without keys on loopback) on the
// test Redis with a fake Stable Diffusion backend.
func setup(t *testing.T, o opts) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	fake := fakesd.New(fakesd.Config{StepDuration: o.step, PreviewEvery: 2})
	fsrv := httptest.NewServer(fake.Handler())
	t.Cleanup(fsrv.Close)
	cfg := &bot.Config{Redis: redistest.Config(t), Scheduler: o.sched, Policy: o.policy}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Backends = []bot.BackendConfig{{Name: "fake", Kind: "fakesd", URL: fsrv.URL}}
	app, err := bot.New(cfg, bot.RoleServe, zap.NewNop(), bot.Options{})
	require.NoError(t, err)
	require.NoError(t, app.Start(ctx))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = app.Stop(c)
	})
	url := "http://" + app.HTTP.Addr()
	client, err := apiclient.New(url, "", nil)
	require.NoError(t, err)
	return &bundle{ctx: ctx, url: url, app: app, fake: fake, client: client}
}

// relay is a reverse proxy to target that adds no forwarding headers: the
// Easel of the tests has no keys and so refuses proxied requests.
func relay(target *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		FlushInterval: -1,
	}
}
