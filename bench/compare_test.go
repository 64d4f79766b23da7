package bench

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/internal/redistest"
)

func TestParseAsynq(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, out string
		want      AsynqResult
		err       string
	}{
		{"both lines", "asynq: 7023 jobs/s (200 jobs in 28ms, concurrency 8)\n" +
			"asynq cost: redis_cpu_us=16800 client_cpu_us=26400 commands=3600 first_handler_ms=812.5 (first enqueue → last handler return)\n",
			AsynqResult{JobsPerSec: 7023, RedisCPUPerJob: 84, ClientCPUPerJob: 132, CommandsPerJob: 18, FirstHandler: 812500 * time.Microsecond}, ""},
		{"no cost line (an older anchor)", "asynq: 7023 jobs/s (200 jobs in 28ms, concurrency 8)\n", AsynqResult{}, "cost line"},
		{"no rate line", "asynq cost: redis_cpu_us=1 client_cpu_us=1 commands=1 first_handler_ms=1\n", AsynqResult{}, "jobs/s"},
		{"nothing", "", AsynqResult{}, "got"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseAsynq(tc.out, 200)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// Easel's throughput run measures its cost: Redis CPU, client CPU and
// commands per job, none zero. Not parallel: INFO is server-wide.
func TestThroughputCost(t *testing.T) {
	res, err := Throughput(context.Background(), redistest.URL(t), 200, 2)
	require.NoError(t, err)
	require.Equal(t, 200, res.Succeeded)
	require.Positive(t, res.RedisCPUPerJob)
	require.Positive(t, res.ClientCPUPerJob)
	require.Greater(t, res.CommandsPerJob, 5.0)
}

var (
	roundRow = regexp.MustCompile(`\| round 1: [^|]*Redis CPU \(INFO cpu[^|]*client CPU \(getrusage[^|]* \| ` +
		`Easel ([0-9]+) jobs/s \(200/200 succeeded\), Redis CPU ([0-9]+) µs/job, client CPU ([0-9]+) µs/job, ([0-9.]+) commands/job; ` +
		`asynq ([0-9]+) jobs/s, Redis CPU ([0-9]+) µs/job, client CPU ([0-9]+) µs/job, ([0-9.]+) commands/job ` +
		`\(TaskCheckInterval 1 ms, asynq at its fastest; first handler [0-9.]+ ms after the first enqueue\): [0-9.]+× \|`)
	medianRow = regexp.MustCompile(`\| cost per job, medians of 1 interleaved rounds [^|]*\| ` +
		`Easel ([0-9]+) jobs/s, Redis CPU ([0-9]+) µs/job, client CPU ([0-9]+) µs/job, ([0-9.]+) commands/job; ` +
		`asynq ([0-9]+) jobs/s, Redis CPU ([0-9]+) µs/job, client CPU ([0-9]+) µs/job, ([0-9.]+) commands/job \|`)
	floorRow = regexp.MustCompile(`\| floor \(SYNTHETIC[^|]*\| Redis CPU ([0-9.]+) µs/job \(INFO cpu delta\), ([0-9.]+) commands/job`)
)

// One tiny interleaved round prints, for Easel and for the asynq anchor
// (built and run as `easel bench` does), jobs/s, Redis CPU, client CPU and
// commands per job, the medians, and the floor; every figure non-zero.
// Building the anchor needs its modules (asynq) in the module cache: the
// build runs with GOPROXY=off, as tests talk to loopback only.
func TestCompareAsynqPrintsCost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the asynq anchor")
	}
	t.Setenv("GOPROXY", "off")
	ctx := context.Background()
	if _, err := BuildAsynq(ctx, "asynqcmp", t.TempDir()); err != nil {
		require.NotContains(t, err.Error(), "build failed", "the anchor does not compile")
		t.Skipf("the asynq anchor's modules are not in the module cache (run `go mod download` in bench/asynqcmp): %v", err)
	}
	var out bytes.Buffer
	require.NoError(t, compareAsynq(ctx, &out, redistest.URL(t), "asynqcmp", 200, 2, 1, 200))
	t.Log(out.String())
	for _, row := range []*regexp.Regexp{roundRow, medianRow, floorRow} {
		m := row.FindStringSubmatch(out.String())
		require.NotNil(t, m, "no row matching %s in\n%s", row, out.String())
		for i, v := range m[1:] {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			require.Positive(t, f, "figure %d of %s", i+1, row)
		}
	}
}
