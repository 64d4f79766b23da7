package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
)

// TestBrowserPlaygroundWaitingForBackend: while the only backend is
// reported down and no worker runs, the playground's status line says the
// job waits for it (the position event); once a worker is up, it runs.
func TestBrowserPlaygroundWaitingForBackend(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{timeout: 90 * time.Second, sched: scheduler.Config{PositionInterval: 20 * time.Millisecond}})
	m := scheduler.NewMaintainer(b.sched, "m", zap.NewNop())
	require.NoError(t, m.Start(b.ctx))
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	require.NoError(t, b.sched.BackendDown(b.ctx, "gpu0", time.Now().Add(-time.Minute)))
	ctx := browser(t, b.ctx)
	status := `document.getElementById('status').textContent`
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(b.srv.URL+"/"),
		chromedp.WaitReady(css("#prompt")),
		chromedp.SendKeys(css("#prompt"), "a lighthouse at dusk"),
		chromedp.Click(css("#go")),
		chromedp.Poll[chromedp.Void](status+`.includes('waiting for a GPU backend (gpu0 unreachable since')`,
			chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(60*time.Second))))
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](status))
	require.NoError(t, err)
	require.Regexp(t, `^Queued — #1 in line, waiting for a GPU backend \(gpu0 unreachable since \d\d:\d\d:\d\d UTC\)$`, got)
	screenshot(t, ctx, "playground-waiting")

	require.NoError(t, b.sched.BackendUp(b.ctx, "gpu0"))
	b.startPacedWorker(t, time.Millisecond)
	require.NoError(t, chromedp.Do(ctx, chromedp.Poll[chromedp.Void](status+`.startsWith('Done')`,
		chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(60*time.Second))))
}
