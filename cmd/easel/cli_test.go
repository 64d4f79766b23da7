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
		for _, c := range []string{"serve", "worker", "imagine", "config", "health", "fakesd", "fakecomfy", "bench", "version"} {
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

// TestConfigPrintShowsDefaults: config print shows what each component
// runs with, not zeros: defaults applied, values set kept, secrets still
// redacted.
func TestConfigPrintShowsDefaults(t *testing.T) {
	t.Parallel()
	env := []string{"EASEL_REDIS_URL=redis://:hunter2hunter2@127.0.0.1:1/0", "EASEL_SLACK_BOT_TOKEN=xoxb-SECRET",
		"EASEL_SLACK_SIGNING_SECRET=SECRET", "EASEL_SCHEDULER_MAX_ATTEMPTS=5",
		`EASEL_BACKENDS=[{name: gpu0, url: "http://127.0.0.1:7860"}]`}
	out, code := easel(t, env, "config", "print")
	require.Zero(t, code, out)
	for _, want := range []string{
		"\n    lease: 30s\n", "\n    max_attempts: 5\n", "\n    position_interval: 1s\n", // scheduler
		"\n    addr: 127.0.0.1:8080\n", "\n    write_timeout: 30s\n", // http
		"\n    default_steps: 20\n", "\n    max_size: 2048\n", // limits
		"\n    updates_per_minute: 40\n", "\n    health_interval: 2s\n",
		"\n    prefix: easel\n", "\n        kind: fs\n", // storage: fs with a durable Redis
		"\n      kind: a1111\n", "\n        connect: 10s\n", // the backend and its timeouts
	} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "lease: 0s")
	require.NotContains(t, out, "hunter2")
	require.NotContains(t, out, "SECRET")
	require.Contains(t, out, "bot_token: <redacted>")
}
