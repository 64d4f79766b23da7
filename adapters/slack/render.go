package slack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// Block Kit limits (https://docs.slack.dev/reference/block-kit/blocks):
// section text at most 3 000 characters, at most 50 blocks a message;
// block_id at most 255 and new on every update of a message.
const (
	maxSectionText = 3000
	maxBlocks      = 50
)

// maxImageBlocks is how many images a message shows by file id: room is
// left for the section and, in a direct message, the note above it.
const maxImageBlocks = maxBlocks - 2

// imageBlocks shows uploaded images by file id, at most maxImageBlocks.
func imageBlocks(ids []string) []slack.Block {
	var out []slack.Block
	for i, id := range ids[:min(len(ids), maxImageBlocks)] {
		out = append(out, image(id, fmt.Sprintf("image %d", i+1)))
	}
	return out
}

// uploadTTL is how long the record of a job's uploaded images is kept.
const uploadTTL = 48 * time.Hour

// preview is the latest preview image shown on a job's message.
type preview struct {
	name string // scheduler preview name
	file string // its Slack file id
}

var (
	idPrefix = func() string {
		var b [4]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	idSeq atomic.Int64
)

// blockID is a block_id no other message or iteration uses: Slack asks for
// a new one on every update.
func blockID(kind string) string {
	return kind + "-" + idPrefix + "-" + strconv.FormatInt(idSeq.Add(1), 36)
}

func runeLen(s string) int { return utf8.RuneCountInString(s) }

// clip shortens s to at most n runes, ending in "…" when cut.
func clip(s string, n int) string {
	if runeLen(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// clipEscaped escapes s for mrkdwn and shortens it to at most n runes
// without cutting an escape in half.
func clipEscaped(s string, n int) string {
	if e := escape(s); runeLen(e) <= n {
		return e
	}
	var b strings.Builder
	used := 0
	for _, r := range s {
		e := escape(string(r))
		if used+runeLen(e) > n-1 {
			break
		}
		b.WriteString(e)
		used += runeLen(e)
	}
	return b.String() + "…"
}

// sectionText is the prompt in bold over a status line, within Slack's
// 3 000 characters whatever the prompt length limit is.
func sectionText(prompt, status string) string {
	status = clip(status, 1000)
	return "*" + clipEscaped(prompt, maxSectionText-runeLen(status)-3) + "*\n" + status
}

func button(label, actionID string) *slack.ButtonBlockElement {
	return slack.NewButtonBlockElement(actionID, actionID, slack.NewTextBlockObject(slack.PlainTextType, clip(label, 75), false, false))
}

func section(text string) slack.Block {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, false), nil, nil,
		slack.SectionBlockOptionBlockID(blockID("s")))
}

func image(fileID, alt string) slack.Block {
	b := slack.NewImageBlock("", alt, blockID("i"), nil)
	b.SlackFile = &slack.SlackFileObject{ID: fileID}
	return b
}

// slackTime is a time as Slack shows it, in the reader's own time zone
// (with UTC for clients that cannot).
func slackTime(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{time_secs}|%s UTC>", t.Unix(), t.UTC().Format(time.TimeOnly))
}

// Render implements adapters.Renderer: it updates the thread reply (with
// the latest preview while the job runs, within the workspace's update
// budget) and, at the end, uploads the images into the thread once.
func (a *Adapter) Render(ctx context.Context, job *scheduler.Job, ev scheduler.Event) error {
	var o Origin
	if err := json.Unmarshal(job.Origin, &o); err != nil {
		return fmt.Errorf("slack origin: %w", err)
	}
	var im commands.Imagine
	_ = json.Unmarshal(job.Payload, &im)
	if o.ResponseURL != "" {
		return a.renderResponse(ctx, job, ev, o, im)
	}
	loc := o.Locale
	cancelBtn := func() slack.Block {
		return slack.NewActionBlock(blockID("c"), button(commands.T(loc, "button_cancel"), "easel:cancel:"+job.ID))
	}
	var status string
	var extra []slack.Block
	switch ev.Type {
	case scheduler.EventQueued:
		status, extra = adapters.QueuedLine(loc, ev, slackTime), []slack.Block{cancelBtn()}
	case scheduler.EventPosition:
		// The place in line changed (within the workspace's update budget,
		// as progress), or why the job waits (always).
		if ev.Waiting == nil && !a.spend(ctx, o.Team) {
			return nil
		}
		status, extra = adapters.QueuedLine(loc, ev, slackTime), []slack.Block{cancelBtn()}
	case scheduler.EventStarted:
		status, extra = commands.T(loc, "starting_on", ev.Backend), []slack.Block{cancelBtn()}
	case scheduler.EventProgress:
		if !a.spend(ctx, o.Team) {
			return nil
		}
		status = fmt.Sprintf("%s %d/%d", adapters.ProgressBar(ev.Fraction), ev.Step, ev.Steps)
		if f := a.previewFile(ctx, job, ev); f != "" {
			extra = append(extra, image(f, "preview"))
		}
		extra = append(extra, cancelBtn())
	case scheduler.EventRetrying:
		status, extra = commands.T(loc, "retrying", ev.AfterS, ev.Reason), []slack.Block{cancelBtn()}
	case scheduler.EventFailed:
		status = commands.T(loc, "failed", ev.Message)
	case scheduler.EventCanceled:
		status = commands.T(loc, "canceled")
	case scheduler.EventSucceeded:
		if _, err := a.uploadOnce(ctx, job, o.Channel, o.ThreadTS); err != nil {
			if !permanent(err) {
				return err // the relay retries; images uploaded so far are not repeated
			}
			a.dropPreviews(ctx, job.ID)
			a.notify(ctx, req{team: o.Team, channel: o.Channel, thread: o.ThreadTS, user: o.User, locale: o.Locale},
				commands.T(o.Locale, "slack_share_failed", job.ID, errorCode(err)))
			return nil
		}
		status = commands.T(loc, "slack_done", im.Width, im.Height, im.Steps, commands.SeedsText(loc, job.Seeds, job.Subseeds))
		els := []slack.BlockElement{button(commands.T(loc, "button_reroll"), "easel:reroll:"+job.ID)}
		for n := 0; n < min(job.Images, 4); n++ {
			els = append(els, button(fmt.Sprintf("V%d", n+1), fmt.Sprintf("easel:var:%s:%d", job.ID, n)),
				button(fmt.Sprintf("U%d", n+1), fmt.Sprintf("easel:up:%s:%d", job.ID, n)))
		}
		extra = []slack.Block{slack.NewActionBlock(blockID("r"), els...)}
	default:
		return nil
	}
	text := sectionText(im.Prompt, status)
	blocks := append([]slack.Block{section(text)}, extra...)
	err := a.update(ctx, o.Channel, o.ReplyTS, text, blocks)
	terminal := ev.Type.Terminal()
	switch {
	case err == nil:
	case !permanent(err):
		return err
	case !terminal:
		a.log.Info("slack: progress update refused", zap.String("job", job.ID), zap.Error(err))
	default:
		a.settle(ctx, job, o, text, err)
	}
	if terminal {
		a.dropPreviews(ctx, job.ID)
	}
	return nil
}

// settle delivers a final state whose update Slack refused for good: a new
// message in the thread (with the buttons when the old message is gone),
// else a notice to the user. It never fails: retrying cannot help.
func (a *Adapter) settle(ctx context.Context, job *scheduler.Job, o Origin, text string, cause error) {
	a.log.Warn("slack: final update refused; posting a new message", zap.String("job", job.ID), zap.Error(cause))
	var err error
	switch errorCode(cause) {
	case "message_not_found", "cant_update_message", "edit_window_closed":
		var blocks []slack.Block
		if job.Status == scheduler.StatusSucceeded {
			blocks = []slack.Block{section(text), slack.NewActionBlock(blockID("r"), button(commands.T(o.Locale, "button_reroll"), "easel:reroll:"+job.ID))}
		}
		_, err = a.post(ctx, o.Channel, o.ThreadTS, text, blocks...)
	default:
		_, err = a.post(ctx, o.Channel, o.ThreadTS, clip(text, maxSectionText))
	}
	if err == nil {
		return
	}
	a.notify(ctx, req{team: o.Team, channel: o.Channel, thread: o.ThreadTS, user: o.User, locale: o.Locale},
		commands.T(o.Locale, "slack_update_failed", job.ID, errorCode(cause), clip(text, 2000)))
}

// renderResponse shows a job started by a slash command in a channel the
// bot is not in, through the command's response_url (30 minutes, 5 uses):
// one progress note (started, or how far) and the final state, with the
// images uploaded privately and shown by file id. When Slack refuses the response_url
// (expired after 30 minutes, used up), the result goes to the user as a
// direct message instead.
func (a *Adapter) renderResponse(ctx context.Context, job *scheduler.Job, ev scheduler.Event, o Origin, im commands.Imagine) error {
	var text string
	var blocks []slack.Block
	public := false
	switch ev.Type {
	case scheduler.EventStarted, scheduler.EventProgress:
		// Progress, once per job (the first of these the relay renders;
		// every step would spend the 5 uses). Best effort: a refused note
		// is not retried.
		if !a.firstTime(ctx, "noted:"+job.ID, uploadTTL) {
			return nil
		}
		status := commands.T(o.Locale, "starting_on", ev.Backend)
		if ev.Type == scheduler.EventProgress {
			status = fmt.Sprintf("%s %d/%d", adapters.ProgressBar(ev.Fraction), ev.Step, ev.Steps)
		}
		body := map[string]any{"response_type": "ephemeral", "text": sectionText(im.Prompt, status)}
		if err := a.respond(ctx, o.ResponseURL, body); err != nil {
			a.log.Info("slack: progress note via response_url", zap.String("job", job.ID), zap.Error(err))
		}
		return nil
	case scheduler.EventSucceeded:
		ids, err := a.uploadOnce(ctx, job, "", "")
		if err != nil {
			if !permanent(err) {
				return err
			}
			a.log.Warn("slack: upload for response_url", zap.String("job", job.ID), zap.Error(err))
			a.notify(ctx, req{team: o.Team, channel: o.Channel, user: o.User, locale: o.Locale},
				commands.T(o.Locale, "slack_upload_failed", job.ID, errorCode(err)))
			return nil
		}
		status := commands.T(o.Locale, "slack_done", im.Width, im.Height, im.Steps,
			commands.SeedsText(o.Locale, job.Seeds, job.Subseeds)) + " · <@" + o.User + ">"
		if len(ids) > maxImageBlocks {
			status += fmt.Sprintf(" · %d/%d", maxImageBlocks, len(ids))
		}
		text = sectionText(im.Prompt, status)
		blocks = append([]slack.Block{section(text)}, imageBlocks(ids)...)
		public = true
	case scheduler.EventFailed:
		text = sectionText(im.Prompt, commands.T(o.Locale, "failed", ev.Message))
	case scheduler.EventCanceled:
		text = sectionText(im.Prompt, commands.T(o.Locale, "canceled"))
	default:
		return nil // per-step progress would spend the response_url's 5 uses
	}
	body := map[string]any{"response_type": "ephemeral", "text": text}
	if public {
		body["response_type"], body["blocks"] = "in_channel", blocks
	}
	err := a.respond(ctx, o.ResponseURL, body)
	if err == nil || !permanent(err) {
		return err
	}
	a.log.Warn("slack: response_url refused the result; sending it directly", zap.String("job", job.ID), zap.Error(err))
	a.direct(ctx, o, text, blocks, errorCode(err))
	return nil
}

// direct sends a job's final state to its user as a direct message (the
// app's DM with them), saying why it did not come through the command;
// else it tells them as notify can.
func (a *Adapter) direct(ctx context.Context, o Origin, text string, blocks []slack.Block, code string) {
	note := commands.T(o.Locale, "slack_direct_note", o.Channel, code)
	all := append([]slack.Block{section(clip(note, maxSectionText))}, blocks...)
	ch, _, err := a.directMessage(ctx, o.User, note+"\n"+text, all...)
	if err == nil {
		a.log.Info("slack: result sent by direct message", zap.String("user", o.User), zap.String("dm", ch))
		return
	}
	a.log.Info("slack: direct message", zap.String("user", o.User), zap.Error(err))
	a.notify(ctx, req{team: o.Team, channel: o.Channel, user: o.User, locale: o.Locale}, note+"\n"+clip(text, 2000))
}

// spend takes one progress update from the workspace's budget, shared by
// every serve instance through Redis; false skips the update (a later one
// or the final state follows).
func (a *Adapter) spend(ctx context.Context, team string) bool {
	ok, err := a.sched.Spend(ctx, "slack:budget:"+team, float64(a.cfg.UpdatesPerMinute), max(a.cfg.UpdatesPerMinute/10, 1))
	if err != nil {
		a.log.Warn("slack: update budget", zap.Error(err))
		return false
	}
	return ok
}

// previewFile uploads the job's latest preview (privately: it is shown by
// file id in an image block) unless it is already up, and returns its file
// id ("" when there is none or the upload failed).
func (a *Adapter) previewFile(ctx context.Context, job *scheduler.Job, ev scheduler.Event) string {
	name := ev.Preview
	if name == "" {
		name = job.Preview
	}
	if name == "" {
		return ""
	}
	a.previewsMu.Lock()
	p := a.previews[job.ID]
	if p != nil && p.name == name {
		a.previewsMu.Unlock()
		return p.file
	}
	a.previewsMu.Unlock()
	img, err := a.sched.Preview(ctx, job.ID, name)
	if err != nil {
		a.log.Debug("slack: preview", zap.Error(err))
		return ""
	}
	ids, err := a.uploadFiles(ctx, [][]byte{img}, "easel-"+job.ID+"-preview", "", "")
	if err != nil {
		a.log.Info("slack: preview upload", zap.String("job", job.ID), zap.Error(err))
		return ""
	}
	a.previewsMu.Lock()
	defer a.previewsMu.Unlock()
	if p = a.previews[job.ID]; p == nil {
		if len(a.previews) > 10000 {
			clear(a.previews)
		}
		p = &preview{}
		a.previews[job.ID] = p
	}
	p.name, p.file = name, ids[0]
	// Recorded in Redis, so whichever instance renders the final state
	// deletes previews every instance uploaded.
	key := "slack:previews:" + job.ID
	prev, _, err := a.sched.Recall(ctx, key)
	if err == nil {
		if prev != "" {
			prev += ","
		}
		err = a.sched.Remember(ctx, key, prev+ids[0], uploadTTL)
	}
	if err != nil {
		a.log.Info("slack: preview record", zap.String("job", job.ID), zap.Error(err))
	}
	return ids[0]
}

// dropPreviews deletes the job's preview files once the final state is up.
func (a *Adapter) dropPreviews(ctx context.Context, jobID string) {
	a.previewsMu.Lock()
	delete(a.previews, jobID)
	a.previewsMu.Unlock()
	v, ok, err := a.sched.Recall(ctx, "slack:previews:"+jobID)
	if err != nil || !ok || v == "" {
		return
	}
	for _, id := range strings.Split(v, ",") {
		if err := a.api.DeleteFileContext(ctx, id); err != nil {
			a.log.Debug("slack: delete preview", zap.String("file", id), zap.Error(err))
		}
	}
}

// uploadOnce uploads the job's images into the thread (channel "" keeps
// them private) unless a previous attempt did: the file ids are recorded in
// Redis, so a retried final render only retries the message update.
func (a *Adapter) uploadOnce(ctx context.Context, job *scheduler.Job, channel, thread string) ([]string, error) {
	key := "slack:upload:" + job.ID
	if v, ok, err := a.sched.Recall(ctx, key); err != nil {
		return nil, fmt.Errorf("slack: upload record: %w", err)
	} else if ok {
		return strings.Split(v, ","), nil
	}
	imgs := make([][]byte, job.Images)
	for n := range imgs {
		img, err := a.sched.Image(ctx, job, n)
		if err != nil {
			return nil, fmt.Errorf("slack: image %d: %w", n, err)
		}
		imgs[n] = img
	}
	ids, err := a.uploadFiles(ctx, imgs, "easel-"+job.ID, channel, thread)
	if err != nil {
		return nil, err
	}
	if err := a.sched.Remember(ctx, key, strings.Join(ids, ","), uploadTTL); err != nil {
		a.log.Warn("slack: upload record", zap.String("job", job.ID), zap.Error(err))
	}
	return ids, nil
}

// uploadFiles runs Slack's external upload flow (files.upload is retired):
// an upload URL per file, the bytes, then one completeUploadExternal that
// shares them into the thread (or keeps them private without a channel).
func (a *Adapter) uploadFiles(ctx context.Context, imgs [][]byte, base, channel, thread string) ([]string, error) {
	var files []slack.FileSummary
	for n, img := range imgs {
		name := base + ".png"
		if len(imgs) > 1 {
			name = fmt.Sprintf("%s-%d.png", base, n+1)
		}
		if strings.HasPrefix(http.DetectContentType(img), "image/jpeg") {
			name = strings.TrimSuffix(name, ".png") + ".jpg"
		}
		var up *slack.GetUploadURLExternalResponse
		var err error
		for attempt := 0; ; attempt++ {
			up, err = a.api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: name, FileSize: len(img)})
			if err == nil || !wait(ctx, err, attempt) {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("slack: files.getUploadURLExternal: %w", err)
		}
		if err := a.api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: up.UploadURL, Reader: bytes.NewReader(img), Filename: name}); err != nil {
			return nil, fmt.Errorf("slack: upload: %w", err)
		}
		files = append(files, slack.FileSummary{ID: up.FileID, Title: name})
	}
	params := slack.CompleteUploadExternalParameters{Files: files, Channel: channel, ThreadTimestamp: thread}
	var err error
	for attempt := 0; ; attempt++ {
		if _, err = a.api.CompleteUploadExternalContext(ctx, params); err == nil || !wait(ctx, err, attempt) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("slack: files.completeUploadExternal: %w", err)
	}
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = f.ID
	}
	return ids, nil
}
