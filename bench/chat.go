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
)

// recorder is a renderer that notes how long after each event it was called.
type recorder struct {
	mu  sync.Mutex
	lat []time.Duration
	n   int
	all chan struct{}
}

func (r *recorder) Kind() string               { return "bench" }
func (r *recorder) MinInterval() time.Duration { return 0 }
func (r *recorder) Render(_ context.Context, _ *scheduler.Job, ev scheduler.Event) error {
	d := time.Since(ev.Time)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, d)
	if ev.Type.Terminal() {
		r.n--
		if r.n == 0 {
			close(r.all)
		}
	}
	return nil
}

// RelayLatency runs n jobs one after another through the real relay with a
// recording renderer and measures worker event → render call.
func RelayLatency(ctx context.Context, url string, n int) (string, string, error) {
	r, err := newRig(ctx, url, 1, true)
	if err != nil {
		return "", "", err
	}
	defer r.close()
	rec := &recorder{n: n, all: make(chan struct{})}
	relay := adapters.NewRelay(r.sched, zap.NewNop(), rec)
	if err := relay.Start(ctx); err != nil {
		return "", "", err
	}
	defer func() { _ = relay.Stop(context.Background()) }()
	for range n {
		if _, err := r.sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: payload,
			Origin: json.RawMessage(`{"kind":"bench"}`), Images: 1}); err != nil {
			return "", "", err
		}
		<-r.done
	}
	select {
	case <-rec.all:
	case <-time.After(30 * time.Second):
		return "", "", fmt.Errorf("relay delivered %d of %d final events", n-rec.n, n)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return fmtPct(rec.lat), "p99 < 10 ms", nil
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
	bot, err := discord.New(discord.Config{Token: "bench", APIBase: fake.URL}, svc, zap.NewNop())
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
