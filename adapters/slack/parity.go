package slack

import (
	"context"
	"encoding/json"
	"strings"

	"go.uber.org/zap"

	"github.com/easelbot/easel/commands"
)

// locale is the user's Slack locale from users.info (cached with the
// admin check); "" (English) when Slack cannot say.
func (a *Adapter) locale(ctx context.Context, user string) string {
	u, err := a.userInfo(ctx, user)
	if err != nil {
		a.log.Info("slack: users.info for locale", zap.Error(err))
		return ""
	}
	return u.Locale
}

// adminDefaults shows the workspace's and this channel's defaults, or
// sets one field: `defaults <field> <value…>` for the workspace,
// `defaults channel <field> <value…>` for this channel; no value clears.
func (a *Adapter) adminDefaults(ctx context.Context, c commands.Caller, loc string, args []string) (string, error) {
	if len(args) == 0 {
		server, err := a.svc.Defaults(ctx, c.Tenant, "")
		if err != nil {
			return "", err
		}
		ch, err := a.svc.Defaults(ctx, c.Tenant, c.Channel)
		if err != nil {
			return "", err
		}
		sj, _ := json.Marshal(server)
		cj, _ := json.Marshal(ch)
		return commands.T(loc, "slack_defaults_shown", escape(string(sj)), escape(string(cj))), nil
	}
	channel, scope := "", commands.T(loc, "scope_workspace")
	if args[0] == "channel" {
		channel, scope, args = c.Channel, commands.T(loc, "scope_channel"), args[1:]
	}
	if len(args) == 0 {
		return "", commands.Invalid("field", "v_admin_defaults_usage")
	}
	value := Unescape(strings.Join(args[1:], " "))
	if _, err := a.svc.SetDefault(ctx, c, channel, args[0], value); err != nil {
		return "", err
	}
	return commands.T(loc, "defaults_set", scope, escape(args[0]), escape(value)), nil
}
