package storage_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/storage"
)

// moduleGoFiles calls fn with every non-test Go file of the module (paths
// relative to its root) outside testdata.
func moduleGoFiles(t *testing.T, fn func(rel, path string)) {
	t.Helper()
	root := ".."
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		require.NoError(t, err)
		fn(filepath.ToSlash(rel), path)
		return nil
	})
	require.NoError(t, err)
}

// TestKeysBuiltOnlyHere: every Redis key name comes from Keys (keys.go).
// Code elsewhere that glues the key prefix or hash tag into a name of its
// own (as the adapters, metrics and scheduler once did) fails here.
func TestKeysBuiltOnlyHere(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("keys.go")
	require.NoError(t, err)
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^func \(k Keys\) (\w+)\(`).FindAllStringSubmatch(string(src), -1) {
		names = append(names, m[1])
	}
	require.NotEmpty(t, names)
	// The prefix or tag glued to a name, or a key of Keys with more glued
	// on ("….Tenant(t) + \":hist\"").
	glued := regexp.MustCompile(`[Kk]eys\.Prefix\s*\+|\+\s*[\w.]*[Kk]eys\.Prefix\b|":\{"|"\}:"|"\{"\s*\+|` +
		`\.(` + strings.Join(names, "|") + `)\([^()]*\)\s*\+`)
	checked := 0
	moduleGoFiles(t, func(rel, path string) {
		if rel == "storage/keys.go" {
			return
		}
		src, err := os.ReadFile(path)
		require.NoError(t, err)
		checked++
		for i, line := range strings.Split(string(src), "\n") {
			require.False(t, glued.MatchString(line), "%s:%d builds a Redis key itself (add it to storage.Keys): %s",
				rel, i+1, strings.TrimSpace(line))
		}
	})
	require.Greater(t, checked, 100, "the walk found the module's files")
}

// TestDriverBoundary: scheduler is the only package that speaks to Redis
// about jobs, queues, policies, settings and events. Outside it only
// storage (the connection, the demo's blob store), the Redis process
// helpers and the benchmarks import the Redis client; adapters, commands
// and workers reach Redis through scheduler's methods.
func TestDriverBoundary(t *testing.T) {
	t.Parallel()
	allowed := []string{"scheduler/", "storage/", "internal/redisproc/", "internal/redistest/", "bench/"}
	fset := token.NewFileSet()
	moduleGoFiles(t, func(rel, path string) {
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			if !strings.HasPrefix(p, "github.com/redis/") && !strings.HasPrefix(p, "github.com/alicebob/miniredis") {
				continue
			}
			ok := false
			for _, a := range allowed {
				ok = ok || strings.HasPrefix(rel, a)
			}
			require.True(t, ok, "%s imports the Redis client %s: go through scheduler", rel, p)
		}
	})
}

// Scheduler keys of one shard share its hash tag, so a script's keys are
// on one Cluster slot; the others stay outside it.
func TestKeysShareTheShardTag(t *testing.T) {
	t.Parallel()
	k := storage.Keys{Prefix: "p", Tag: "s7"}
	for _, key := range []string{k.Job("j"), k.JobRequest("j"), k.JobEvents("j"), k.Tenant("t"), k.UserQueue("t", "u"),
		k.TenantIdle("t"), k.TenantHistory("t", ""), k.TenantHistory("t", "u"), k.TenantRefusals("t"), k.RefusalChannel(),
		k.TenantUsers("t"), k.TenantActive("t"), k.Relax(), k.Ready(), k.Blocked(), k.Work(), k.Delayed(), k.Dead(),
		k.Events(), k.Global(), k.Slots(), k.SlotCaps(), k.BackendsDown(), k.BackendHealth(), k.Wake(),
		k.Idempotency("t", "i"), k.Delivery("j"), k.Policy("t", ""), k.Policy("t", "u"), k.Quota("t"),
		k.RateLimit("t", ""), k.RateLimit("t", "u"), k.ServedMarks(1)} {
		require.True(t, strings.HasPrefix(key, k.ShardPrefix()), key)
		require.True(t, strings.HasPrefix(key, "p:{s7}:"), key)
	}
	for _, key := range []string{k.Blob("j", 1, "0"), k.Settings("t", "u"), k.Backends(), k.Chat("x"), k.Record("x")} {
		require.True(t, strings.HasPrefix(key, "p:"), key)
		require.NotContains(t, key, "{", key)
	}
}
