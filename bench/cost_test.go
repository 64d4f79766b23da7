package bench

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/internal/redistest"
)

func TestParseServerCPU(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, info string
		want       time.Duration
		err        string
	}{
		{"redis 7 reply", "# CPU\r\nused_cpu_sys:0.006908\r\nused_cpu_user:0.013817\r\nused_cpu_sys_children:0.000000\r\n" +
			"used_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:0.006640\r\n", 20725 * time.Microsecond, ""},
		{"no newline at the end", "used_cpu_user:2\nused_cpu_sys:1.5", 3500 * time.Millisecond, ""},
		{"user missing", "# CPU\r\nused_cpu_sys:1.0\r\nused_cpu_sys_main_thread:1.0\r\n", 0, "missing"},
		{"empty", "", 0, "missing"},
		{"not a number", "used_cpu_sys:x\r\nused_cpu_user:1\r\n", 0, "used_cpu_sys"},
		{"negative", "used_cpu_sys:-1\r\nused_cpu_user:1\r\n", 0, "used_cpu_sys"},
		{"NaN", "used_cpu_sys:1\r\nused_cpu_user:NaN\r\n", 0, "used_cpu_user"},
		{"twice", "used_cpu_sys:1\r\nused_cpu_sys:1\r\n", 0, "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseServerCPU(tc.info)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.want, got, float64(time.Microsecond))
		})
	}
}

func FuzzParseServerCPU(f *testing.F) {
	f.Add("# CPU\r\nused_cpu_sys:0.006908\r\nused_cpu_user:0.013817\r\n")
	f.Add("used_cpu_sys:1e308\r\nused_cpu_user:NaN\r\n")
	f.Add("used_cpu_sys:\r\nused_cpu_user")
	f.Fuzz(func(t *testing.T, info string) {
		got, err := parseServerCPU(info)
		if err == nil {
			require.GreaterOrEqual(t, got, time.Duration(0))
		}
	})
}

// The window's own INFO calls are not counted: with five PINGs inside it,
// it counts five commands. (Not parallel: INFO is server-wide, and no test
// of this package runs Redis commands alongside another. The client sends
// no keepalive PINGs, which would be counted too.)
func TestCostWindowCountsOnlyTheRun(t *testing.T) {
	ctx := context.Background()
	opt, err := rueidis.ParseURL(redistest.URL(t))
	require.NoError(t, err)
	opt.Dialer.KeepAlive = -1
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	require.NoError(t, err)
	defer c.Close()
	w, err := openCost(ctx, c)
	require.NoError(t, err)
	for range 5 {
		require.NoError(t, c.Do(ctx, c.B().Ping().Build()).Error())
	}
	cost, err := w.close(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(5), cost.Commands)
	require.GreaterOrEqual(t, cost.RedisCPU, time.Duration(0))
	require.GreaterOrEqual(t, cost.ClientCPU, time.Duration(0))
}
