package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

// Config tunes a worker.
type Config struct {
	// Name identifies this worker process in the work stream's consumer
	// group; each slot appends its backend name. Default "<hostname>-<pid>".
	Name string `yaml:"name"`
	// HealthInterval is how often an unhealthy backend is checked before it
	// takes jobs again (doubling up to 30s while it stays down), and how
	// often an idle backend is checked: after two failed checks in a row it
	// takes no jobs and its catalog is marked down (GET /v1/models and
	// autocomplete leave it out) until a check passes. Default 2s.
	HealthInterval time.Duration `yaml:"health_interval"`
	// BlockTimeout bounds one blocking read of the work stream; the read is
	// simply repeated. Default 10s.
	BlockTimeout time.Duration `yaml:"-"`
	// Disabled makes `easel serve` run no worker slots (and no embedded fake
	// backend): GPU workers run as separate `easel worker` processes.
	// Default false.
	Disabled bool `yaml:"disabled"`
}

// Backend is a named backend this worker serves.
type Backend struct {
	Name    string
	Backend sdclient.Backend
}

// Worker runs jobs on its backends, one at a time per backend.
type Worker struct {
	cfg      Config
	sched    *scheduler.Scheduler
	backends []Backend
	log      *zap.Logger

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc // job id → cancel
	// ads is each backend's catalog as last published (guarded by mu), so
	// that a job that switched the loaded model can update it.
	ads map[string]Advertised
	// health is each backend's health as its checks found it (guarded by
	// mu).
	health map[string]*backendHealth

	// slotOf is each backend's scheduler slot, made in Start.
	slotOf map[string]*scheduler.Slot

	takeCancel context.CancelFunc
	runCancel  context.CancelCauseFunc
	slots      sync.WaitGroup
	listener   sync.WaitGroup
	observers  []func(Observation)
}

// Observation reports one step of a slot, for metrics and tests.
type Observation struct {
	Backend string
	JobID   string
	// Kind is "started", "finished", "down", "up" or "advertised" (the
	// backend's catalog was published).
	Kind    string
	Outcome string // for "finished": succeeded, retrying, failed, canceled, handed_back, stale
	At      time.Time
	// Queued and Dispatched (for "started") are when the job was submitted
	// and when this attempt left the queue.
	Queued, Dispatched time.Time
}

var (
	errCanceled = errors.New("job canceled")
	errStale    = errors.New("lease lost")
	errStopping = errors.New("worker stopping")
)

// WithDefaults returns c with its zero fields set to their defaults, but
// Name, which New sets per process ("<hostname>-<pid>").
func (c Config) WithDefaults() Config {
	if c.HealthInterval == 0 {
		c.HealthInterval = 2 * time.Second
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = 10 * time.Second
	}
	return c
}

// New returns a worker for backends.
func New(cfg Config, sched *scheduler.Scheduler, backends []Backend, log *zap.Logger) (*Worker, error) {
	if cfg.Name == "" {
		host, _ := os.Hostname()
		cfg.Name = host + "-" + strconv.Itoa(os.Getpid())
	}
	cfg = cfg.WithDefaults()
	seen := map[string]bool{}
	for i, b := range backends {
		if b.Name == "" || b.Backend == nil {
			return nil, fmt.Errorf("worker: backends[%d]: name and backend are required", i)
		}
		if seen[b.Name] {
			return nil, fmt.Errorf("worker: backends[%d]: duplicate name %q", i, b.Name)
		}
		seen[b.Name] = true
	}
	return &Worker{cfg: cfg, sched: sched, backends: backends, log: log, running: map[string]context.CancelCauseFunc{},
		ads: map[string]Advertised{}, health: map[string]*backendHealth{}}, nil
}

// Observe registers fn to be called (synchronously, from slot goroutines)
// at each slot step. Call before Start.
func (w *Worker) Observe(fn func(Observation)) { w.observers = append(w.observers, fn) }

func (w *Worker) observe(o Observation) {
	o.At = time.Now()
	for _, fn := range w.observers {
		fn(o)
	}
}

