package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters"
	"github.com/easelbot/easel/adapters/discord"
	"github.com/easelbot/easel/adapters/discord/discordtest"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

// recorder is a renderer that notes each render call: which event of which
// job it shows, and when.
type recorder struct {
	mu      sync.Mutex
	renders map[string][]render
	n       int
	all     chan struct{}
}

type render struct {
	seq int64
	at  time.Time
}

func (r *recorder) Kind() string               { return "bench" }
func (r *recorder) MinInterval() time.Duration { return 0 }
func (r *recorder) Render(_ context.Context, _ *scheduler.Job, ev scheduler.Event) error {
	at := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.renders[ev.JobID] = append(r.renders[ev.JobID], render{ev.Seq, at})
	if ev.Type.Terminal() {
		r.n--
		if r.n == 0 {
			close(r.all)
		}
	}
	return nil
}

// lag is, for every worker event of job (started, progress, the end; not
// queued or position events, which come from submits and the scheduler),
// the time from the event to the first render call that shows it or a later
// event of the job (the relay may skip an event a newer one replaced).
func (r *recorder) lag(job string, events []scheduler.Event) ([]time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for _, ev := range events {
		if ev.Type == scheduler.EventQueued || ev.Type == scheduler.EventPosition {
			continue
		}
		found := false
		for _, x := range r.renders[job] {
			if x.seq >= ev.Seq {
				out = append(out, x.at.Sub(ev.Time))
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("job %s: event %d (%s) never rendered", job, ev.Seq, ev.Type)
		}
	}
	return out, nil
}

// RelayLatency runs n jobs one after another through the real relay with a
// recording renderer and measures worker event → render call over every
// worker event: each job's start, its relaySteps progress steps and its end.
func RelayLatency(ctx context.Context, url string, n int) (string, string, error) {
	const relaySteps = 4
	r, err := newRigOn(ctx, url, []sdclient.Backend{&Stamped{Steps: relaySteps}}, true)
	if err != nil {
		return "", "", err
	}
	defer r.close()
	rec := &recorder{n: n, all: make(chan struct{}), renders: map[string][]render{}}
	relay := adapters.NewRelay(r.sched, zap.NewNop(), rec)
	if err := relay.Start(ctx); err != nil {
		return "", "", err
	}
	defer func() { _ = relay.Stop(context.Background()) }()
	var ids []string
	for range n {
		res, err := r.sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: payload,
			Origin: json.RawMessage(`{"kind":"bench"}`), Images: 1})
		if err != nil {
			return "", "", err
		}
		ids = append(ids, res.ID)
		<-r.done
	}
	select {
	case <-rec.all:
	case <-time.After(30 * time.Second):
		return "", "", fmt.Errorf("relay delivered %d of %d final events", n-rec.n, n)
	}
	var lat []time.Duration
	for _, id := range ids {
		evs, _, err := r.sched.History(ctx, id, 0)
		if err != nil {
			return "", "", err
		}
		l, err := rec.lag(id, evs)
		if err != nil {
			return "", "", err
		}
		lat = append(lat, l...)
	}
	if want := n * (relaySteps + 2); len(lat) != want {
		return "", "", fmt.Errorf("%d worker events in the jobs' histories, want %d", len(lat), want)
	}
	return fmtPct(lat), "p99 < 10 ms", nil
}

// DiscordAck sends `concurrent` /imagine interactions at once through a fake
// Discord to the real adapter (real discordgo, real Redis) and measures
// interaction sent → interaction callback received.
func DiscordAck(ctx context.Context, url string, concurrent int) (string, string, error) {
	r, err := newRig(ctx, url, 1, false)
	if err != nil {
		return "", "", err
	}
	defer r.close()
	pol, err := scheduler.NewPolicies(r.sched, scheduler.PolicyConfig{Defaults: scheduler.Policy{MaxPendingPerUser: scheduler.Ptr(0)}})
	if err != nil {
		return "", "", err
	}
	svc, err := commands.New(r.sched, pol, commands.Limits{}, zap.NewNop())
	if err != nil {
		return "", "", err
	}
	fake := discordtest.New(func(string, ...any) {})
	defer fake.Close()
	bot, err := discord.New(discord.Config{Token: "bench", APIBase: fake.URL}, svc, r.sched, zap.NewNop())
	if err != nil {
		return "", "", err
	}
	if err := bot.Start(ctx); err != nil {
		return "", "", err
	}
	defer func() { _ = bot.Stop(context.Background()) }()
	var lat []time.Duration
	for round := range 3 {
		tokens := make([]string, concurrent)
		var wg sync.WaitGroup
		for i := range concurrent {
			id := discordtest.Snowflake(time.Now())
			tokens[i] = "tok-" + id
			inter := map[string]any{"id": id, "application_id": "app1", "type": 2, "token": tokens[i], "version": 1,
				"channel_id": "c1", "guild_id": fmt.Sprint("g", i%10),
				"member": map[string]any{"user": map[string]any{"id": fmt.Sprint(1000 + i)}, "permissions": "0"},
				"data": map[string]any{"id": "cmd", "name": "imagine", "type": 1, "options": []any{
					map[string]any{"name": "prompt", "type": 3, "value": fmt.Sprint("bench ", round, " ", i)}}}}
			wg.Add(1)
			go func() { defer wg.Done(); fake.Dispatch(inter) }()
		}
		wg.Wait()
		calls, err := fake.WaitFor(30*time.Second, "callbacks", func(cs []discordtest.Call) bool {
			n := 0
			for _, c := range cs {
				if strings.HasSuffix(c.Path, "/callback") {
					n++
				}
			}
			return n >= (round+1)*concurrent
		})
		if err != nil {
			return "", "", err
		}
		for _, tok := range tokens {
			for _, c := range calls {
				if strings.Contains(c.Path, "/"+tok+"/callback") {
					lat = append(lat, c.At.Sub(fake.Dispatched(tok)))
				}
			}
		}
	}
	return fmtPct(lat), "p99 < 100 ms", nil
}
