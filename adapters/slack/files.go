package slack

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/easelbot/easel/commands"
)

// attach makes a mention with an attached file an img2img request: the
// first file Slack gives a URL for is downloaded from its url_private with
// the bot token (Slack needs the files:read scope for that) under the
// init-image rules, and becomes im's init image. Files without a URL (no
// files:read) are ignored. Errors name the field "file".
func (a *Adapter) attach(ctx context.Context, r req, im *commands.Imagine) error {
	src := ""
	for _, f := range r.files {
		if src = f.URLPrivateDownload; src == "" {
			src = f.URLPrivate
		}
		if src != "" {
			break
		}
	}
	if src == "" {
		if len(r.files) > 0 {
			a.log.Info("slack: attached file has no URL (missing files:read?); ignored")
		}
		return nil
	}
	im.InitImageField = "file"
	if !a.slackHost(src) {
		return commands.Invalid("file", "v_slack_file")
	}
	data, err := a.svc.FetchImage(ctx, "file", src, http.Header{"Authorization": {"Bearer " + a.cfg.BotToken}})
	if err != nil {
		return err
	}
	im.InitImageData = data
	return nil
}

// slackHost reports whether u is on Slack (slack.com or a subdomain, such
// as files.slack.com) or on the host of the configured API base, so the
// bot token is sent nowhere else.
func (a *Adapter) slackHost(u string) bool {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") {
		return false
	}
	host := strings.ToLower(p.Hostname())
	if p.Scheme == "https" && (host == "slack.com" || strings.HasSuffix(host, ".slack.com")) {
		return true
	}
	if base, err := url.Parse(a.cfg.APIBase); err == nil && a.cfg.APIBase != "" {
		return strings.EqualFold(base.Hostname(), host) && base.Scheme == p.Scheme
	}
	return false
}