// Start starts the cancel listener and one goroutine per backend slot.
func (w *Worker) Start(ctx context.Context) error {
	takeCtx, takeCancel := context.WithCancel(context.Background())
	runCtx, runCancel := context.WithCancelCause(context.Background())
	w.takeCancel, w.runCancel = takeCancel, runCancel
	w.slotOf = make(map[string]*scheduler.Slot, len(w.backends))
	for _, b := range w.backends {
		w.slotOf[b.Name] = w.sched.Slot(w.cfg.Name+"-"+b.Name, b.Name)
	}
	// Slots start once cancel notices are live, so a cancel is never missed.
	ready := make(chan struct{})
	w.listener.Add(1)
	go func() {
		defer w.listener.Done()
		w.listenCancels(runCtx, ready)
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.listener.Add(1)
	go func() {
		defer w.listener.Done()
		defer func() {
			if p := recover(); p != nil {
				w.log.Error("advertising backends panicked; stopped", zap.Any("panic", p), zap.Stack("stack"))
			}
		}()
		w.advertise(runCtx)
	}()
	for _, b := range w.backends {
		w.listener.Add(1)
		go func() {
			defer w.listener.Done()
			w.watchIdle(runCtx, b)
		}()
	}
	for _, b := range w.backends {
		w.slots.Add(1)
		go func() {
			defer w.slots.Done()
			w.slot(takeCtx, runCtx, b)
		}()
	}
	return nil
}

// Stop stops taking jobs, waits for running ones until ctx ends, then
// interrupts them; interrupted jobs are handed back to the queue. Last, it
// withdraws this worker's catalogs of its backends.
func (w *Worker) Stop(ctx context.Context) error {
	if w.takeCancel == nil {
		return nil
	}
	w.takeCancel()
	done := make(chan struct{})
	go func() { w.slots.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		w.runCancel(errStopping)
		<-done
	}
	w.runCancel(errStopping)
	w.listener.Wait()
	// Nothing publishes now. Another worker's advertisement of the same
	// backend names keeps them listed; a killed worker's expire (adTTL).
	names := make([]string, len(w.backends))
	for i, b := range w.backends {
		names[i] = b.Name
	}
	wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.sched.WithdrawBackends(wctx, w.cfg.Name, names...); err != nil {
		w.log.Warn("withdraw the backends' catalogs; they expire by themselves", zap.Error(err))
	}
	return nil
}

func (w *Worker) listenCancels(ctx context.Context, ready chan struct{}) {
	var once sync.Once
	for ctx.Err() == nil {
		err := w.sched.CancelNotices(ctx, func() { once.Do(func() { close(ready) }) }, func(id string) {
			w.mu.Lock()
			cancel := w.running[id]
			w.mu.Unlock()
			if cancel != nil {
				cancel(errCanceled)
			}
		})
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("cancel subscription ended; resubscribing", zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Advertised is what a worker publishes about a backend so that chat
// adapters can offer its real models and samplers.
type Advertised struct {
	Models     []string `json:"models"`
	Loaded     string   `json:"loaded,omitempty"`
	Samplers   []string `json:"samplers"`
	Schedulers []string `json:"schedulers,omitempty"`
	LoRAs      []string `json:"loras,omitempty"`
	Upscalers  []string `json:"upscalers,omitempty"`
}

// advertise publishes each backend's models and samplers now and every 5
// minutes (with a 15-minute TTL, so a gone backend disappears).
func (w *Worker) advertise(ctx context.Context) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		for _, b := range w.backends {
			w.advertiseOne(ctx, b)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// advertiseOne publishes one backend's catalog, and its models and loaded
// model to its slot for routing (a job that succeeds there updates the
// loaded one in between).
func (w *Worker) advertiseOne(ctx context.Context, b Backend) {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var ad Advertised
	cat, err := catalog(actx, b)
	down := w.isDown(b.Name)
	if err == nil {
		for _, m := range cat.Models {
			ad.Models = append(ad.Models, m.Name)
		}
		ad.Loaded, ad.Samplers, ad.Schedulers = cat.Loaded, cat.Samplers, cat.Schedulers
		ad.LoRAs, ad.Upscalers = cat.LoRAs, cat.Upscalers
		// A down backend answering its catalog has not passed a health
		// check: the health loops list it again.
		err = w.publishAd(actx, b.Name, ad, down)
		if err == nil {
			err = w.slotOf[b.Name].Advertise(actx, scheduler.Capabilities{Models: ad.Models, Loaded: ad.Loaded}, adTTL)
		}
		if err == nil {
			w.mu.Lock()
			w.ads[b.Name] = ad
			w.mu.Unlock()
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			w.log.Debug("advertise backend", zap.String("backend", b.Name), zap.Error(err))
		}
		return
	}
	w.observe(Observation{Backend: b.Name, Kind: "advertised"})
}

// backendHealth is what a worker's health checks found of one backend.
type backendHealth struct {
	// busy is set while the slot runs a job or waits for the backend to
	// be healthy again: the idle checks leave it to the slot meanwhile.
	busy bool
	// down is set from the second failed check in a row (one blip is not
	// enough) or a job's backend failure, until a check passes.
	down bool
	// fails counts the idle checks failed in a row.
	fails int
}

// healthOf returns b's health record; call with w.mu held.
func (w *Worker) healthOf(name string) *backendHealth {
	h := w.health[name]
	if h == nil {
		h = &backendHealth{}
		w.health[name] = h
	}
	return h
}

func (w *Worker) isDown(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.healthOf(name).down
}

func (w *Worker) setBusy(name string, busy bool) {
	w.mu.Lock()
	h := w.healthOf(name)
	h.busy, h.fails = busy, 0
	w.mu.Unlock()
}

// adTTL is how long a published catalog lives without a refresh (the
// refresh comes every 5 minutes).
const adTTL = 15 * time.Minute

// publishAd publishes b's catalog for adTTL, marked down or not.
func (w *Worker) publishAd(ctx context.Context, name string, ad Advertised, down bool) error {
	raw, _ := json.Marshal(ad)
	if down {
		return w.sched.AdvertiseBackendDown(ctx, w.cfg.Name, name, raw, adTTL)
	}
	return w.sched.AdvertiseBackend(ctx, w.cfg.Name, name, raw, adTTL)
}

// markDown takes a backend out of rotation while its health checks fail:
// its slot is paused (no longer offered, so no job is dispatched to it) and
// its catalog marked down, so listings show healthy backends only; submits
// still accept its names until the advertisement expires (15 minutes after
// its last refresh).
func (w *Worker) markDown(ctx context.Context, b Backend) {
	w.mu.Lock()
	w.healthOf(b.Name).down = true
	ad, ok := w.ads[b.Name]
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// Should the withdrawal fail, the offer runs out within a lease, and
	// the paused slot does not renew it.
	if err := w.slotOf[b.Name].Pause(ctx); err != nil && ctx.Err() == nil {
		w.log.Warn("withdraw the down backend's slot", zap.String("backend", b.Name), zap.Error(err))
	}
	if !ok {
		return // never advertised: no catalog to mark
	}
	if err := w.publishAd(ctx, b.Name, ad, true); err != nil && ctx.Err() == nil {
		w.log.Debug("mark backend's catalog down", zap.String("backend", b.Name), zap.Error(err))
	}
}

// markUp puts a backend back in rotation after a health check passed: its
// slot is offered again and its catalog, read afresh from the backend,
// listed again.
func (w *Worker) markUp(ctx context.Context, b Backend) {
	w.mu.Lock()
	w.healthOf(b.Name).down = false
	w.mu.Unlock()
	w.slotOf[b.Name].Resume()
	w.advertiseOne(ctx, b)
}

// downReportEvery is how often the idle checks repeat a down backend's
// report to the scheduler (a report counts for 2 minutes).
const downReportEvery = 30 * time.Second

// watchIdle checks b's health every HealthInterval while its slot is idle
// (a job's outcome judges a busy one), so a backend that dies between
// jobs is out of rotation within two checks rather than when the next job
// fails on it (its slot is not offered, its catalog not listed), and comes
// back at the first check that passes.
func (w *Worker) watchIdle(ctx context.Context, b Backend) {
	t := time.NewTicker(w.cfg.HealthInterval)
	defer t.Stop()
	// While the backend is down here, the scheduler hears so (again every
	// downReportEvery, within the report's life), so that queued jobs say
	// what they wait for; and hears when it is back or this worker stops.
	var since, reported time.Time
	reportDown := func() {
		if err := w.sched.BackendDown(ctx, b.Name, since); err != nil && ctx.Err() == nil {
			w.log.Warn("report backend down", zap.String("backend", b.Name), zap.Error(err))
		}
		reported = time.Now()
	}
	reportUp := func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := w.sched.BackendUp(uctx, b.Name); err != nil {
			w.log.Warn("report backend up", zap.String("backend", b.Name), zap.Error(err))
		}
		since = time.Time{}
	}
	defer func() {
		if !since.IsZero() {
			reportUp()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		busy := w.healthOf(b.Name).busy
		w.mu.Unlock()
		if busy {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := health(hctx, b)
		cancel()
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		h := w.healthOf(b.Name)
		if h.busy { // a job started meanwhile: its outcome counts instead
			w.mu.Unlock()
			continue
		}
		wasDown := h.down
		if err == nil {
			h.fails = 0
		} else {
			h.fails++
		}
		goesDown := err != nil && !wasDown && h.fails >= 2
		if goesDown {
			// Set with the busy check above: from here the slot hands
			// back a job it is given rather than start it (see slot).
			h.down = true
		}
		w.mu.Unlock()
		switch {
		case err == nil && wasDown:
			w.log.Info("idle backend healthy again", zap.String("backend", b.Name))
			w.markUp(ctx, b)
			reportUp()
			w.observe(Observation{Backend: b.Name, Kind: "up"})
		case goesDown:
			w.log.Warn("idle backend failed its health checks; out of rotation until one passes",
				zap.String("backend", b.Name), zap.Error(err))
			w.markDown(ctx, b)
			since = time.Now()
			reportDown()
			w.observe(Observation{Backend: b.Name, Kind: "down"})
		case err != nil && wasDown && !since.IsZero() && time.Since(reported) >= downReportEvery:
			reportDown()
		}
	}
}

// loadedNow records that backend b has model loaded after a job ran on it,
// in the catalog GET /v1/models and chat's /models read (the slot's own
// routing record is updated by the succeed script): without it the catalog
// would name the model loaded at the last refresh, up to 5 minutes ago.
// Only a change is written.
func (w *Worker) loadedNow(ctx context.Context, b Backend, model string) {
	key := scheduler.ModelKey(model)
	w.mu.Lock()
	ad, ok := w.ads[b.Name]
	if !ok || scheduler.ModelKey(ad.Loaded) == key {
		w.mu.Unlock()
		return
	}
	ad.Loaded = model
	for _, m := range ad.Models {
		if scheduler.ModelKey(m) == key {
			ad.Loaded = m // the backend's own spelling
			break
		}
	}
	w.ads[b.Name] = ad
	down := w.healthOf(b.Name).down
	w.mu.Unlock()
	// A down backend is listed again by a passing health check, not by a job.
	if err := w.publishAd(ctx, b.Name, ad, down); err != nil {
		w.log.Debug("advertise loaded model", zap.String("backend", b.Name), zap.Error(err))
		return
	}
	w.observe(Observation{Backend: b.Name, Kind: "advertised"})
}

// slot serves one backend: offer, take, run, repeat.
func (w *Worker) slot(takeCtx, runCtx context.Context, b Backend) {
	log := w.log.With(zap.String("backend", b.Name))
	sl := w.slotOf[b.Name]
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := sl.Close(ctx); err != nil {
			log.Warn("close slot", zap.Error(err))
		}
	}()
	for takeCtx.Err() == nil {
		lease, err := sl.Next(takeCtx, w.cfg.BlockTimeout)
		if err != nil {
			if takeCtx.Err() == nil {
				log.Error("read work", zap.Error(err))
				w.pause(takeCtx, time.Second)
			}
			continue
		}
		if lease == nil {
			continue
		}
		if !w.takeBusy(b.Name) {
			w.handBackWhileDown(takeCtx, runCtx, sl, lease, log)
			continue
		}
		if healthy := w.runRecovered(takeCtx, runCtx, b, lease, log); !healthy {
			w.waitHealthy(takeCtx, b, log)
		}
		w.setBusy(b.Name, false)
	}
}

// takeBusy marks the slot busy for a job it was given, unless the idle
// checks have its backend down; it reports whether it did.
func (w *Worker) takeBusy(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.healthOf(name)
	if h.down {
		return false
	}
	h.busy, h.fails = true, 0
	return true
}

// handBackWhileDown returns a job given to the slot of a backend the idle
// checks found down (dispatched as they did, before the slot was paused)
// to its queue, without using up an attempt, rather than fail it there.
// The slot is paused first, so the hand-back cannot dispatch it here again.
func (w *Worker) handBackWhileDown(takeCtx, runCtx context.Context, sl *scheduler.Slot, lease *scheduler.Lease, log *zap.Logger) {
	log = log.With(zap.String("job", lease.JobID))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), 10*time.Second)
	defer cancel()
	if err := sl.Pause(ctx); err != nil && takeCtx.Err() == nil {
		log.Warn("withdraw the down backend's slot", zap.Error(err))
	}
	if err := lease.HandBack(ctx); err != nil && !errors.Is(err, scheduler.ErrStale) {
		log.Error("hand back a job given to a down backend", zap.Error(err))
		return
	}
	log.Info("job handed back: its backend is down")
}

func (w *Worker) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// waitHealthy keeps a failing backend out of rotation until it answers.
// The scheduler hears that it is down (again after every failed check, so
// the report stays fresh) and when it is back: while no backend is up,
// queued jobs say which ones they wait for.
func (w *Worker) waitHealthy(ctx context.Context, b Backend, log *zap.Logger) {
	w.markDown(ctx, b)
	w.observe(Observation{Backend: b.Name, Kind: "down"})
	log.Warn("backend out of rotation until its health check passes")
	since := time.Now()
	// Back, or this worker stops: either way it no longer reports it.
	up := func() {
		uctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := w.sched.BackendUp(uctx, b.Name); err != nil {
			log.Warn("report backend up", zap.Error(err))
		}
	}
	defer func() {
		if ctx.Err() != nil {
			up()
		}
	}()
	d := w.cfg.HealthInterval
	for ctx.Err() == nil {
		if err := w.sched.BackendDown(ctx, b.Name, since); err != nil && ctx.Err() == nil {
			log.Warn("report backend down", zap.Error(err))
		}
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := health(hctx, b)
		cancel()
		if err == nil {
			log.Info("backend healthy again")
			up()
			w.markUp(ctx, b)
			w.observe(Observation{Backend: b.Name, Kind: "up"})
			return
		}
		w.pause(ctx, d)
		d = min(d*2, 30*time.Second)
	}
}

// health is b's health check, with a panic in it (a bug in a backend
// client) caught and reported as a failed check, so the goroutine watching
// an idle backend or waiting for a failed one to come back goes on.
func health(ctx context.Context, b Backend) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("health check panicked: %v", p)
		}
	}()
	return b.Backend.Health(ctx)
}

