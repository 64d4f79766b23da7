package discord

import (
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/easelbot/easel/commands"
)

// Option is one slash-command option as the adapter reads it: a name and a
// string, integer or number value.
type Option struct {
	Name  string
	Value any
}

// FromDiscord flattens discordgo options.
func FromDiscord(opts []*discordgo.ApplicationCommandInteractionDataOption) []Option {
	out := make([]Option, 0, len(opts))
	for _, o := range opts {
		out = append(out, Option{Name: o.Name, Value: o.Value})
	}
	return out
}

// FromInteraction flattens an interaction's options like FromDiscord,
// with an attachment option's value (its id) replaced by the attachment's
// URL from the interaction's resolved data ("" when it is missing).
func FromInteraction(data discordgo.ApplicationCommandInteractionData) []Option {
	out := FromDiscord(data.Options)
	for i, o := range data.Options {
		if o.Type != discordgo.ApplicationCommandOptionAttachment {
			continue
		}
		url := ""
		if id, ok := o.Value.(string); ok && data.Resolved != nil {
			if att := data.Resolved.Attachments[id]; att != nil {
				url = att.URL
			}
		}
		out[i].Value = url
	}
	return out
}

// ParseImagine turns /imagine options into a request; unknown options and
// wrong types are errors naming the option. The image option's value is
// the attachment's URL (see FromInteraction).
func ParseImagine(opts []Option) (commands.Imagine, error) {
	var im commands.Imagine
	for _, o := range opts {
		bad := func(key string) error { return commands.Invalid(o.Name, key) }
		switch o.Name {
		case "prompt", "negative", "sampler", "model", "aspect", "scheduler", "loras", "image":
			s, ok := o.Value.(string)
			if !ok {
				return im, bad("v_d_text")
			}
			switch o.Name {
			case "prompt":
				im.Prompt = s
			case "negative":
				im.NegativePrompt = s
			case "sampler":
				im.Sampler = s
			case "model":
				im.Model = s
			case "scheduler":
				im.Scheduler = s
			case "loras":
				ls, err := commands.ParseLoRAs(s)
				if err != nil {
					return im, err
				}
				im.LoRAs = ls
			case "image":
				if s == "" {
					return im, bad("v_d_attachment")
				}
				im.InitImage, im.InitImageField = s, "image"
			case "aspect":
				wh, ok := commands.Aspects[s]
				if !ok {
					return im, bad("v_d_aspect")
				}
				if im.Width == 0 && im.Height == 0 {
					im.Width, im.Height = wh[0], wh[1]
				}
			}
		case "width", "height", "steps", "count", "seed":
			f, ok := o.Value.(float64) // JSON numbers
			if !ok || f != float64(int64(f)) {
				return im, bad("v_d_whole")
			}
			n := int64(f)
			if n > 1<<31 || n < -1<<31 {
				return im, bad("v_d_smaller")
			}
			switch o.Name {
			case "width":
				im.Width = int(n)
			case "height":
				im.Height = int(n)
			case "steps":
				im.Steps = int(n)
			case "count":
				im.Count = int(n)
			case "seed":
				im.Seed = &n
			}
		case "cfg", "strength":
			f, ok := o.Value.(float64)
			if !ok {
				return im, bad("v_d_number")
			}
			if o.Name == "cfg" {
				im.CFGScale = f
			} else {
				if f <= 0 || f > 1 {
					return im, bad("v_d_strength")
				}
				im.DenoisingStrength = f
			}
		default:
			return im, commands.Invalid(o.Name, "v_d_not_option")
		}
	}
	if strings.TrimSpace(im.Prompt) == "" {
		return im, commands.Invalid("prompt", "v_required")
	}
	if im.DenoisingStrength != 0 && im.InitImage == "" {
		return im, commands.Invalid("strength", "v_d_strength_needs_image")
	}
	return im, nil
}

func ptrF(v float64) *float64 { return &v }

// fieldChoices offers setting fields as choices ("negative_prompt" shown
// as "negative prompt").
func fieldChoices(fields []string) []*discordgo.ApplicationCommandOptionChoice {
	out := make([]*discordgo.ApplicationCommandOptionChoice, 0, len(fields))
	for _, f := range fields {
		out = append(out, &discordgo.ApplicationCommandOptionChoice{Name: strings.ReplaceAll(f, "_", " "), Value: f})
	}
	return out
}

