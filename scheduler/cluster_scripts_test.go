package scheduler

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
)

// fcallRecorder is the store's Redis client, noting each function that a
// FCALL ran without an error.
type fcallRecorder struct {
	rueidis.Client
	mu  sync.Mutex
	ran map[string]bool
}

// fn names the function a command calls, "" for other commands. It reads
// the command before it is sent: rueidis recycles a command once done.
func fn(cmd rueidis.Completed) string {
	c := cmd.Commands()
	if len(c) > 1 && c[0] == "FCALL" {
		return c[1]
	}
	return ""
}

func (r *fcallRecorder) note(fn string, res rueidis.RedisResult) {
	if fn != "" && res.Error() == nil {
		r.mu.Lock()
		r.ran[fn] = true
		r.mu.Unlock()
	}
}

func (r *fcallRecorder) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	name := fn(cmd)
	res := r.Client.Do(ctx, cmd)
	r.note(name, res)
	return res
}

func (r *fcallRecorder) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = fn(c)
	}
	res := r.Client.DoMulti(ctx, cmds...)
	for i := range res {
		r.note(names[i], res[i])
	}
	return res
}

// TestEveryScriptOnCluster runs every script of the library on the real
// three-master Redis Cluster, through the contract test and the calls it
// does not make, and checks that each one ran without an error: a script
// that touched a key outside its shard's slot would fail here ("Script
// attempted to access a non local key in a cluster node script"). A new
// script has to be added here, or the test fails.
func TestEveryScriptOnCluster(t *testing.T) {
	t.Parallel()
	store := redistest.ClusterStore(t)
	rec := &fcallRecorder{Client: store.Client, ran: map[string]bool{}}
	store.Client = rec
	s, err := New(context.Background(), store, Config{}, zap.NewNop())
	require.NoError(t, err)
	require.True(t, s.runner.functions.Load(), "the cluster runs Redis Functions")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	scriptContracts(t, s, ctx)

	// The scripts the contract test leaves out.
	sl := s.Slot("w2", "b2")
	require.NoError(t, s.exec(ctx, capsCall{Member: sl.member, TTL: time.Minute, Caps: Capabilities{Models: []string{"m"}, Loaded: "m"}}).Error())
	p, _ := json.Marshal(map[string]string{"prompt": "x"})
	_, err = s.Submit(ctx, SubmitRequest{Tenant: "api:q", User: "u", Payload: p})
	require.NoError(t, err)
	page, err := s.ActivePage(ctx, "api:q", "", "", 10)
	require.NoError(t, err)
	require.NotEmpty(t, page.Entries)
	require.NoError(t, s.exec(ctx, positionsCall{Cursor: "0", Lanes: 10, Jobs: 10, StaleReports: time.Minute}).Error())
	require.NoError(t, s.exec(ctx, peekCall{}).Error())
	require.NoError(t, s.exec(ctx, capsCall{Member: sl.member, Forget: true}).Error())
	// spend, on its own key's slot: the burst of one, then nothing.
	for _, want := range []bool{true, false} {
		ok, err := s.Spend(ctx, "slack:budget:T1", 1, 1)
		require.NoError(t, err)
		require.Equal(t, want, ok)
	}
	// pruneads, on the backends hash's own slot.
	pruneAdsContract(t, s, ctx)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, n := range scriptNames {
		require.True(t, rec.ran[library.scripts[n].fn], "script %s did not run on the cluster (ran: %v)", n, rec.ran)
	}
}
