package httpapi_test

// Browser tests: Debian's Chromium, headless, driven by chromedp, against
// the real HTTP server on loopback, a real redis-server and a worker on the
// fake A1111 over HTTP. CI installs Chromium (test.sh); without it these
// tests fail and say how to install it.

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/worker"
)

// chromiumPath finds Chromium, or fails the test saying how to get it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("browser tests need Chromium on PATH: ./test.sh installs it (Debian/Ubuntu: apt-get install chromium)")
	return ""
}

// browser starts a headless Chromium for the test and returns its context.
func browser(t *testing.T, parent context.Context) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(parent, opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	_, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	require.NoError(t, err, "start Chromium")
	return ctx
}

// screenshot saves the page as <name>.png under $EASEL_SCREENSHOTS (the
// README's pictures) or the test's temp dir.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	dir := os.Getenv("EASEL_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	p := filepath.Join(dir, name+".png")
	require.NoError(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot: %s", p)
}

// startPacedWorker runs a worker on a fake A1111 slow enough (steps of
// step) for a page to see progress and previews.
func (b *bundle) startPacedWorker(t *testing.T, step time.Duration) {
	t.Helper()
	b.fake = fakesd.New(fakesd.Config{StepDuration: step, PreviewEvery: 2})
	fsrv := httptest.NewServer(b.fake.Handler())
	t.Cleanup(fsrv.Close)
	client, err := a1111.New(a1111.Config{BaseURL: fsrv.URL, ProgressInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	w, err := worker.New(worker.Config{Name: "t"}, b.sched, []worker.Backend{{Name: "fake", Backend: client}}, zap.NewNop())
	require.NoError(t, err)
	require.NoError(t, w.Start(b.ctx))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(c)
	})
}

// unlabeled lists the page's form controls that have no accessible name.
const unlabeled = `[...document.querySelectorAll('input, select, textarea, button')]
  .filter(e => !e.closest('[hidden]') && !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby') && !e.textContent.trim())
  .map(e => e.id || e.outerHTML)`

func TestBrowserPlayground(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{timeout: 90 * time.Second})
	b.startPacedWorker(t, 40*time.Millisecond)
	ctx := browser(t, b.ctx)
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		require.NoError(t, err)
		return v
	}

	// The pickers fill from GET /v1/models; every control has a label.
	do(chromedp.Navigate(b.srv.URL+"/"),
		chromedp.WaitReady(css(`#model option[value="fake-v1-5"]`)),
		chromedp.WaitReady(css(`#sampler option:nth-child(2)`)))
	noLabel, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](unlabeled))
	require.NoError(t, err)
	require.Empty(t, noLabel, "every control has a label")

	// An invalid seed is refused at the field, not sent as 0.
	do(chromedp.SendKeys(css("#prompt"), "a lighthouse at dusk"),
		chromedp.SetValue(css("#seed"), "12abc"),
		chromedp.Click(css("#go")),
		chromedp.WaitVisible(css(`#seed[aria-invalid="true"]`)))
	require.Contains(t, text("#seed-err"), "whole number")
	jobs, err := b.sched.Active(b.ctx, "api:local")
	require.NoError(t, err)
	require.Empty(t, jobs, "nothing submitted")

	// The API's field error (width not a multiple of 8) shows at the field.
	do(chromedp.SetValue(css("#seed"), "7"),
		chromedp.SetValue(css("#width"), "500"),
		chromedp.Click(css("#go")),
		chromedp.WaitVisible(css(`#width[aria-invalid="true"]`)))
	require.Contains(t, text("#width-err"), "multiple of 8")
	require.Equal(t, "", text("#seed-err"))
	screenshot(t, ctx, "playground-field-error")

	// An aspect preset, then submit with the keyboard: progress and a
	// preview appear, then the grid shows both images.
	do(chromedp.Click(css(`#aspect button[title="768×512"]`)),
		chromedp.Focus(css("#go")),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(css(`#grid img.preview[src^="blob:"]`)),
		chromedp.WaitVisible(css(`#grid .tile:nth-child(2) img:not(.preview)[src^="blob:"]`)))
	require.Contains(t, text("#status"), "Done")
	bar, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.getElementById('bar').value`))
	require.NoError(t, err)
	require.Equal(t, 1.0, bar)
	screenshot(t, ctx, "playground")

	// The history panel lists the job; reroll runs a new one.
	do(chromedp.WaitVisible(css(`#history button img[src^="blob:"]`)))
	require.Contains(t, text(`#history button`), "a lighthouse at dusk")
	do(chromedp.Click(css(`#grid .tile:first-child .bar button`)), // Reroll
		chromedp.WaitVisible(css(`#history button:nth-child(2)`)),
		chromedp.WaitVisible(css(`#grid .tile:nth-child(2) img:not(.preview)[src^="blob:"]`)))
	page, err := b.sched.FinishedPage(b.ctx, "api:local", "", "", 10)
	require.NoError(t, err)
	require.Len(t, page.Jobs, 2)
	var w0, w1 int
	require.NoError(t, jsonField(page.Jobs[0].Payload, "width", &w0))
	require.NoError(t, jsonField(page.Jobs[1].Payload, "width", &w1))
	require.Equal(t, []int{768, 768}, []int{w0, w1})
	require.NotEqual(t, page.Jobs[0].ID, page.Jobs[1].ID)
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// jsonField decodes one field of a JSON object into v.
func jsonField(raw []byte, name string, v any) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	return json.Unmarshal(m[name], v)
}

