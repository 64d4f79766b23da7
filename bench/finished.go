package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
	"github.com/easelbot/easel/worker"
)

// FinishedJobBytes is Redis memory per finished job with one image of an
// SDXL PNG's size, for one image store kind.
type FinishedJobBytes struct {
	// Kind is the image store: "redis" (images in Redis, as before
	// storage.blobs) or "fs" (files).
	Kind string
	// Jobs is the number of jobs measured.
	Jobs int
	// UsedMemory is Redis's INFO used_memory grown per finished job, shared
	// keys (the events stream, history sets) included.
	UsedMemory int64
	// JobKeys is MEMORY USAGE of the job's own keys (record, request, event
	// stream, image keys) per job, taken when every stream has expired.
	JobKeys int64
	// EventsStream is the shared events stream's MEMORY USAGE grown per job
	// (a ring bounded by scheduler.events_max_len entries, not by jobs).
	EventsStream int64
}

// finishedEventsGrace is scheduler.events_grace in FinishedJobMemory:
// short, so that the warm-up's events are past it before used_memory is
// taken first (the wait for the jobs' own streams covers it after).
const finishedEventsGrace = time.Second

// finishedImageSize is the image every job of FinishedJobMemory makes: an
// SDXL 1024×1024 PNG is about 1.5 MB.
const finishedImageSize = 1500 * 1000

// FinishedJobMemory runs n jobs to success, one at a time, through a worker
// whose backend makes one 1.5 MB image, ~1 KB of A1111-style info and 20
// progress events (no previews), with the images in kind's store, and
// measures what Redis keeps per finished job. How it is taken, with
// scheduler.events_grace 1s: 10 warm-up jobs first (streams, groups,
// scripts exist); a wait past the events grace, the relay group read and
// acknowledged to the end (as a relay that keeps up does) and the shared
// events stream trimmed by age (Scheduler.TrimEvents, as the maintainer
// does); used_memory before; n jobs;
// then a wait until every job's own event stream has passed its grace
// (scheduler.FinishedEventsGrace after the job's end; it covers the events
// grace), the relay catch-up and trim again, and an EXISTS on
// each (Redis deletes an expired key when it is read, so none waits for
// the active expiry cycle), then until INFO memory's
// lazyfree_pending_objects is 0; used_memory after. The figure is (after -
// before) / n.
func FinishedJobMemory(ctx context.Context, url, kind string, n int) (FinishedJobBytes, error) {
	res := FinishedJobBytes{Kind: kind, Jobs: n}
	prefixSeq++
	store, err := storage.Open(ctx, storage.Config{URL: url, Prefix: fmt.Sprintf("bench%d-%d", os.Getpid(), prefixSeq)}, zap.NewNop())
	if err != nil {
		return res, err
	}
	defer store.Close()
	switch kind {
	case blob.KindRedis:
	case blob.KindFS:
		dir, err := os.MkdirTemp("", "easel-bench-blobs-")
		if err != nil {
			return res, err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		if store.Blobs, err = blob.NewFS(dir, blob.TTL{}); err != nil {
			return res, err
		}
	default:
		return res, fmt.Errorf("finished job memory: kind %q: want redis or fs", kind)
	}
	sched, err := scheduler.New(ctx, store, scheduler.Config{EventsGrace: finishedEventsGrace}, zap.NewNop())
	if err != nil {
		return res, err
	}
	w, err := worker.New(worker.Config{Name: "bench"}, sched, []worker.Backend{{Name: "sdxl", Backend: newSDXLSized()}}, zap.NewNop())
	if err != nil {
		return res, err
	}
	done := make(chan worker.Observation, 16)
	w.Observe(func(o worker.Observation) {
		if o.Kind == "finished" {
			done <- o
		}
	})
	if err := w.Start(ctx); err != nil {
		return res, err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(c)
	}()
	body := []byte(`{"prompt":"a lighthouse at dusk, volumetric light, highly detailed","width":1024,"height":1024,"steps":20,"seed":7,"count":1}`)
	run := func(count int) ([]string, time.Time, error) {
		ids := make([]string, 0, count)
		for i := range count {
			r, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "discord:" + strconv.Itoa(1000+i%10), User: strconv.Itoa(i % 50),
				Payload: body, Origin: discordOrigin, Images: 1})
			if err != nil {
				return nil, time.Time{}, err
			}
			select {
			case o := <-done:
				if o.JobID != r.ID || o.Outcome != "succeeded" {
					return nil, time.Time{}, fmt.Errorf("job %s %s, want %s succeeded", o.JobID, o.Outcome, r.ID)
				}
			case <-ctx.Done():
				return nil, time.Time{}, ctx.Err()
			}
			ids = append(ids, r.ID)
		}
		return ids, time.Now(), nil
	}
	wait := func(until time.Time) error {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// trim stands in for a chat relay that has read and acknowledged every
	// event (no relay runs here; the relay group keeps what it has not
	// read), then trims the shared events stream by age as the maintainer
	// does.
	trim := func() error {
		for {
			es, err := sched.RelayRead(ctx, "bench", ">", 1000, time.Millisecond)
			if err != nil {
				return err
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				if err := sched.RelayAck(ctx, e.ID); err != nil {
					return err
				}
			}
		}
		_, err := sched.TrimEvents(ctx)
		return err
	}
	if _, warm, err := run(10); err != nil {
		return res, err
	} else if err := wait(warm.Add(finishedEventsGrace + 100*time.Millisecond)); err != nil {
		return res, err
	}
	if err := trim(); err != nil {
		return res, err
	}
	c := store.Client
	memUsage := func(key string) int64 {
		v, _ := c.Do(ctx, c.B().MemoryUsage().Key(key).Samples(0).Build()).AsInt64()
		return v
	}
	before, err := settledMemory(ctx, store, nil)
	if err != nil {
		return res, err
	}
	evBefore := memUsage(store.Keys.Events())
	ids, last, err := run(n)
	if err != nil {
		return res, err
	}
	// Every job's own stream expires FinishedEventsGrace after its end.
	// It covers the shared stream's grace too.
	if err := wait(last.Add(scheduler.FinishedEventsGrace + 100*time.Millisecond)); err != nil {
		return res, err
	}
	if err := trim(); err != nil {
		return res, err
	}
	after, err := settledMemory(ctx, store, ids)
	if err != nil {
		return res, err
	}
	var own int64
	for _, id := range ids {
		for _, k := range []string{store.Keys.Job(id), store.Keys.JobRequest(id), store.Keys.JobEvents(id), store.Keys.Blob(id, 1, "0"), store.Keys.Blob(id, 1, "info")} {
			own += memUsage(k)
		}
	}
	res.UsedMemory = (after - before) / int64(n)
	res.JobKeys = own / int64(n)
	res.EventsStream = (memUsage(store.Keys.Events()) - evBefore) / int64(n)
	return res, nil
}

