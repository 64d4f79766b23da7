package bot

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestArchitectureMapIsTrue keeps ARCHITECTURE.md's package table in step
// with the module: every package it names exists, and every package of the
// module is named.
func TestArchitectureMapIsTrue(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../ARCHITECTURE.md")
	require.NoError(t, err)
	named := map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9_/]+)` \\|")
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		named[m[1]] = true
	}
	require.NotEmpty(t, named, "no package table found in ARCHITECTURE.md")

	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "github.com/easelbot/easel/...").Output()
	require.NoError(t, err)
	root, err := os.Getwd()
	require.NoError(t, err)
	root = strings.TrimSuffix(root, "/bot")
	actual := map[string]bool{}
	for _, dir := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(dir, root), "/")
		actual[rel] = true
		require.True(t, named[rel], "package %s is not named in ARCHITECTURE.md's package table", rel)
	}
	for p := range named {
		require.True(t, actual[p], "ARCHITECTURE.md names package %s, which does not exist", p)
	}
}
