package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

// Built-in < server < channel < user settings < the request itself.
func TestDefaultsLayered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := b.ctx
	admin := commands.Caller{Tenant: "discord:1", User: "mod", Admin: true, Channel: "art"}
	user := commands.Caller{Tenant: "discord:1", User: "alice", Channel: "art"}
	elsewhere := commands.Caller{Tenant: "discord:1", User: "alice", Channel: "general"}

	// Only admins set defaults.
	_, err := b.svc.SetDefault(ctx, user, "", "steps", "30")
	require.ErrorIs(t, err, commands.ErrForbidden)

	for _, f := range [][2]string{{"steps", "30"}, {"model", "srv-model"}, {"sampler", "Euler a"}, {"size", "768x512"}, {"negative_prompt", "blurry"}} {
		_, err := b.svc.SetDefault(ctx, admin, "", f[0], f[1])
		require.NoError(t, err, f[0])
	}
	_, err = b.svc.SetDefault(ctx, admin, "art", "steps", "25")
	require.NoError(t, err)
	_, err = b.svc.SetDefault(ctx, admin, "art", "aspect", "9:16")
	require.NoError(t, err)
	_, err = b.svc.SetSetting(ctx, user, "model", "my-model")
	require.NoError(t, err)
	_, err = b.svc.SetSetting(ctx, user, "count", "2")
	require.NoError(t, err)

	submit := func(c commands.Caller, im commands.Imagine) commands.Imagine {
		_, got, err := b.svc.Imagine(ctx, c, json.RawMessage(`{"kind":"test"}`), im, "")
		require.NoError(t, err)
		return got
	}
	got := submit(user, commands.Imagine{Prompt: "a fox"})
	require.Equal(t, 25, got.Steps, "channel over server")
	require.Equal(t, [2]int{576, 1024}, [2]int{got.Width, got.Height}, "channel aspect over server size")
	require.Equal(t, "my-model", got.Model, "user over server")
	require.Equal(t, "Euler a", got.Sampler, "server default")
	require.Equal(t, "blurry", got.NegativePrompt)
	require.Equal(t, 2, got.Count, "user count")
	require.Equal(t, 7.0, got.CFGScale, "built-in default")

	got = submit(elsewhere, commands.Imagine{Prompt: "a fox"})
	require.Equal(t, 30, got.Steps, "no channel layer in another channel")
	require.Equal(t, [2]int{768, 512}, [2]int{got.Width, got.Height})

	got = submit(user, commands.Imagine{Prompt: "a fox", Steps: 9, Model: "asked", Width: 512, Height: 512})
	require.Equal(t, 9, got.Steps, "the request wins")
	require.Equal(t, "asked", got.Model)
	require.Equal(t, 512, got.Width)

	// Clearing a channel field falls back to the server's.
	_, err = b.svc.SetDefault(ctx, admin, "art", "steps", "")
	require.NoError(t, err)
	require.Equal(t, 30, submit(user, commands.Imagine{Prompt: "a fox"}).Steps)
}

func TestDefaultsValidated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	admin := commands.Caller{Tenant: "discord:1", User: "mod", Admin: true}
	for _, tc := range []struct{ field, value, wantField string }{
		{"steps", "10000", "steps"},
		{"steps", "many", "steps"},
		{"size", "100x100", "width"},
		{"size", "big", "size"},
		{"aspect", "2:1", "aspect"},
		{"count", "2", "count"}, // a user setting, not a default
		{"cfg", "7", "cfg"},
	} {
		_, err := b.svc.SetDefault(b.ctx, admin, "", tc.field, tc.value)
		var ve *commands.ValidationError
		require.True(t, errors.As(err, &ve), "%s=%s: %v", tc.field, tc.value, err)
		require.Equal(t, tc.wantField, ve.Field, "%s=%s", tc.field, tc.value)
	}
	st, err := b.svc.Defaults(b.ctx, admin.Tenant, "")
	require.NoError(t, err)
	require.Equal(t, commands.Settings{}, st, "nothing half-written")
	_, err = b.svc.SetSetting(b.ctx, commands.Caller{Tenant: "discord:1", User: "u"}, "count", "99")
	require.Error(t, err)
}