// settledMemory reads used_memory once the expired event streams of ids
// are gone (an EXISTS deletes an expired key) and Redis has no object left
// to free in the background.
func settledMemory(ctx context.Context, store *storage.Store, ids []string) (int64, error) {
	c := store.Client
	for _, id := range ids {
		if err := c.Do(ctx, c.B().Exists().Key(store.Keys.JobEvents(id)).Build()).Error(); err != nil {
			return 0, err
		}
	}
	for range 100 {
		info, err := c.Do(ctx, c.B().Info().Section("memory").Build()).ToString()
		if err != nil {
			return 0, err
		}
		if infoField(info, "lazyfree_pending_objects") == "0" {
			return strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
		}
		t := time.NewTimer(10 * time.Millisecond) // the background free has no signal to wait on
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
	}
	return 0, fmt.Errorf("lazy free did not settle")
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// sdxlSized is a backend whose results have a real SDXL job's sizes: one
// 1.5 MB image (a PNG signature, then noise: it does not compress), info
// shaped like A1111's Processed.js() for 1024×1024 (about 1 KB; see
// sdclient/fakesd's info, modelled on modules/processing.py), and a
// progress report per step without previews.
type sdxlSized struct{ image []byte }

func newSDXLSized() *sdxlSized {
	img := make([]byte, finishedImageSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	copy(img, "\x89PNG\r\n\x1a\n")
	return &sdxlSized{image: img}
}

// Generate reports each step and returns the image.
func (b *sdxlSized) Generate(_ context.Context, req sdclient.Request, progress func(sdclient.Progress)) (*sdclient.Result, error) {
	for s := 1; s <= req.Steps; s++ {
		progress(sdclient.Progress{Step: s, Steps: req.Steps, Fraction: float64(s) / float64(req.Steps)})
	}
	text := fmt.Sprintf("%s\nSteps: %d, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: %d, Size: %dx%d, "+
		"Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Version: v1.10.1", req.Prompt, req.Steps, req.Seed, req.Width, req.Height)
	info := fmt.Sprintf(`{"prompt": %q, "all_prompts": [%q], "negative_prompt": "", "all_negative_prompts": [""], `+
		`"seed": %d, "all_seeds": [%d], "subseed": 3735928559, "all_subseeds": [3735928559], "subseed_strength": 0, `+
		`"width": %d, "height": %d, "sampler_name": "DPM++ 2M", "cfg_scale": 7.0, "steps": %d, "batch_size": 1, `+
		`"restore_faces": false, "face_restoration_model": null, "sd_model_name": "sd_xl_base_1.0", "sd_model_hash": "31e35c80fc", `+
		`"sd_vae_name": null, "sd_vae_hash": null, "seed_resize_from_w": -1, "seed_resize_from_h": -1, "denoising_strength": null, `+
		`"extra_generation_params": {"Schedule type": "Karras"}, "index_of_first_image": 0, "infotexts": [%q], `+
		`"styles": [], "job_timestamp": "20261201200000", "clip_skip": 1, "is_using_inpainting_conditioning": false, "version": "v1.10.1"}`,
		req.Prompt, req.Prompt, req.Seed, req.Seed, req.Width, req.Height, req.Steps, text)
	return &sdclient.Result{Images: []sdclient.Image{{Data: b.image, Format: "png"}}, Seeds: []int64{req.Seed}, Info: info}, nil
}

// Upscale is not used here.
func (b *sdxlSized) Upscale(context.Context, sdclient.UpscaleRequest) (*sdclient.Result, error) {
	return nil, &sdclient.PermanentError{Reason: "upscale: not offered"}
}

// Catalog offers one model and one sampler.
func (b *sdxlSized) Catalog(context.Context) (*sdclient.Catalog, error) {
	return &sdclient.Catalog{Models: []sdclient.Model{{Name: "sd_xl_base_1.0", Title: "sd_xl_base_1.0"}}, Loaded: "sd_xl_base_1.0", Samplers: []string{"DPM++ 2M"}}, nil
}

// Health is always fine.
func (b *sdxlSized) Health(context.Context) error { return nil }
