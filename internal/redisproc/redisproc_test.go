package redisproc

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
)

// TestStartDurable: the server needs its password, keeps data across a
// stop and start on the same dir, and a second server on a locked dir is
// refused.
func TestStartDurable(t *testing.T) {
	t.Parallel()
	if !Available() {
		t.Skip("redis-server not on PATH (./test.sh installs it)")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s, err := StartDurable(dir)
	require.NoError(t, err)

	_, err = StartDurable(dir)
	require.ErrorContains(t, err, "in use by another easel serve")

	noAuth, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true, DisableRetry: true})
	if err == nil {
		err = noAuth.Do(ctx, noAuth.B().Ping().Build()).Error()
		noAuth.Close()
	}
	require.ErrorContains(t, err, "NOAUTH")

	opt, err := rueidis.ParseURL(s.URL)
	require.NoError(t, err)
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	require.NoError(t, err)
	require.NoError(t, c.Do(ctx, c.B().Set().Key("k").Value("v").Build()).Error())
	c.Close()
	require.NoError(t, s.Stop(10*time.Second))
	info, err := os.Stat(filepath.Join(dir, "redis-auth.conf"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	s, err = StartDurable(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Stop(10*time.Second)) }()
	opt, err = rueidis.ParseURL(s.URL)
	require.NoError(t, err)
	opt.DisableCache = true
	c, err = rueidis.NewClient(opt)
	require.NoError(t, err)
	defer c.Close()
	v, err := c.Do(ctx, c.B().Get().Key("k").Build()).ToString()
	require.NoError(t, err)
	require.Equal(t, "v", v)
}

// TestStartDurableRelativeDir: the default data_dir is relative
// (./easel-data); redis-server must still find its config file in it.
func TestStartDurableRelativeDir(t *testing.T) {
	if !Available() {
		t.Fatal("redis-server not on PATH (./test.sh installs it)")
	}
	t.Chdir(t.TempDir())
	s, err := StartDurable("easel-data")
	require.NoError(t, err)
	require.NoError(t, s.Stop(10*time.Second))
	_, err = os.Stat(filepath.Join("easel-data", "appendonlydir"))
	require.NoError(t, err, "the AOF lives in the relative data dir")
}
