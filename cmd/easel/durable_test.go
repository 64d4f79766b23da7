package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestServeWithoutRedisURLIsDurable: `easel serve` with no Redis URL and
// redis-server on PATH runs it as a child with its AOF under data_dir;
// jobs queued while no worker runs survive a restart of serve and then
// complete. A second serve on the same data_dir is refused.
func TestServeWithoutRedisURLIsDurable(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH (./test.sh installs it)")
	}
	data := filepath.Join(t.TempDir(), "easel-data")
	addr := freeAddr(t)
	env := []string{"EASEL_DATA_DIR=" + data, "EASEL_HTTP_ADDR=" + addr}

	first := startProc(t, append(env, "EASEL_WORKER_DISABLED=true"), "serve")
	first.waitListening(t, addr)
	require.Contains(t, first.output(), "started redis-server")
	require.NotContains(t, first.output(), "EMBEDDED")

	// The data dir is locked while serve runs.
	out, code := easel(t, append(env, "EASEL_HTTP_ADDR="+freeAddr(t)), "serve")
	require.NotZero(t, code, out)
	require.Contains(t, out, "data_dir")
	require.Contains(t, out, "in use by another easel serve")

	var ids []string
	for i := range 3 {
		resp, err := http.Post("http://"+addr+"/v1/jobs", "application/json",
			strings.NewReader(`{"prompt":"durable `+string(rune('a'+i))+`","steps":2,"width":64,"height":64}`))
		require.NoError(t, err)
		var body struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		require.Equal(t, "queued", body.Status)
		ids = append(ids, body.ID)
	}
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-first.done:
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop")
	}

	// Same data_dir, now with the embedded fake backend running jobs.
	second := startProc(t, append(env, "EASEL_FAKESD_INSTANT=true"), "serve")
	second.waitListening(t, addr)
	for _, id := range ids {
		require.Equal(t, "succeeded", lastEvent(t, "http://"+addr+"/v1/jobs/"+id+"/events"), "job %s\n%s", id, second.output())
	}
}

// lastEvent follows a job's Server-Sent Events to the end and returns the
// type of the last one.
func lastEvent(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	last := ""
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if typ, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			last = typ
			if typ == "succeeded" || typ == "failed" || typ == "canceled" {
				return last
			}
		}
	}
	return last
}
