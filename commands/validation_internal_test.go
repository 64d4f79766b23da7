package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

// A validation error keeps its English text (the HTTP API's) and says the
// same detail in German and Japanese, the field name unchanged.
func TestValidationErrorLocalized(t *testing.T) {
	t.Parallel()
	var many advertised
	for i := range 20 {
		many.Models = append(many.Models, fmt.Sprintf("m%02d", i))
	}
	catalogErr := mergeCatalog(map[string]advertised{"x": many}).checkCatalog(&Imagine{Model: "nope"})
	_, _, flagErr := ParseFlags("a fox --ar 5:5")
	_, loraErr := ParseLoRAs("detail:9")
	for _, c := range []struct {
		name     string
		err      error
		en, de   string
		jaSubstr string
	}{
		{"range", limits(t).Validate(&Imagine{Prompt: "x", Steps: 60}, scheduler.Policy{MaxSteps: scheduler.Ptr(50)}),
			"steps: must be between 1 and 50 (got 60)", "steps: muss zwischen 1 und 50 liegen (erhalten: 60)", "steps: 1 から 50 の間"},
		{"float range", limits(t).Validate(&Imagine{Prompt: "x", CFGScale: 99}, scheduler.Policy{}),
			"cfg_scale: must be between 1 and 30 (got 99)", "cfg_scale: muss zwischen 1 und 30 liegen (erhalten: 99)", "cfg_scale: 1 から 30"},
		{"nul", limits(t).Validate(&Imagine{Prompt: string(make([]byte, 2001))}, scheduler.Policy{}),
			"prompt: must not contain NUL characters", "prompt: darf keine NUL-Zeichen enthalten", "NUL 文字"},
		{"prompt length", limits(t).Validate(&Imagine{Prompt: fmt.Sprintf("%02001d", 0)}, scheduler.Policy{}),
			"prompt: must be at most 2000 characters (got 2001)", "prompt: darf höchstens 2000 Zeichen lang sein (erhalten: 2001)", "2000 文字以内"},
		{"unknown choice", catalogErr,
			`model: "nope" is not a model any backend offers; choose from m00, m01, m02, m03, m04, m05, m06, m07, m08, m09, m10, m11, m12, m13, m14 … and 5 more (see the models list)`,
			`model: "nope" ist kein Modell, das ein Backend anbietet; wähle aus m00, m01, m02, m03, m04, m05, m06, m07, m08, m09, m10, m11, m12, m13, m14 … und 5 weitere (siehe die Modellliste)`,
			"ほか 5 件"},
		{"one of", flagErr, `--ar: must be one of 1:1, 3:4, 4:3, 9:16, 16:9 (got "5:5")`,
			`--ar: muss eines von 1:1, 3:4, 4:3, 9:16, 16:9 sein (erhalten: "5:5")`, `のいずれか`},
		{"lora weight", loraErr, `loras: "detail": weight must be between -5 and 5 (got 9)`,
			`loras: "detail": Das Gewicht muss zwischen -5 und 5 liegen (erhalten: 9)`, "重み"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var ve *ValidationError
			require.ErrorAs(t, c.err, &ve)
			require.Equal(t, c.en, ve.Error(), "the English text is unchanged")
			require.Equal(t, c.en, ve.Localized("en-US"))
			require.Equal(t, c.de, ve.Localized("de-DE"))
			require.Contains(t, ve.Localized("ja"), c.jaSubstr)
		})
	}
	// An error without a catalog key stays English in every language.
	plain := invalid("image", "could not be fetched: %v", "dial tcp: refused")
	var ve *ValidationError
	require.ErrorAs(t, plain, &ve)
	require.Equal(t, "image: could not be fetched: dial tcp: refused", ve.Localized("de"))
}

// Every catalog key a validation error names in the source exists in the
// English catalog (the completeness test covers the other languages).
func TestValidationKeysExist(t *testing.T) {
	t.Parallel()
	use := regexp.MustCompile(`Invalid\([^,()]+(?:\([^()]*\))?, "([a-z0-9_]+)"[,)]`)
	var files []string
	for _, glob := range []string{"*.go", "../adapters/*/*.go"} {
		m, err := filepath.Glob(glob)
		require.NoError(t, err)
		files = append(files, m...)
	}
	seen := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range use.FindAllStringSubmatch(string(src), -1) {
			_, ok := Message("en", m[1])
			require.True(t, ok, "%s uses the catalog key %q, which English lacks", f, m[1])
			seen++
		}
	}
	require.Greater(t, seen, 40, "the pattern still finds the uses")
	for _, what := range []string{"model", "sampler", "scheduler", "lora"} {
		_, ok := Message("en", "v_unknown_"+what)
		require.True(t, ok, what)
	}
}