func TestNSFWGate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	svc, err := commands.New(b.sched, mustPolicies(t, b), commands.Limits{NSFWModels: []string{"spicy.safetensors"}, NSFWLoRAs: []string{"lewd"}}, nopLog)
	require.NoError(t, err)
	allow := func(ok bool) func(context.Context) (bool, error) {
		return func(context.Context) (bool, error) { return ok, nil }
	}
	for _, tc := range []struct {
		name    string
		im      commands.Imagine
		nsfw    func(context.Context) (bool, error)
		refused string
	}{
		{"tagged model, loose spelling, not allowed", commands.Imagine{Prompt: "x", Model: "Spicy [abcdef12]"}, allow(false), "model"},
		{"tagged model, no answer", commands.Imagine{Prompt: "x", Model: "spicy"}, nil, "model"},
		{"tagged lora", commands.Imagine{Prompt: "x", LoRAs: []sdclient.LoRA{{Name: "lewd", Weight: 1}}}, allow(false), "loras"},
		{"tagged model, allowed", commands.Imagine{Prompt: "x", Model: "spicy"}, allow(true), ""},
		{"untagged", commands.Imagine{Prompt: "x", Model: "tame"}, allow(false), ""},
	} {
		c := commands.Caller{Tenant: "discord:9", User: "u", NSFW: tc.nsfw}
		_, _, err := svc.Imagine(b.ctx, c, json.RawMessage(`{}`), tc.im, "")
		if tc.refused == "" {
			require.NoError(t, err, tc.name)
			continue
		}
		var ne *commands.NSFWError
		require.True(t, errors.As(err, &ne), "%s: %v", tc.name, err)
		require.Equal(t, tc.refused, ne.Field, tc.name)
	}
	active, err := b.sched.Active(b.ctx, "discord:9")
	require.NoError(t, err)
	require.Len(t, active, 2, "refused requests enqueue nothing")

	// A server default naming a tagged model is gated too.
	admin := commands.Caller{Tenant: "discord:9", User: "mod", Admin: true}
	_, err = svc.SetDefault(b.ctx, admin, "", "model", "spicy")
	require.NoError(t, err)
	_, _, err = svc.Imagine(b.ctx, commands.Caller{Tenant: "discord:9", User: "u"}, json.RawMessage(`{}`), commands.Imagine{Prompt: "x"}, "")
	var ne *commands.NSFWError
	require.True(t, errors.As(err, &ne), "%v", err)
}

func TestNSFWChannelAllowList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	admin := commands.Caller{Tenant: "slack:T1", User: "boss", Admin: true}
	_, err := b.svc.SetNSFWChannel(b.ctx, commands.Caller{Tenant: "slack:T1", User: "u"}, "C1", true)
	require.ErrorIs(t, err, commands.ErrForbidden)
	_, err = b.svc.SetNSFWChannel(b.ctx, admin, "C1", true)
	require.NoError(t, err)
	_, err = b.svc.SetNSFWChannel(b.ctx, admin, "C1", true)
	require.NoError(t, err)
	o, err := b.svc.ChatOptions(b.ctx, "slack:T1")
	require.NoError(t, err)
	require.Equal(t, []string{"C1"}, o.NSFWChannels, "added once")
	ok, err := b.svc.NSFWChannel(b.ctx, "slack:T1", "C1")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.svc.NSFWChannel(b.ctx, "slack:T2", "C1")
	require.NoError(t, err)
	require.False(t, ok, "per tenant")
	_, err = b.svc.SetNSFWChannel(b.ctx, admin, "C1", false)
	require.NoError(t, err)
	ok, err = b.svc.NSFWChannel(b.ctx, "slack:T1", "C1")
	require.NoError(t, err)
	require.False(t, ok)
}

var nopLog = zap.NewNop()

func mustPolicies(t *testing.T, b *bundle) *scheduler.Policies {
	t.Helper()
	pol, err := scheduler.NewPolicies(b.sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	return pol
}