// commandDefs are the slash commands, kept as data.
func commandDefs() []*discordgo.ApplicationCommand {
	one, four, maxSteps := ptrF(1), 4.0, 150.0
	manage := int64(discordgo.PermissionManageGuild)
	aspectChoices := []*discordgo.ApplicationCommandOptionChoice{}
	for _, a := range []string{"1:1", "3:4", "4:3", "9:16", "16:9"} {
		aspectChoices = append(aspectChoices, &discordgo.ApplicationCommandOptionChoice{Name: a, Value: a})
	}
	str := discordgo.ApplicationCommandOptionString
	integer := discordgo.ApplicationCommandOptionInteger
	userOpt := &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionUser, Name: "user", Description: "the member", Required: true}
	return []*discordgo.ApplicationCommand{
		{Name: "imagine", Description: "Make an image from a prompt", Options: []*discordgo.ApplicationCommandOption{
			{Type: str, Name: "prompt", Description: "what to draw", Required: true, MaxLength: 2000},
			{Type: str, Name: "negative", Description: "what to avoid"},
			{Type: str, Name: "aspect", Description: "aspect ratio", Choices: aspectChoices},
			{Type: integer, Name: "width", Description: "width in pixels (multiple of 8)", MinValue: ptrF(64), MaxValue: 2048},
			{Type: integer, Name: "height", Description: "height in pixels (multiple of 8)", MinValue: ptrF(64), MaxValue: 2048},
			{Type: integer, Name: "steps", Description: "sampling steps", MinValue: one, MaxValue: maxSteps},
			{Type: discordgo.ApplicationCommandOptionNumber, Name: "cfg", Description: "guidance scale", MinValue: one, MaxValue: 30},
			{Type: integer, Name: "seed", Description: "seed (-1: random)", MinValue: ptrF(-1)},
			{Type: str, Name: "sampler", Description: "sampler", Autocomplete: true},
			{Type: str, Name: "model", Description: "model", Autocomplete: true},
			{Type: integer, Name: "count", Description: "number of images", MinValue: one, MaxValue: four},
			{Type: discordgo.ApplicationCommandOptionAttachment, Name: "image", Description: "start from this image (PNG, JPEG or WebP)"},
			{Type: discordgo.ApplicationCommandOptionNumber, Name: "strength", Description: "how far to depart from the image (0–1, default 0.75)",
				MinValue: ptrF(0.01), MaxValue: 1},
			{Type: str, Name: "loras", Description: "LoRAs as name:weight, comma-separated (e.g. detail:0.8)", Autocomplete: true, MaxLength: 1000},
			{Type: str, Name: "scheduler", Description: "noise schedule", Autocomplete: true},
		}},
		{Name: "queue", Description: "Your jobs in line and running"},
		{Name: "cancel", Description: "Cancel your latest job (or one by id)", Options: []*discordgo.ApplicationCommandOption{
			{Type: str, Name: "job", Description: "job id"}}},
		{Name: "usage", Description: "Your images today and your quota"},
		{Name: "history", Description: "Your finished images, newest first"},
		{Name: "models", Description: "Models, samplers, schedulers and LoRAs the GPUs offer"},
		{Name: "settings", Description: "Your defaults for /imagine", Options: []*discordgo.ApplicationCommandOption{
			{Type: str, Name: "field", Description: "what to set", Choices: fieldChoices(commands.SettingFields)},
			{Type: str, Name: "value", Description: "the value (empty clears it)"}}},
		{Name: "easel-admin", Description: "Server settings for Easel", DefaultMemberPermissions: &manage,
			Options: []*discordgo.ApplicationCommandOption{
				{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "policy", Description: "show this server's policy"},
				{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "set", Description: "set a policy field", Options: []*discordgo.ApplicationCommandOption{
					{Type: str, Name: "field", Description: "field, e.g. max_steps", Required: true},
					{Type: str, Name: "value", Description: "value, e.g. 30 (or default)", Required: true}}},
				{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "reset", Description: "reset a member's usage today", Options: []*discordgo.ApplicationCommandOption{userOpt}},
				{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "block", Description: "block a member", Options: []*discordgo.ApplicationCommandOption{userOpt}},
				{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "unblock", Description: "unblock a member", Options: []*discordgo.ApplicationCommandOption{userOpt}},
				{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "usage", Description: "top members today"},
				{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "defaults", Description: "show or set the server's or this channel's defaults",
					Options: []*discordgo.ApplicationCommandOption{
						{Type: str, Name: "field", Description: "what to set", Choices: fieldChoices(commands.DefaultFields)},
						{Type: str, Name: "value", Description: "the value (empty clears it)"},
						{Type: str, Name: "scope", Description: "the whole server or this channel only", Choices: []*discordgo.ApplicationCommandOptionChoice{
							{Name: "server", Value: "server"}, {Name: "channel", Value: "channel"}}}}},
				{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "spoilers", Description: "send images as spoilers",
					Options: []*discordgo.ApplicationCommandOption{{Type: discordgo.ApplicationCommandOptionBoolean, Name: "on", Description: "on or off", Required: true}}},
			}},
	}
}
