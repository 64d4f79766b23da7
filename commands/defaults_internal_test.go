package commands

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzSetField: admin and /settings text never panics, an accepted field
// is a settable one, and numbers never go negative.
func FuzzSetField(f *testing.F) {
	for _, s := range [][2]string{{"steps", "30"}, {"size", "768x512"}, {"size", "x"}, {"aspect", "16:9"}, {"width", "-8"},
		{"negative_prompt", "blurry"}, {"model", ""}, {"count", "99999999999999999999"}, {"STEPS", " 7 "}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, field, value string) {
		var st Settings
		err := setField(&st, field, value, SettingFields)
		if err != nil {
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			return
		}
		require.GreaterOrEqual(t, min(st.Width, st.Height, st.Steps, st.Count), 0)
	})
}