// catalog is b's catalog, with a panic in it (a bug in a backend client)
// caught and reported as an error, so the other backends are still
// advertised and this one again at the next round.
func catalog(ctx context.Context, b Backend) (c *sdclient.Catalog, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("catalog panicked: %v", p)
		}
	}()
	return b.Backend.Catalog(ctx)
}

// runRecovered is run, with a panic (a bug in a backend client, say) caught:
// the attempt fails with a retry, the panic is logged with its stack, and
// the slot goes on serving.
func (w *Worker) runRecovered(takeCtx, runCtx context.Context, b Backend, lease *scheduler.Lease, log *zap.Logger) (healthy bool) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("job panicked; failing the attempt", zap.Any("panic", p), zap.Stack("stack"))
			ctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), 10*time.Second)
			defer cancel()
			if _, err := lease.Fail(ctx, "internal_error", fmt.Sprintf("the worker failed on this job: %v", p), true); err != nil && !errors.Is(err, scheduler.ErrStale) {
				log.Error("fail job after panic", zap.Error(err))
			}
			healthy = true
		}
	}()
	healthy, _ = w.run(takeCtx, runCtx, b, lease, log)
	return healthy
}

// run executes one leased job and reports whether the backend looks healthy
// and whether the slot was offered again as the job ended.
func (w *Worker) run(takeCtx, runCtx context.Context, b Backend, lease *scheduler.Lease, log *zap.Logger) (healthy, offered bool) {
	log = log.With(zap.String("job", lease.JobID), zap.Int("attempt", lease.Attempt))
	// Redis writes use a context that survives the interrupt of the job, so
	// a hand-back or failure is still recorded while stopping.
	bg, cancelBG := context.WithTimeout(context.WithoutCancel(runCtx), time.Minute)
	defer cancelBG()
	w.observe(Observation{Backend: b.Name, JobID: lease.JobID, Kind: "started", Queued: lease.CreatedAt, Dispatched: lease.DispatchedAt})
	outcome := "stale"
	defer func() {
		w.observe(Observation{Backend: b.Name, JobID: lease.JobID, Kind: "finished", Outcome: outcome})
	}()

	var req sdclient.Request
	var kind sdclient.UpscaleJob
	_ = json.Unmarshal(lease.Payload, &kind)
	var source []byte
	if kind.Kind == sdclient.KindUpscale {
		src, err := w.sched.Get(bg, kind.SourceJob)
		if err == nil {
			source, err = w.sched.Image(bg, src, kind.SourceImage)
		}
		if err != nil {
			outcome = "failed"
			if _, err := lease.Fail(bg, "bad_request", "the image to upscale is gone: "+err.Error(), false); err != nil {
				log.Error("fail job", zap.Error(err))
			}
			return true, false
		}
	} else if err := json.Unmarshal(lease.Payload, &req); err != nil {
		outcome = "failed"
		if _, err := lease.Fail(bg, "bad_request", "the job's request could not be read: "+err.Error(), false); err != nil {
			log.Error("fail job", zap.Error(err))
		}
		return true, false
	} else if req.InitImageBytes > 0 {
		// The init image is in the blob store, not in the payload. Gone
		// is final (no retry brings it back); a store error is retried.
		data, err := lease.InitImage(bg)
		if err != nil {
			outcome = "failed"
			code, retry := "image_store_error", true
			if errors.Is(err, scheduler.ErrInitImageGone) {
				code, retry = "bad_request", false
			}
			if retried, ferr := lease.Fail(bg, code, err.Error(), retry); ferr != nil {
				log.Error("fail job", zap.Error(ferr))
			} else if retried {
				outcome = "retrying"
			}
			return true, false
		}
		req.InitImage, req.InitImageBytes = data, 0
	}
	if source == nil && req.SubseedStrength > 0 && req.VariationOf != nil {
		// A backend without subseeds (ComfyUI) makes the variation by
		// img2img of the chosen image. Best effort: without it such a
		// backend fails the job and says why; A1111 does not need it.
		if src, err := w.sched.Get(bg, req.VariationOf.Job); err != nil {
			log.Debug("variation source job", zap.Error(err))
		} else if req.VariationSource, err = w.sched.Image(bg, src, req.VariationOf.Image); err != nil {
			log.Debug("variation source image", zap.Error(err))
		}
	}

	jobCtx, cancel := context.WithCancelCause(runCtx)
	defer cancel(nil)
	w.mu.Lock()
	w.running[lease.JobID] = cancel
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.running, lease.JobID)
		w.mu.Unlock()
	}()

	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		t := time.NewTicker(w.sched.Config().Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-jobCtx.Done():
				return
			case <-t.C:
				err := lease.Renew(jobCtx)
				if errors.Is(err, scheduler.ErrStale) {
					cancel(errStale)
					return
				}
				if err != nil && jobCtx.Err() == nil {
					log.Warn("renew lease", zap.Error(err))
				}
			}
		}
	}()

	var res *sdclient.Result
	var err error
	if source != nil {
		res, err = b.Backend.Upscale(jobCtx, sdclient.UpscaleRequest{Image: source, Factor: kind.Factor})
	} else {
		res, err = b.Backend.Generate(jobCtx, req, w.progressFunc(jobCtx, lease, cancel, log))
	}
	cause := context.Cause(jobCtx)
	cancel(nil)
	<-renewDone

	switch {
	case errors.Is(cause, errCanceled):
		outcome = "canceled"
		return true, false
	case errors.Is(cause, errStale):
		log.Warn("lease lost; result dropped")
		return true, false
	case errors.Is(cause, errStopping):
		outcome = "handed_back"
		if err := lease.HandBack(bg); err != nil && !errors.Is(err, scheduler.ErrStale) {
			log.Error("hand back job", zap.Error(err))
		}
		return true, false
	}
	if err == nil {
		images := make([][]byte, len(res.Images))
		for i, img := range res.Images {
			images[i] = img.Data
		}
		if source == nil && req.Model != "" {
			// Before the succeeded event, so whoever sees it reads a
			// catalog that knows.
			w.loadedNow(bg, b, req.Model)
		}
		// Offer the slot again in the same script unless the worker stops.
		offered, err = lease.SucceedWith(bg, scheduler.Result{Images: images, Seeds: res.Seeds, Subseeds: res.Subseeds, Info: res.Info},
			takeCtx.Err() == nil)
		switch {
		case err == nil:
			outcome = "succeeded"
		case errors.Is(err, scheduler.ErrStale):
		default:
			log.Error("store result", zap.Error(err))
		}
		return true, offered
	}

	code, retryable, healthy := classify(err)
	msg := fmt.Sprintf("backend %s failed: %v", b.Name, err)
	var retried bool
	var ferr error
	if errors.Is(err, sdclient.ErrStalled) {
		// The retry prefers another backend: this one may stall again.
		retried, ferr = lease.FailElsewhere(bg, code, msg)
	} else {
		retried, ferr = lease.Fail(bg, code, msg, retryable)
	}
	switch {
	case ferr == nil && retried:
		outcome = "retrying"
	case ferr == nil:
		outcome = "failed"
	case !errors.Is(ferr, scheduler.ErrStale):
		log.Error("record failure", zap.Error(ferr))
	}
	log.Warn("job attempt failed", zap.Error(err), zap.Bool("retrying", retried))
	return healthy, false
}

