package slack

import (
	"context"
	"fmt"
	"strings"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// historyPageSize is how many jobs an `@easel history` page lists: a
// section each (Block Kit allows 50 blocks a message).
const historyPageSize = 5

// historyAction is the action_id prefix of the More button:
// easel:hist:<cursor>.
const historyAction = "easel:hist:"

// history answers `@easel history` (cursor "") or its More button (click):
// a page of the user's own finished jobs, newest first, only to them. A
// click replaces the page it was on through its response_url, a slash
// command answers through its own; a mention gets an ephemeral message in
// its thread.
func (a *Adapter) history(ctx context.Context, r req, cursor string, click bool) {
	c := commands.Caller{Tenant: "slack:" + r.team, User: r.user}
	h, err := a.svc.History(ctx, c, cursor, false, historyPageSize)
	if err != nil {
		a.notify(ctx, r, userError(err, r.locale))
		return
	}
	text, blocks := a.historyBlocks(ctx, r.locale, h)
	if r.responseURL != "" {
		body := map[string]any{"response_type": "ephemeral", "text": text, "blocks": blocks}
		if click {
			body["replace_original"] = true
		}
		if err := a.respond(ctx, r.responseURL, body); err == nil {
			return
		} else {
			a.log.Info("slack: history via response_url", zap.Error(err))
		}
	}
	opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)}
	if r.thread != "" {
		opts = append(opts, slack.MsgOptionTS(r.thread))
	}
	for attempt := 0; ; attempt++ {
		_, err = a.api.PostEphemeralContext(ctx, r.channel, r.user, opts...)
		if err == nil || !wait(ctx, err, attempt) {
			break
		}
	}
	if err != nil {
		a.log.Info("slack: history as blocks", zap.Error(err))
		a.notify(ctx, r, text) // a DM or the response_url, as text
	}
}

// historyBlocks renders a page: a section per job (prompt, model, size,
// seed, when, how it ended; its first image beside it when Easel uploaded
// it to Slack), then More when there are older jobs. text is the same
// without blocks (notifications, clients without Block Kit).
func (a *Adapter) historyBlocks(ctx context.Context, loc string, h commands.History) (string, []slack.Block) {
	if len(h.Entries) == 0 {
		msg := commands.T(loc, "history_empty")
		return msg, []slack.Block{section(msg)}
	}
	var text strings.Builder
	text.WriteString(commands.T(loc, "history_title"))
	blocks := []slack.Block{section(commands.T(loc, "history_title"))}
	for _, e := range h.Entries {
		prompt := e.Prompt
		if prompt == "" {
			prompt = e.Job.ID
		}
		line := entryLine(loc, e)
		fmt.Fprintf(&text, "\n• %s — %s", clipEscaped(prompt, 100), line)
		s := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, sectionText(clip(prompt, 300), line), false, false),
			nil, nil, slack.SectionBlockOptionBlockID(blockID("h")))
		if e.Job.Status == scheduler.StatusSucceeded {
			if ids, ok, err := a.sched.Recall(ctx, "slack:upload:"+e.Job.ID); err == nil && ok && ids != "" {
				first, _, _ := strings.Cut(ids, ",")
				s.Accessory = slack.NewAccessory(slack.NewImageBlockElementSlackFile(&slack.SlackFileObject{ID: first}, clip(prompt, 200)))
			}
		}
		blocks = append(blocks, s)
	}
	if h.Older != "" {
		blocks = append(blocks, slack.NewActionBlock(blockID("a"), button(commands.T(loc, "button_more"), historyAction+h.Older)))
	}
	return text.String(), blocks
}

// entryLine is model · size · seed · when (in the reader's time zone), how
// it ended, and the job id.
func entryLine(loc string, e commands.HistoryEntry) string {
	model := e.Model
	if model == "" {
		model = commands.T(loc, "history_default_model")
	}
	seed := commands.T(loc, "history_random_seed")
	if e.Seed != nil {
		seed = fmt.Sprint(*e.Seed)
	}
	line := commands.T(loc, "history_entry", escape(model), e.Width, e.Height, seed, slackDate(e))
	switch e.Job.Status {
	case scheduler.StatusSucceeded:
		line += " · " + commands.T(loc, "history_images", e.Job.Images)
	case scheduler.StatusFailed:
		line += " · " + commands.T(loc, "failed", escape(clip(e.Job.Error, 200)))
	case scheduler.StatusCanceled:
		line += " · " + commands.T(loc, "canceled")
	}
	return line + " · `" + e.Job.ID + "`"
}

// slackDate is when the job finished, as Slack shows a date and time in
// the reader's own time zone (UTC for clients that cannot).
func slackDate(e commands.HistoryEntry) string {
	t := e.When.UTC()
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s UTC>", t.Unix(), t.Format("2006-01-02 15:04"))
}
