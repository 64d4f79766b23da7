package discord

import (
	"testing"

	"github.com/bwmarrin/discordgo"
	"github.com/stretchr/testify/require"
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
