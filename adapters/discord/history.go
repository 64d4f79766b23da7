package discord

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
	"go.uber.org/zap"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// historyPageSize is how many jobs a /history page shows: an embed each,
// with its first image's thumbnail (Discord allows 10 embeds and 10 files
// a message).
const historyPageSize = 5

// historyTimeout bounds reading a page and its thumbnails (a thumbnail not
// made yet is made from the image): longer than the 3 s Discord allows a
// first answer, so the answer is deferred and the page edited in.
const historyTimeout = 20 * time.Second

// historyButton is the custom id prefix of /history's paging buttons:
// easel:hist:<o|n>:<cursor> (o: older, after cursor; n: newer, before it).
const historyButton = "easel:hist:"

// history answers /history (update false: a new ephemeral answer) or one of
// its buttons (update true: the same message is edited): deferred at once,
// then the page of the caller's own finished jobs edited in. It returns
// nil: the interaction is answered.
func (a *Adapter) history(i *discordgo.Interaction, cursor string, newer, update bool) *discordgo.InteractionResponse {
	first := &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Flags: discordgo.MessageFlagsEphemeral}}
	if update {
		first = &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredMessageUpdate}
	}
	if err := a.s.InteractionRespond(i, first); err != nil {
		a.log.Warn("discord: defer history", zap.Error(err))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	if _, err := a.s.InteractionResponseEdit(i, a.historyPage(ctx, i, cursor, newer), discordgo.WithContext(ctx)); err != nil {
		a.log.Warn("discord: edit history", zap.Error(err))
	}
	return nil
}

// historyPage renders one page: an embed per job (prompt, model, size,
// seed, when, the first image's thumbnail attached), Newer and Older
// buttons, or a line saying there is nothing.
func (a *Adapter) historyPage(ctx context.Context, i *discordgo.Interaction, cursor string, newer bool) *discordgo.WebhookEdit {
	c, _ := caller(i)
	loc := string(i.Locale)
	noEmbeds, noComps, noFiles := []*discordgo.MessageEmbed{}, []discordgo.MessageComponent{}, []*discordgo.MessageAttachment{}
	h, err := a.svc.History(ctx, c, cursor, newer, historyPageSize)
	if err != nil {
		msg := a.userError(err, i.Locale).Data.Content
		return &discordgo.WebhookEdit{Content: &msg, Embeds: &noEmbeds, Components: &noComps, Attachments: &noFiles}
	}
	if len(h.Entries) == 0 {
		msg := commands.T(loc, "history_empty")
		return &discordgo.WebhookEdit{Content: &msg, Embeds: &noEmbeds, Components: &noComps, Attachments: &noFiles}
	}
	content := commands.T(loc, "history_title")
	embeds := make([]*discordgo.MessageEmbed, 0, len(h.Entries))
	var files []*discordgo.File
	for _, e := range h.Entries {
		em := &discordgo.MessageEmbed{Title: clip(entryTitle(e), 256), Description: entryText(loc, e),
			Timestamp: e.When.UTC().Format(time.RFC3339)}
		if e.Job.Status == scheduler.StatusSucceeded && e.Job.Images > 0 {
			if b, err := a.svc.Thumbnail(ctx, e.Job, 0); err == nil {
				name := "h-" + e.Job.ID + ".jpg"
				files = append(files, &discordgo.File{Name: name, ContentType: "image/jpeg", Reader: bytes.NewReader(b)})
				em.Image = &discordgo.MessageEmbedImage{URL: "attachment://" + name}
			} else {
				em.Description += "\n" + commands.T(loc, "history_expired")
			}
		}
		embeds = append(embeds, em)
	}
	// API v10 keeps only the attachments listed: the last page's go.
	atts := make([]*discordgo.MessageAttachment, len(files))
	for n, f := range files {
		atts[n] = &discordgo.MessageAttachment{ID: fmt.Sprint(n), Filename: f.Name}
	}
	comps := []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
		discordgo.Button{Label: commands.T(loc, "button_newer"), Style: discordgo.SecondaryButton,
			CustomID: historyButton + "n:" + h.Newer, Disabled: h.Newer == ""},
		discordgo.Button{Label: commands.T(loc, "button_older"), Style: discordgo.SecondaryButton,
			CustomID: historyButton + "o:" + h.Older, Disabled: h.Older == ""},
	}}}
	return &discordgo.WebhookEdit{Content: &content, Embeds: &embeds, Components: &comps, Files: files, Attachments: &atts}
}

// historyClick routes a paging button: easel:hist:<o|n>:<cursor>.
func (a *Adapter) historyClick(i *discordgo.Interaction, id string) *discordgo.InteractionResponse {
	dir, cursor, _ := strings.Cut(strings.TrimPrefix(id, historyButton), ":")
	return a.history(i, cursor, dir == "n", true)
}

func entryTitle(e commands.HistoryEntry) string {
	if e.Prompt != "" {
		return e.Prompt
	}
	return e.Job.ID
}

// entryText is a history entry's second line: model · size · seed · when
// (Discord shows <t:…:R> in the reader's time zone and language), then
// how it ended.
func entryText(loc string, e commands.HistoryEntry) string {
	model := e.Model
	if model == "" {
		model = commands.T(loc, "history_default_model")
	}
	seed := commands.T(loc, "history_random_seed")
	if e.Seed != nil {
		seed = fmt.Sprint(*e.Seed)
	}
	line := commands.T(loc, "history_entry", model, e.Width, e.Height, seed, fmt.Sprintf("<t:%d:R>", e.When.Unix()))
	switch e.Job.Status {
	case scheduler.StatusSucceeded:
		line += "\n" + commands.T(loc, "history_images", e.Job.Images)
	case scheduler.StatusFailed:
		line += "\n" + commands.T(loc, "failed", clip(e.Job.Error, 200))
	case scheduler.StatusCanceled:
		line += "\n" + commands.T(loc, "canceled")
	}
	return line + fmt.Sprintf(" · `%s`", e.Job.ID)
}
