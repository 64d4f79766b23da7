package discord

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
	"go.uber.org/zap"

	"github.com/easelbot/easel/commands"
)

// img2imgTimeout bounds a submit that fetches an attached image: longer
// than the 3 s Discord allows an interaction's first answer, so the answer
// is deferred and the outcome edited in.
const img2imgTimeout = 30 * time.Second

// submitDeferred answers the interaction at once ("thinking…"), submits
// the request, which downloads the attached image, and edits the outcome
// into the answer. It returns nil: the interaction is answered.
func (a *Adapter) submitDeferred(c commands.Caller, i *discordgo.Interaction, uid string, im commands.Imagine) *discordgo.InteractionResponse {
	if err := a.s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource}); err != nil {
		a.log.Warn("discord: defer", zap.Error(err))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), img2imgTimeout)
	defer cancel()
	r := a.submit(ctx, c, i, uid, im)
	edit := &discordgo.WebhookEdit{Content: &r.Data.Content}
	if r.Data.Components != nil {
		edit.Components = &r.Data.Components
	}
	if _, err := a.s.InteractionResponseEdit(i, edit); err != nil {
		a.log.Warn("discord: edit deferred answer", zap.Error(err))
	}
	a.answered(i) // the deferred answer, now edited, is the first render
	return nil
}

// modelsText renders the catalog for /models in the reader's language.
func modelsText(loc string, cat commands.Catalog) string {
	var b strings.Builder
	b.WriteString("**" + commands.T(loc, "models_title") + ":** ")
	for n, m := range cat.Models {
		if n > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.Name)
		if len(m.LoadedOn) > 0 {
			b.WriteString(commands.T(loc, "models_loaded"))
		}
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"models_samplers", cat.Samplers}, {"models_schedulers", cat.Schedulers}, {"models_loras", cat.LoRAs}} {
		if len(l.list) > 0 {
			fmt.Fprintf(&b, "\n**%s:** %s", commands.T(loc, l.key), strings.Join(l.list, ", "))
		}
	}
	return b.String()
}