func TestBrowserDashboard(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{timeout: 90 * time.Second, sched: scheduler.Config{MaxAttempts: 1}})
	b.startPacedWorker(t, 30*time.Millisecond)
	ctx := browser(t, b.ctx)
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	submitAs := func(user, prompt string) string {
		t.Helper()
		steps := 80
		if prompt == "a running fox" {
			steps = 150 // long enough to look at the two queued behind it
		}
		resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": prompt, "steps": steps, "user": user})
		require.Equal(t, 202, resp.StatusCode, m)
		return m["id"].(string)
	}
	submit := func(prompt string) string { t.Helper(); return submitAs("ada", prompt) }

	do(chromedp.Navigate(b.srv.URL+"/admin"),
		chromedp.WaitVisible(css(`#live.ok`)),
		chromedp.WaitVisible(css(`#backends tr td span.ok`)))
	noLabel, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](unlabeled))
	require.NoError(t, err)
	require.Empty(t, noLabel, "every control has a label")

	// A job submitted after the page loaded shows up running, live; with
	// two more queued behind it (equal user weights) each waiting user is
	// entitled to half the tenant's share, and the tenant, the only one
	// waiting, to all of it.
	id := submit("a running fox")
	do(chromedp.WaitVisible(css(`#jobs tr[data-job="`+id+`"][data-status="running"][data-backend="fake"] progress:not([value="0"])`)),
		chromedp.WaitVisible(css(`#users tr[data-user="ada"][data-running="1"]`)))
	submitAs("bob", "a waiting owl")
	submitAs("cy", "a waiting hare")
	do(chromedp.WaitVisible(css(`#users tr[data-user="cy"]`)))
	entitled := func(sel string) string { // one read: the live page replaces its nodes
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector(`+strconv.Quote(sel)+`).textContent`))
		require.NoError(t, err)
		return v
	}
	require.Equal(t, "entitled now: 100%", entitled("#entitled"))
	require.Equal(t, "50%", entitled(`#users tr[data-user="bob"] td.entitled`))
	require.Equal(t, "50%", entitled(`#users tr[data-user="cy"] td.entitled`))
	require.Equal(t, "—", entitled(`#users tr[data-user="ada"] td.entitled`), "nothing of ada's waits")
	screenshot(t, ctx, "dashboard")
	do(chromedp.WaitNotPresent(css(`#jobs tr[data-job]`)))
	// Finished jobs show as thumbnails.
	do(chromedp.WaitVisible(css(`#recent img[src^="blob:"]`)))

	// A job that fails for good lands in the dead letters; Retry runs it again.
	b.fake.FailNext(1, 500)
	dead := submit("a doomed fox")
	do(chromedp.WaitVisible(css(`#dead tr[data-entry]`)))
	_, pos, err := b.sched.ReadEvents(b.ctx, "", 0) // the events stream's end, before the retry
	require.NoError(t, err)
	// Clicked in one evaluation: the live page replaces its rows on every
	// overview, so a node looked up first may be gone by the click.
	clicked, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`(() => { const b = document.querySelector('#dead tr[data-entry] button'); if (b) b.click(); return !!b })()`))
	require.NoError(t, err)
	require.True(t, clicked, "the dead letter's Retry button")
	do(chromedp.WaitNotPresent(css(`#dead tr[data-entry]`)))
	// The retried job (a new id) finishes: blocking reads of the shared
	// events stream until its succeeded event.
	for finished := false; !finished; {
		var evs []scheduler.Event
		evs, pos, err = b.sched.ReadEvents(b.ctx, pos, 5*time.Second)
		require.NoError(t, err, "the retried job never finished")
		for _, e := range evs {
			finished = finished || (e.Type == scheduler.EventSucceeded && e.JobID != dead)
		}
	}
	page, err := b.sched.FinishedPage(b.ctx, "api:local", "ada", "", 10)
	require.NoError(t, err)
	require.Len(t, page.Jobs, 3)
	require.Equal(t, scheduler.StatusSucceeded, page.Jobs[0].Status)
	require.NotEqual(t, dead, page.Jobs[0].ID, "the retry is a new job")

	// A policy edit through the form (ada: one image a day; she has had
	// three) applies to the next submit.
	do(chromedp.SetValue(css("#pfield"), "user_daily_images"),
		chromedp.SendKeys(css("#puser"), "ada"),
		chromedp.SetValue(css("#pvalue"), "zero"),
		chromedp.Click(css(`#pf button[type="submit"]`)),
		chromedp.WaitVisible(css(`#pf[data-state="error"] #pvalue[aria-invalid="true"]`)))
	// The next submit waits for the page to say the PATCH was saved, not
	// only for the error mark to clear (which happens before the request).
	do(chromedp.SetValue(css("#pvalue"), "1"),
		chromedp.Click(css(`#pf button[type="submit"]`)),
		chromedp.WaitVisible(css(`#pf[data-state="saved"]`)))
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitNotPresent(css(`#pvalue[aria-invalid="true"]`))))
	resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "one too many", "user": "ada"})
	require.Equal(t, 429, resp.StatusCode, m)
	_, m = b.do(t, "GET", "/v1/admin/overview", "", nil)
	require.Equal(t, map[string]any{"user_quota": 1.0}, m["refusals"], "the refusal is counted by reason")
	// The page learns of it without a job event: the refusal wakes it.
	do(chromedp.WaitVisible(css(`#refusals tr[data-reason="user_quota"]`)))
}
