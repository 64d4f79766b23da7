package scheduler_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// BenchmarkPositionsPass measures one positions pass over 100 tenants with
// 10 queued jobs each (1000 jobs, all within the per-lane cap): when every
// job's place changed (each gets an event) and when none did. It reports
// Redis commands per pass and per queued job (INFO commandstats, commands
// inside the script included). The pass runs at most once a
// scheduler.position_interval, off the dispatch path.
func BenchmarkPositionsPass(b *testing.B) {
	for _, changed := range []bool{true, false} {
		name := "unchanged"
		if changed {
			name = "all_changed"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			store := redistest.Store(b)
			s, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
			require.NoError(b, err)
			p, _ := json.Marshal(map[string]string{"prompt": "x"})
			var ids []string
			for i := range 1000 {
				r, err := s.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t" + strconv.Itoa(i%100), User: "u", Payload: p})
				require.NoError(b, err)
				ids = append(ids, r.ID)
			}
			_, err = s.Positions(ctx)
			require.NoError(b, err)
			c := store.Client
			var cmds int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if changed {
					b.StopTimer()
					// Forget what was announced: every job's place is news.
					cs := make(rueidis.Commands, 0, len(ids))
					for _, id := range ids {
						cs = append(cs, c.B().Hset().Key(store.Keys.Job(id)).FieldValue().FieldValue("ppos", "0").Build())
					}
					for _, r := range c.DoMulti(ctx, cs...) {
						require.NoError(b, r.Error())
					}
					b.StartTimer()
				}
				before := commandCount(b, store)
				n, err := s.Positions(ctx)
				require.NoError(b, err)
				if changed {
					require.Equal(b, len(ids), n)
				} else {
					require.Zero(b, n)
				}
				cmds += commandCount(b, store) - before - 1
			}
			b.ReportMetric(float64(cmds)/float64(b.N), "cmds/pass")
			b.ReportMetric(float64(cmds)/float64(b.N)/float64(len(ids)), "cmds/job")
		})
	}
}

func commandCount(b *testing.B, store *storage.Store) int64 {
	calls, err := store.CommandCalls(context.Background())
	require.NoError(b, err)
	return storage.TotalCalls(calls)
}
