package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// easel runs the binary with only env (and PATH) in a directory without
// an easel.yaml, returning its combined output and exit code.
func easel(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(easelBin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return string(out), code
}

func TestHelpListsCommands(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out, code := easel(t, nil, args...)
		require.Zero(t, code, args)
		for _, c := range []string{"serve", "worker", "imagine", "config", "health", "fakesd", "bench", "version"} {
			require.Contains(t, out, "\n  "+c+" ", "%v", args)
		}
		require.NotContains(t, out, "-grace", "%v prints serve's flags", args)
	}
	out, code := easel(t, nil, "help", "worker")
	require.Zero(t, code)
	require.Contains(t, out, "-config")
	require.Contains(t, out, "workers only")
	out, code = easel(t, nil, "help", "nope")
	require.Equal(t, 2, code)
	require.Contains(t, out, `unknown command "nope"`)
	out, code = easel(t, nil, "version")
	require.Zero(t, code)
	require.Regexp(t, `^easel \S+ .*go1\.\d+`, out)
}

// TestConfigCheckAndPrint: check lists every problem with its field and
// variable and exits 1; a typo'd variable is warned about with a
// suggestion; print redacts secrets.
func TestConfigCheckAndPrint(t *testing.T) {
	t.Parallel()
	out, code := easel(t, []string{"EASEL_SCHEDULER_LEASE=30", "EASEL_LOG_LEVEL=loud", "EASEL_REDIS_ULR=redis://x"}, "config", "check")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "scheduler.lease")
	require.Contains(t, out, "write 30s")
	require.Contains(t, out, "log.level (EASEL_LOG_LEVEL)")
	require.Contains(t, out, `EASEL_REDIS_ULR is set but Easel does not read it; did you mean "EASEL_REDIS_URL"?`)

	out, code = easel(t, nil, "config", "check", "worker")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "backends (EASEL_BACKENDS)")
	require.Contains(t, out, "redis.url (EASEL_REDIS_URL)")

	dir := t.TempDir()
	file := filepath.Join(dir, "easel.yaml")
	require.NoError(t, os.WriteFile(file, []byte("redis:\n  ulr: redis://x\n"), 0o600))
	out, code = easel(t, nil, "config", "check", "--config", file)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, `redis.ulr: unknown field; did you mean "url"? (`+file+`, line 2)`)

	env := []string{"EASEL_REDIS_URL=redis://:hunter2hunter2@127.0.0.1:1/0", "EASEL_DISCORD_TOKEN=tok-SECRET",
		`EASEL_HTTP_KEYS={"key-SECRET-0123456789": acme}`}
	out, code = easel(t, env, "config", "check")
	require.Zero(t, code, out)
	require.Contains(t, out, "configuration OK")
	out, code = easel(t, env, "config", "print")
	require.Zero(t, code, out)
	require.NotContains(t, out, "hunter2")
	require.NotContains(t, out, "SECRET")
	require.Contains(t, out, "acme")
	require.True(t, strings.Contains(out, "token: <redacted>"), out)
}
