package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redisproc"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
	"github.com/easelbot/easel/worker"
)

// Run is the `easel bench` command.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisURL := fs.String("redis-url", os.Getenv("EASEL_REDIS_URL"), "Redis to measure against (default: start redis-server on a free loopback port)")
	n := fs.Int("n", 2000, "jobs per latency scenario")
	tput := fs.Int("throughput-jobs", 20000, "jobs in the throughput scenario")
	slots := fs.Int("slots", 8, "backend slots in the throughput scenario")
	maxTenants := fs.Int("max-tenants", 100000, "largest tenant count in the dispatch scenario")
	rounds := fs.Int("rounds", 3, "interleaved asynq/Easel throughput rounds")
	asynqDir := fs.String("asynqcmp", "bench/asynqcmp", "directory of the asynq anchor module (built once with go build)")
	floorJobs := fs.Int("floor-jobs", 20000, "jobs in the synthetic floor scenario (bench/floor.lua), run after the asynq rounds")
	finished := fs.Int("finished-jobs", 200, "jobs in the Redis-bytes-per-finished-job scenario (each makes a 1.5 MB image)")
	only := fs.String("only", "", `run one scenario group only: "finished" (Redis bytes per finished job); default all`)
	cluster := fs.String("cluster", "", `Redis Cluster for the shards scenario (jobs/s with scheduler.shards 1 against 3): a cluster URL, or "start" to start three masters on loopback; "" skips it`)
	clusterOnly := fs.Bool("cluster-only", false, "run only the shards scenario (with -cluster)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cluster != "" {
		if code := runShards(ctx, *cluster, *tput, *slots, *rounds, stdout, stderr); code != 0 || *clusterOnly {
			return code
		}
	}
	if *redisURL == "" {
		srv, err := redisproc.StartServer(os.TempDir(), nil)
		if err != nil {
			fmt.Fprintln(stderr, "easel bench:", err)
			return 1
		}
		defer srv.Kill()
		*redisURL = srv.URL
	}
	fmt.Fprintf(stdout, "| scenario | result | budget |\n| --- | --- | --- |\n")
	if err := finishedJobs(ctx, stdout, *redisURL, *finished); err != nil {
		fmt.Fprintln(stderr, "easel bench:", err)
		return 1
	}
	if *only == "finished" {
		return 0
	}
	for _, sc := range []struct {
		name string
		run  func(context.Context, string) (string, string, error)
	}{
		{"submit → worker start, idle system", func(ctx context.Context, url string) (string, string, error) {
			return StartLatency(ctx, url, *n)
		}},
		{"backend idle gap between queued jobs", func(ctx context.Context, url string) (string, string, error) {
			return IdleGap(ctx, url, *n)
		}},
		{"Redis memory per queued job (short prompt, Discord origin)", func(ctx context.Context, url string) (string, string, error) {
			return MemoryPerJob(ctx, url, 10000)
		}},
		{"worker event → relay render call (no coalescing)", func(ctx context.Context, url string) (string, string, error) {
			return RelayLatency(ctx, url, 500)
		}},
		{"Discord acknowledgement, 100 concurrent interactions (fake Discord)", func(ctx context.Context, url string) (string, string, error) {
			return DiscordAck(ctx, url, 100)
		}},
	} {
		res, budget, err := sc.run(ctx, *redisURL)
		if err != nil {
			fmt.Fprintf(stderr, "easel bench: %s: %v\n", sc.name, err)
			return 1
		}
		fmt.Fprintf(stdout, "| %s | %s | %s |\n", sc.name, res, budget)
	}
	if err := compareAsynq(ctx, stdout, *redisURL, *asynqDir, *tput, *slots, *rounds, *floorJobs); err != nil {
		fmt.Fprintln(stderr, "easel bench:", err)
		return 1
	}
	var base time.Duration
	for _, tenants := range []int{10, 1000, *maxTenants} {
		lat, err := DispatchLatency(ctx, *redisURL, tenants, 2000)
		if err != nil {
			fmt.Fprintf(stderr, "easel bench: dispatch at %d tenants: %v\n", tenants, err)
			return 1
		}
		p50 := percentile(lat, .5)
		budget := "baseline"
		if base == 0 {
			base = p50
		} else {
			budget = fmt.Sprintf("p50 within 1.5× of 10 tenants: %.2f×", float64(p50)/float64(base))
		}
		fmt.Fprintf(stdout, "| dispatch latency, %d tenants with pending work | %s | %s |\n", tenants, fmtPct(lat), budget)
		if tenants >= *maxTenants {
			break
		}
	}
	base = 0
	for _, tenants := range []int{10, *maxTenants} {
		lat, err := RoutedDispatchLatency(ctx, *redisURL, tenants, 2000)
		if err != nil {
			fmt.Fprintf(stderr, "easel bench: routed dispatch at %d tenants: %v\n", tenants, err)
			return 1
		}
		p50 := percentile(lat, .5)
		budget := "baseline"
		if base == 0 {
			base = p50
		} else {
			budget = fmt.Sprintf("p50 within 1.5× of 10 tenants: %.2f×", float64(p50)/float64(base))
		}
		fmt.Fprintf(stdout, "| dispatch latency with routing (jobs name models, 8 tenants ahead wait for a busy one), %d tenants | %s | %s |\n",
			tenants, fmtPct(lat), budget)
	}
	return 0
}