// progressFunc records a backend's progress reports on the lease and stops
// the job when the lease turns out stale.
func (w *Worker) progressFunc(ctx context.Context, lease *scheduler.Lease, cancel context.CancelCauseFunc, log *zap.Logger) func(sdclient.Progress) {
	return func(p sdclient.Progress) {
		var preview []byte
		if p.Preview != nil {
			preview = p.Preview.Data
		}
		if err := lease.Progress(ctx, p.Step, p.Steps, p.Fraction, p.ETA, preview); errors.Is(err, scheduler.ErrStale) {
			cancel(errStale)
		} else if err != nil && ctx.Err() == nil {
			log.Warn("progress", zap.Error(err))
		}
	}
}

// classify maps a backend error to an error code, whether a retry may help,
// and whether the backend should stay in rotation.
func classify(err error) (code string, retryable, healthy bool) {
	var he *sdclient.HTTPError
	var pe *sdclient.PermanentError
	switch {
	case errors.As(err, &pe):
		return "backend_rejected", false, true
	case errors.Is(err, sdclient.ErrStalled):
		return "backend_stalled", true, true
	case errors.Is(err, sdclient.ErrUnavailable):
		return "backend_unavailable", true, false
	case errors.As(err, &he) && he.Status >= 500:
		return "backend_error", true, false
	case errors.As(err, &he):
		return "backend_rejected", false, true
	}
	return "backend_error", true, false
}
