package discord

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/bwmarrin/discordgo"
	"go.uber.org/zap"

	"github.com/easelbot/easel/commands"
)

// nsfwAllowed reports, when asked (only for a request naming an
// NSFW-tagged model or LoRA), whether the interaction's channel allows NSFW
// content: in a server the channel's age-restricted flag ("nsfw" on the
// channel object; a thread takes its parent's), in a DM the owner's
// discord.nsfw_in_dms. discordgo v0.29 does not decode the partial channel
// an interaction carries, so the channel comes from the gateway state
// (kept from GUILD_CREATE and CHANNEL_UPDATE) or GET /channels/{id}.
func (a *Adapter) nsfwAllowed(i *discordgo.Interaction) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		if i.GuildID == "" {
			return a.cfg.NSFWInDMs, nil
		}
		ch, err := a.channel(ctx, i.ChannelID)
		if err != nil {
			return false, err
		}
		if ch.IsThread() && ch.ParentID != "" {
			if ch, err = a.channel(ctx, ch.ParentID); err != nil {
				return false, err
			}
		}
		return ch.NSFW, nil
	}
}

func (a *Adapter) channel(ctx context.Context, id string) (*discordgo.Channel, error) {
	if ch, err := a.s.State.Channel(id); err == nil {
		return ch, nil
	}
	ch, err := a.s.Channel(id, discordgo.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("discord: channel %s: %w", id, err)
	}
	return ch, nil
}

// spoilers reports whether the tenant sends images as spoilers (false,
// logged, when Redis cannot say).
func (a *Adapter) spoilers(ctx context.Context, tenant string) bool {
	o, err := a.svc.ChatOptions(ctx, tenant)
	if err != nil {
		a.log.Warn("discord: chat options", zap.Error(err))
	}
	return o.Spoilers
}

// adminDefaults shows the server's and this channel's defaults, or sets
// one field of them (scope "channel" sets this channel's).
func (a *Adapter) adminDefaults(ctx context.Context, c commands.Caller, i *discordgo.Interaction, arg map[string]string) (string, error) {
	loc := string(i.Locale)
	field, ok := arg["field"]
	if !ok {
		server, err := a.svc.Defaults(ctx, c.Tenant, "")
		if err != nil {
			return "", err
		}
		ch, err := a.svc.Defaults(ctx, c.Tenant, i.ChannelID)
		if err != nil {
			return "", err
		}
		sj, _ := json.Marshal(server)
		cj, _ := json.Marshal(ch)
		return commands.T(loc, "defaults_shown", string(sj), string(cj)), nil
	}
	channel, scope := "", commands.T(loc, "scope_server")
	if arg["scope"] == "channel" {
		channel, scope = i.ChannelID, commands.T(loc, "scope_channel")
	}
	if _, err := a.svc.SetDefault(ctx, c, channel, field, arg["value"]); err != nil {
		return "", err
	}
	return commands.T(loc, "defaults_set", scope, field, arg["value"]), nil
}