// finishedJobs prints Redis bytes per finished job with the images in
// Redis and in files, measured one after the other on the same Redis.
func finishedJobs(ctx context.Context, stdout io.Writer, url string, n int) error {
	var fs int64
	for _, kind := range []string{blob.KindRedis, blob.KindFS} {
		r, err := FinishedJobMemory(ctx, url, kind, n)
		if err != nil {
			return fmt.Errorf("finished jobs, %s: %w", kind, err)
		}
		budget := "before storage.blobs (the demo only now)"
		if kind == blob.KindFS {
			fs = r.UsedMemory
			budget = fmt.Sprintf("< 2 KiB: %t", fs < 2048)
		}
		fmt.Fprintf(stdout, "| Redis bytes per finished job, 1.5 MB image, images in %s (used_memory delta, n=%d, streams expired) | "+
			"%d B (job's own keys %d B, shared events stream %d B) | %s |\n", kind, r.Jobs, r.UsedMemory, r.JobKeys, r.EventsStream, budget)
	}
	return nil
}

// compareAsynq runs the asynq anchor and Easel's throughput scenario
// interleaved, rounds times each, on the same Redis, and prints every
// figure with what each run cost (Redis CPU, client CPU and Redis commands
// per job), the medians, then the synthetic floor (floorJobs jobs) on the
// same Redis.
func compareAsynq(ctx context.Context, stdout io.Writer, url, dir string, n, slots, rounds, floorJobs int) error {
	tmp, err := os.MkdirTemp("", "easel-bench-asynq")
	if err != nil {
		return fmt.Errorf("asynq anchor: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	bin, err := BuildAsynq(ctx, dir, tmp)
	if err != nil {
		return err
	}
	var ratios []float64
	var e, a costs
	for i := 1; i <= rounds; i++ {
		ar, err := AsynqThroughput(ctx, bin, url, n, slots)
		if err != nil {
			return err
		}
		er, err := Throughput(ctx, url, n, slots)
		if err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
		ratios = append(ratios, er.JobsPerSec/ar.JobsPerSec)
		e.add(er.JobsPerSec, er.RedisCPUPerJob, er.ClientCPUPerJob, er.CommandsPerJob)
		a.add(ar.JobsPerSec, ar.RedisCPUPerJob, ar.ClientCPUPerJob, ar.CommandsPerJob)
		fmt.Fprintf(stdout, "| round %d: jobs/s, no-op backend, %d slots, %d jobs (succeeded only); per job over first submit → last outcome: "+
			"Redis CPU (INFO cpu used_cpu_sys+user delta, whole server), client CPU (getrusage of the Easel bench process / of the asynq anchor process), "+
			"Redis commands (INFO commandstats) | Easel %.0f jobs/s (%d/%d succeeded), %s; asynq %.0f jobs/s, %s "+
			"(TaskCheckInterval 1 ms, asynq at its fastest; first handler %.1f ms after the first enqueue): %.2f× | ≥ 2× asynq |\n",
			i, slots, n, er.JobsPerSec, er.Succeeded, er.Jobs, fmtCost(er.RedisCPUPerJob, er.ClientCPUPerJob, er.CommandsPerJob),
			ar.JobsPerSec, fmtCost(ar.RedisCPUPerJob, ar.ClientCPUPerJob, ar.CommandsPerJob), float64(ar.FirstHandler)/float64(time.Millisecond),
			er.JobsPerSec/ar.JobsPerSec)
	}
	fmt.Fprintf(stdout, "| Easel / asynq jobs/s, median of %d interleaved rounds | %.2f× | ≥ 2× |\n", rounds, median(ratios))
	fmt.Fprintf(stdout, "| cost per job, medians of %d interleaved rounds (as in the rounds) | Easel %.0f jobs/s, %s; asynq %.0f jobs/s, %s | — |\n",
		rounds, median(e.rate), e.fmtMedian(), median(a.rate), a.fmtMedian())
	fmt.Fprintf(stdout, "| Redis commands per job, no progress (INFO commandstats) | %.1f (median of %d runs) | ≤ 40 |\n", median(e.commands), rounds)
	f, err := Floor(ctx, url, floorJobs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "| floor (SYNTHETIC, bench/floor.lua, not Easel): bare fair-queue lifecycle with events, one EVALSHA per 8 jobs "+
		"(submit HSET, SET, RPUSH, ZADD ready, XADD; dispatch ZPOPMIN, LPOP, LLEN, HSET, GET, ZADD lease, XADD; succeed HSET, ZREM, XADD, PEXPIRE ×2), "+
		"100 tenants, %d jobs, same Redis | Redis CPU %.1f µs/job (INFO cpu delta), %.1f commands/job (%.0f jobs/s, one caller) | lower bound |\n",
		f.Jobs, f.RedisCPUPerJob, f.CommandsPerJob, f.JobsPerSec)
	return nil
}

// costs collects one system's per-round figures.
type costs struct{ rate, redis, client, commands []float64 }

func (c *costs) add(rate, redis, client, commands float64) {
	c.rate = append(c.rate, rate)
	c.redis = append(c.redis, redis)
	c.client = append(c.client, client)
	c.commands = append(c.commands, commands)
}

func (c *costs) fmtMedian() string {
	return fmtCost(median(c.redis), median(c.client), median(c.commands))
}

func fmtCost(redisUS, clientUS, commands float64) string {
	return fmt.Sprintf("Redis CPU %.0f µs/job, client CPU %.0f µs/job, %.1f commands/job", redisUS, clientUS, commands)
}

func percentile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

// rig is a scheduler and a worker with no-op backends on a fresh key prefix.
type rig struct {
	store   *storage.Store
	sched   *scheduler.Scheduler
	worker  *worker.Worker
	mu      sync.Mutex
	started map[string]time.Time
	events  []worker.Observation
	done    chan worker.Observation
}

var prefixSeq int

func newRig(ctx context.Context, url string, slots int, start bool) (*rig, error) {
	return newRigWith(ctx, url, slots, start, scheduler.Config{})
}

// newRigWith is newRig with a scheduler configuration (shards).
func newRigWith(ctx context.Context, url string, slots int, start bool, cfg scheduler.Config) (*rig, error) {
	backends := make([]sdclient.Backend, slots)
	for i := range backends {
		backends[i] = Noop{}
	}
	return newRigOnWith(ctx, url, backends, start, cfg)
}

// newRigOn is a rig whose worker has one slot per backend.
func newRigOn(ctx context.Context, url string, slots []sdclient.Backend, start bool) (*rig, error) {
	return newRigOnWith(ctx, url, slots, start, scheduler.Config{})
}

func newRigOnWith(ctx context.Context, url string, slots []sdclient.Backend, start bool, cfg scheduler.Config) (*rig, error) {
	prefixSeq++
	// A prefix as long as the default "easel", so key sizes (and memory per
	// job) are those of a real install; distinct per process and rig.
	prefix := fmt.Sprintf("b%02s%02s", strconv.FormatInt(int64(os.Getpid()%1296), 36), strconv.FormatInt(int64(prefixSeq%1296), 36))
	store, err := storage.Open(ctx, storage.Config{URL: url, Prefix: prefix}, zap.NewNop())
	if err != nil {
		return nil, err
	}
	sched, err := scheduler.New(ctx, store, cfg, zap.NewNop())
	if err != nil {
		return nil, err
	}
	var backends []worker.Backend
	for i, b := range slots {
		backends = append(backends, worker.Backend{Name: "noop" + strconv.Itoa(i), Backend: b})
	}
	w, err := worker.New(worker.Config{Name: "bench"}, sched, backends, zap.NewNop())
	if err != nil {
		return nil, err
	}
	r := &rig{store: store, sched: sched, worker: w, started: map[string]time.Time{}, done: make(chan worker.Observation, 1<<16)}
	w.Observe(func(o worker.Observation) {
		r.mu.Lock()
		r.events = append(r.events, o)
		if o.Kind == "started" {
			r.started[o.JobID] = o.At
		}
		r.mu.Unlock()
		if o.Kind == "finished" {
			r.done <- o
		}
	})
	if start {
		if err := w.Start(ctx); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *rig) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.worker.Stop(ctx)
	r.store.Close()
}

var payload = json.RawMessage(`{"prompt":"bench","width":64,"height":64,"steps":1,"count":1}`)

func (r *rig) submit(ctx context.Context, tenant string) (string, error) {
	res, err := r.sched.Submit(ctx, scheduler.SubmitRequest{Tenant: tenant, User: "u", Payload: payload, Images: 1})
	return res.ID, err
}

// StartLatency submits jobs one at a time to an idle worker and measures
// submit call → worker start.
func StartLatency(ctx context.Context, url string, n int) (string, string, error) {
	r, err := newRig(ctx, url, 1, true)
	if err != nil {
		return "", "", err
	}
	defer r.close()
	var lat []time.Duration
	for i := 0; i < n+n/10; i++ {
		t0 := time.Now()
		id, err := r.submit(ctx, "api:bench")
		if err != nil {
			return "", "", err
		}
		if got := <-r.done; got.JobID != id {
			return "", "", fmt.Errorf("finished %s, want %s", got.JobID, id)
		}
		r.mu.Lock()
		d := r.started[id].Sub(t0)
		r.mu.Unlock()
		if i >= n/10 { // warm-up
			lat = append(lat, d)
		}
	}
	return fmtPct(lat), "p99 ≤ 1 ms", nil
}

// ThroughputResult is one throughput run.
type ThroughputResult struct {
	// JobsPerSec counts succeeded jobs only.
	JobsPerSec float64
	Succeeded  int
	Jobs       int
	// CommandsPerJob is every Redis command the run caused (INFO
	// commandstats, commands inside scripts included) per job.
	CommandsPerJob float64
	// RedisCPUPerJob is the Redis server's CPU (INFO cpu used_cpu_sys +
	// used_cpu_user) over the run, in µs per job.
	RedisCPUPerJob float64
	// ClientCPUPerJob is the bench process's CPU (getrusage: submitters,
	// scheduler client and worker) over the run, in µs per job.
	ClientCPUPerJob float64
}

// Throughput queues jobs from 100 tenants against slots no-op backend slots
// and measures succeeded jobs/s and, from the first submit to the last
// outcome, Redis commands, Redis CPU and client CPU per job.
func Throughput(ctx context.Context, url string, n, slots int) (ThroughputResult, error) {
	r, err := newRig(ctx, url, slots, true)
	if err != nil {
		return ThroughputResult{}, err
	}
	defer r.close()
	w, err := openCost(ctx, r.store.Client)
	if err != nil {
		return ThroughputResult{}, err
	}
	succeeded, el, err := r.flood(ctx, n)
	if err != nil {
		return ThroughputResult{}, err
	}
	cost, err := w.close(ctx)
	if err != nil {
		return ThroughputResult{}, err
	}
	res := ThroughputResult{JobsPerSec: float64(succeeded) / el.Seconds(), Succeeded: succeeded, Jobs: n}
	res.RedisCPUPerJob, res.ClientCPUPerJob, res.CommandsPerJob = cost.PerJob(n)
	return res, nil
}

// flood submits n jobs from 100 tenants over 16 submitters and waits for
// every outcome; it returns how many succeeded and how long that took from
// the first submit.
func (r *rig) flood(ctx context.Context, n int) (int, time.Duration, error) {
	t0 := time.Now()
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	defer wg.Wait()
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 16 {
				if _, err := r.submit(ctx, "api:t"+strconv.Itoa(i%100)); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	succeeded := 0
	for range n {
		select {
		case o := <-r.done:
			if o.Outcome == "succeeded" {
				succeeded++
			}
		case err := <-errc:
			return 0, 0, err
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	return succeeded, time.Since(t0), nil
}

// IdleGap queues n jobs, then starts one worker slot and measures, at the
// backend, the time from the end of one request (Generate returns) to the
// start of the next (Generate called): everything Easel does between two
// jobs on a busy slot.
func IdleGap(ctx context.Context, url string, n int) (string, string, error) {
	b := &Stamped{}
	r, err := newRigOn(ctx, url, []sdclient.Backend{b}, false)
	if err != nil {
		return "", "", err
	}
	defer r.close()
	for i := range n {
		if _, err := r.submit(ctx, "api:t"+strconv.Itoa(i%10)); err != nil {
			return "", "", err
		}
	}
	if err := r.worker.Start(ctx); err != nil {
		return "", "", err
	}
	for range n {
		<-r.done
	}
	return fmtPct(b.Gaps()), "p99 < 5 ms", nil
}

// Stamped is a no-op backend that notes when each request starts and ends,
// and reports Steps progress steps on the way.
type Stamped struct {
	Noop
	Steps  int
	mu     sync.Mutex
	starts []time.Time
	ends   []time.Time
}

// Generate notes the request's start and end around Noop's.
func (s *Stamped) Generate(ctx context.Context, req sdclient.Request, progress func(sdclient.Progress)) (*sdclient.Result, error) {
	s.mu.Lock()
	s.starts = append(s.starts, time.Now())
	s.mu.Unlock()
	for i := 1; i <= s.Steps; i++ {
		progress(sdclient.Progress{Step: i, Steps: s.Steps, Fraction: float64(i) / float64(s.Steps)})
	}
	res, err := s.Noop.Generate(ctx, req, progress)
	s.mu.Lock()
	s.ends = append(s.ends, time.Now())
	s.mu.Unlock()
	return res, err
}

// Gaps are the times from each request's end to the next one's start.
func (s *Stamped) Gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gaps []time.Duration
	for i := 1; i < len(s.starts) && i <= len(s.ends); i++ {
		gaps = append(gaps, s.starts[i].Sub(s.ends[i-1]))
	}
	return gaps
}

func fmtPct(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	p := func(q float64) time.Duration { return d[int(q*float64(len(d)-1))] }
	return fmt.Sprintf("p50 %s, p99 %s, max %s (n=%d)", round(p(.5)), round(p(.99)), round(d[len(d)-1]), len(d))
}

func round(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + " ms"
}

// Noop is a backend that finishes at once with a one-pixel PNG.
type Noop struct{}

var onePixelPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")

// Generate returns one tiny image per requested image.
func (Noop) Generate(_ context.Context, req sdclient.Request, _ func(sdclient.Progress)) (*sdclient.Result, error) {
	n := max(req.Count, 1)
	res := &sdclient.Result{}
	for i := range n {
		res.Images = append(res.Images, sdclient.Image{Data: onePixelPNG, Format: "png"})
		res.Seeds = append(res.Seeds, req.Seed+int64(i))
	}
	return res, nil
}

// Upscale returns the image as it is.
func (Noop) Upscale(_ context.Context, req sdclient.UpscaleRequest) (*sdclient.Result, error) {
	return &sdclient.Result{Images: []sdclient.Image{{Data: req.Image, Format: sdclient.SniffFormat(req.Image)}}, Seeds: []int64{0}}, nil
}

// Catalog offers one model and one sampler.
func (Noop) Catalog(context.Context) (*sdclient.Catalog, error) {
	return &sdclient.Catalog{Models: []sdclient.Model{{Name: "noop", Title: "noop"}}, Loaded: "noop", Samplers: []string{"Euler a"}}, nil
}

// Health is always fine.
func (Noop) Health(context.Context) error { return nil }
