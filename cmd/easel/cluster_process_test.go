package main

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/internal/redistest"
)

// TestServeOnClusterProcess is issue 10's opening report, as an owner
// would try it: `easel serve` pointed at a three-master Redis 7 Cluster on
// loopback (redis.url naming every master), with one and with three
// scheduler shards. Jobs submitted over the HTTP API run on the embedded
// fake backend to their end, and the API reads them back: no script
// touches a key outside its slot, no request answers 500.
func TestServeOnClusterProcess(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 3} {
		t.Run("shards="+strconv.Itoa(shards), func(t *testing.T) {
			t.Parallel()
			rcfg := redistest.ClusterConfig(t)
			addr := freeAddr(t)
			base := "http://" + addr
			serve := startProc(t, []string{
				"EASEL_REDIS_URL=" + rcfg.URL, "EASEL_REDIS_PREFIX=" + rcfg.Prefix, "EASEL_HTTP_ADDR=" + addr,
				"EASEL_DATA_DIR=" + t.TempDir(), "EASEL_SCHEDULER_SHARDS=" + strconv.Itoa(shards), sharedImages(t, nil),
			}, "serve")
			serve.waitListening(t, addr)
			for n := range 3 {
				id := submitJSON(t, base, `{"prompt":"a lighthouse `+strconv.Itoa(n)+`","width":64,"height":64,"steps":3,"user":"u`+strconv.Itoa(n)+`"}`)
				evs := followJob(t, base, id, nil)
				require.Equal(t, "succeeded", evs[len(evs)-1].Type, "%v\n%s", evs, serve.output())
				var job struct {
					Status string `json:"status"`
				}
				getJSON(t, base+"/v1/jobs/"+id, &job)
				require.Equal(t, "succeeded", job.Status)
				resp, err := http.Get(base + "/v1/jobs/" + id + "/images/0")
				require.NoError(t, err)
				require.NoError(t, resp.Body.Close())
				require.Equal(t, http.StatusOK, resp.StatusCode)
			}
			resp, err := http.Get(base + "/v1/queue")
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, http.StatusOK, resp.StatusCode)
		})
	}
}
