package commands_test

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/commands"
)

var verb = regexp.MustCompile(`%(?:\[(\d+)\])?[-+# 0]*[0-9]*(?:\.[0-9]*)?([a-zA-Z%])`)

// verbs maps argument index to verb letter ("%%" takes no argument).
func verbs(msg string) map[int]string {
	out := map[int]string{}
	next := 1
	for _, m := range verb.FindAllStringSubmatch(msg, -1) {
		if m[2] == "%" {
			continue
		}
		if m[1] != "" {
			next, _ = strconv.Atoi(m[1])
		}
		out[next] = m[2]
		next++
	}
	return out
}

// TestCatalogsComplete fails when a catalog lacks a key English has (or
// has one English lacks), or when a message's format verbs differ.
func TestCatalogsComplete(t *testing.T) {
	t.Parallel()
	en := commands.CatalogKeys("en")
	require.NotEmpty(t, en)
	for _, lang := range commands.Languages[1:] {
		require.Equal(t, en, commands.CatalogKeys(lang), "catalog %s must have exactly English's keys", lang)
		for _, k := range en {
			e, _ := commands.Message("en", k)
			m, _ := commands.Message(lang, k)
			require.NotEmpty(t, m, "%s: %s is empty", lang, k)
			require.Equal(t, verbs(e), verbs(m), "%s: %s has other format verbs than English (%q vs %q)", lang, k, m, e)
		}
	}
}

func TestVerbs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		msg  string
		want map[int]string
	}{
		{"a %d b %s", map[int]string{1: "d", 2: "s"}},
		{"%[2]s then %[1]d", map[int]string{1: "d", 2: "s"}},
		{"100%% %.0fs", map[int]string{1: "f"}},
		{"none", map[int]string{}},
	} {
		require.Equal(t, tc.want, verbs(tc.msg), tc.msg)
	}
}

func TestLangAndT(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"de": "de", "de-DE": "de", "ja-JP": "ja", "ja": "ja", "en-US": "en", "fr": "en", "": "en", "DE_at": "de"} {
		require.Equal(t, want, commands.Lang(in), in)
	}
	require.Equal(t, "In der Warteschlange — Platz 3", commands.T("de", "queued", 3))
	require.Equal(t, "Queued — #3 in line", commands.T("fr", "queued", 3))
	require.Equal(t, "no-such-key", commands.T("de", "no-such-key"))
}

func TestSeedsText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, locale    string
		seeds, subseeds []int64
		want            string
	}{
		{"plain", "en", []int64{1, 2}, nil, "1, 2"},
		{"none", "en", nil, nil, ""},
		{"variation", "en", []int64{7}, []int64{99}, "7 (variation subseed 99)"},
		{"variation de", "de", []int64{7, 8}, []int64{1, 2}, "7 (Variations-Subseed 1), 8 (Variations-Subseed 2)"},
		{"fewer subseeds", "en", []int64{7, 8}, []int64{1}, "7 (variation subseed 1), 8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, c.want, commands.SeedsText(c.locale, c.seeds, c.subseeds))
		})
	}
}

// FuzzLang: any locale a platform sends maps to a shipped language, and
// every message formats in it.
func FuzzLang(f *testing.F) {
	for _, s := range []string{"de", "de-DE", "ja_JP", "en-US", "", "fr", "DE_at", "-", "ja-", "\x00", "zh-Hant-TW"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, locale string) {
		require.Contains(t, commands.Languages, commands.Lang(locale))
		require.NotEmpty(t, commands.T(locale, "queued", 1))
		require.Equal(t, commands.T(commands.Lang(locale), "canceled"), commands.T(locale, "canceled"))
	})
}
