package discord

import (
	"testing"

	"github.com/bwmarrin/discordgo"
	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// Every command, subcommand and option has a German and a Japanese
// description; localized names follow Discord's rules.
func TestCommandTextComplete(t *testing.T) {
	t.Parallel()
	paths := map[string]bool{}
	var walk func(path string, opts []*discordgo.ApplicationCommandOption)
	walk = func(path string, opts []*discordgo.ApplicationCommandOption) {
		for _, o := range opts {
			paths[path+"."+o.Name] = true
			walk(path+"."+o.Name, o.Options)
		}
	}
	for _, d := range commandDefs() {
		paths[d.Name] = true
		walk(d.Name, d.Options)
	}
	for _, loc := range []discordgo.Locale{discordgo.German, discordgo.Japanese} {
		for p := range paths {
			require.NotEmpty(t, commandText[loc][p].desc, "%s: no description for %s", loc, p)
			require.LessOrEqual(t, len([]rune(commandText[loc][p].desc)), 100, "%s: %s", loc, p)
		}
		for p, tx := range commandText[loc] {
			require.True(t, paths[p], "%s: %s is no command or option", loc, p)
			if tx.name != "" {
				require.Regexp(t, `^[-_\p{Ll}\p{Lm}\p{Lo}\p{N}]{1,32}$`, tx.name, "%s: %s", loc, p)
			}
		}
	}
}

// /models and /queue text follow the reader's language; a status without a
// catalog entry shows as it is.
func TestModelsAndStatusText(t *testing.T) {
	t.Parallel()
	cat := commands.Catalog{Models: []commands.CatalogModel{{Name: "xl", LoadedOn: []string{"a"}}, {Name: "sd15"}},
		Samplers: []string{"Euler"}, Schedulers: []string{"karras"}, LoRAs: []string{"detail"}}
	for _, tc := range []struct {
		loc, models string
		status      scheduler.Status
		want        string
	}{
		{"en-US", "**Models:** xl (loaded), sd15\n**Samplers:** Euler\n**Schedulers:** karras\n**LoRAs:** detail", scheduler.StatusRunning, "running"},
		{"de", "**Modelle:** xl (geladen), sd15\n**Sampler:** Euler\n**Rauschpläne:** karras\n**LoRAs:** detail", scheduler.StatusQueued, "wartet"},
		{"ja", "**モデル:** xl（読み込み済み）, sd15\n**サンプラー:** Euler\n**スケジューラー:** karras\n**LoRA:** detail", scheduler.StatusRunning, "実行中"},
		{"de", "", scheduler.StatusSucceeded, "succeeded"},
	} {
		if tc.models != "" {
			require.Equal(t, tc.models, modelsText(tc.loc, cat), tc.loc)
		}
		require.Equal(t, tc.want, statusText(tc.loc, tc.status), tc.loc)
	}
}
