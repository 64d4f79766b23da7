package discord

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// Autocomplete choices keep Discord's 100-character limit on names and
// values, and a model name of 150 characters still submits as itself.
func TestChoicesClippedTo100Runes(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 50) + strings.Repeat("m", 100) // 150 runes, 200 bytes
	list := []string{"short", long}
	got := choices(list, "model", "")
	require.Len(t, got, 2)
	for _, c := range got {
		require.LessOrEqual(t, utf8.RuneCountInString(c.Name), 100, c.Name)
		require.LessOrEqual(t, utf8.RuneCountInString(c.Value.(string)), 100)
	}
	require.Equal(t, "short", got[0].Value)
	require.True(t, strings.HasSuffix(got[1].Name, "…"))
	require.Equal(t, long, resolveClipped(got[1].Value.(string), list), "the clipped value maps back to the model")
	require.Equal(t, "short", resolveClipped("short", list))

	for _, c := range []struct {
		s    string
		n    int
		want string
	}{{"abc", 3, "abc"}, {"abcd", 3, "ab…"}, {"ééé", 2, "é…"}} {
		require.Equal(t, c.want, clip(c.s, c.n))
	}
	// Two models sharing the clipped prefix: left as typed, for validation
	// to refuse by name.
	twin := []string{strings.Repeat("x", 120) + "a", strings.Repeat("x", 120) + "b"}
	v := choices(twin, "model", "")[0].Value.(string)
	require.Equal(t, v, resolveClipped(v, twin))
	// A lora list too long to clip without losing its weights is left out.
	require.Empty(t, choices([]string{strings.Repeat("l", 99)}, "loras", ""))
}
