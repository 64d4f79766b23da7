package bench

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/easelbot/easel/internal/redisproc"
	"github.com/easelbot/easel/scheduler"
)

// runShards is the shards scenario: the throughput scenario on a Redis
// Cluster with scheduler.shards 1 and 3, interleaved rounds times.
func runShards(ctx context.Context, cluster string, n, slots, rounds int, stdout, stderr io.Writer) int {
	if cluster == "start" {
		cl, err := redisproc.StartCluster(os.TempDir(), 3)
		if err != nil {
			fmt.Fprintln(stderr, "easel bench: cluster:", err)
			return 1
		}
		defer cl.Kill()
		cluster = cl.URL
	}
	if err := compareShards(ctx, stdout, cluster, n, slots, rounds); err != nil {
		fmt.Fprintln(stderr, "easel bench: shards:", err)
		return 1
	}
	return 0
}

// compareShards prints jobs/s with one shard and with three on the same
// cluster, interleaved, and the medians' ratio.
func compareShards(ctx context.Context, stdout io.Writer, url string, n, slots, rounds int) error {
	fmt.Fprintf(stdout, "| scenario | result | budget |\n| --- | --- | --- |\n")
	got := map[int][]float64{}
	for i := 1; i <= rounds; i++ {
		for _, shards := range []int{1, 3} {
			r, err := ShardsThroughput(ctx, url, n, slots, shards)
			if err != nil {
				return fmt.Errorf("%d shards: %w", shards, err)
			}
			got[shards] = append(got[shards], r.JobsPerSec)
			fmt.Fprintf(stdout, "| round %d: jobs/s on a 3-master cluster, shards=%d, no-op backend, %d slots, 100 tenants, %d jobs | %.0f (%d/%d succeeded) | — |\n",
				i, shards, slots, n, r.JobsPerSec, r.Succeeded, r.Jobs)
		}
	}
	one, three := median(got[1]), median(got[3])
	fmt.Fprintf(stdout, "| jobs/s on a 3-master cluster, median of %d interleaved rounds | shards=1 %.0f, shards=3 %.0f: %.2f× | — |\n",
		rounds, one, three, three/one)
	return nil
}

// ShardsThroughput is Throughput on a cluster URL with shards shards,
// without the command count (INFO commandstats is per node).
func ShardsThroughput(ctx context.Context, url string, n, slots, shards int) (ThroughputResult, error) {
	r, err := newRigWith(ctx, url, slots, true, scheduler.Config{Shards: shards})
	if err != nil {
		return ThroughputResult{}, err
	}
	defer r.close()
	succeeded, el, err := r.flood(ctx, n)
	if err != nil {
		return ThroughputResult{}, err
	}
	return ThroughputResult{JobsPerSec: float64(succeeded) / el.Seconds(), Succeeded: succeeded, Jobs: n}, nil
}
