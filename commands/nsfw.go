package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"go.uber.org/zap"
)

// NSFWError refuses an NSFW-tagged model or LoRA where NSFW is not allowed.
type NSFWError struct {
	Field string // "model" or "loras"
	Name  string
}

func (e *NSFWError) Error() string {
	return fmt.Sprintf("%s: %q is tagged NSFW and runs only in age-restricted channels", e.Field, e.Name)
}

// Unwrap makes the refusal a ValidationError too, so adapters without a
// message of their own (the HTTP API: 400) name the field.
func (e *NSFWError) Unwrap() error {
	return &ValidationError{Field: e.Field, Message: fmt.Sprintf("%q is tagged NSFW and is not allowed here", e.Name)}
}

// nsfwTagged returns the field and name of the first NSFW-tagged model or
// LoRA of im ("" when none).
func (l Limits) nsfwTagged(im *Imagine) (field, name string) {
	if im.Model != "" && matches(l.NSFWModels, im.Model, modelKey) {
		return "model", im.Model
	}
	for _, lo := range im.LoRAs {
		if matches(l.NSFWLoRAs, lo.Name, modelKey) {
			return "loras", lo.Name
		}
	}
	return "", ""
}

// checkNSFW refuses NSFW-tagged names unless the caller's place allows them.
func (s *Service) checkNSFW(ctx context.Context, c Caller, im *Imagine) error {
	field, name := s.limits.nsfwTagged(im)
	if field == "" {
		return nil
	}
	if c.NSFW != nil {
		ok, err := c.NSFW(ctx)
		if err != nil {
			return fmt.Errorf("nsfw: %w", err)
		}
		if ok {
			return nil
		}
	}
	return &NSFWError{Field: field, Name: name}
}

// ChatOptions are a server's (workspace's) chat settings kept by Easel.
type ChatOptions struct {
	// Spoilers sends finished images as spoilers (Discord).
	Spoilers bool `json:"spoilers,omitempty"`
	// NSFWChannels are the channels where NSFW-tagged models may run
	// (Slack, which has no age-restricted channels).
	NSFWChannels []string `json:"nsfw_channels,omitempty"`
}

func chatKey(tenant string) string { return "chat:" + tenant }

// ChatOptions returns the tenant's chat settings.
func (s *Service) ChatOptions(ctx context.Context, tenant string) (ChatOptions, error) {
	var o ChatOptions
	raw, ok, err := s.sched.LoadRecord(ctx, chatKey(tenant))
	if err != nil || !ok {
		return o, err
	}
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		return o, fmt.Errorf("chat options: %w", err)
	}
	return o, nil
}

func (s *Service) updateChat(ctx context.Context, c Caller, what string, f func(*ChatOptions)) (ChatOptions, error) {
	if err := admin(c); err != nil {
		return ChatOptions{}, err
	}
	o, err := s.ChatOptions(ctx, c.Tenant)
	if err != nil {
		return o, err
	}
	f(&o)
	b, _ := json.Marshal(o)
	if err := s.sched.SaveRecord(ctx, chatKey(c.Tenant), string(b)); err != nil {
		return o, fmt.Errorf("chat options: %w", err)
	}
	s.log.Info("chat options changed", zap.String("tenant", c.Tenant), zap.String("by", c.User), zap.String("what", what))
	return o, nil
}

// SetSpoilers turns spoiler images on or off for the tenant (admins only).
func (s *Service) SetSpoilers(ctx context.Context, c Caller, on bool) (ChatOptions, error) {
	return s.updateChat(ctx, c, "spoilers", func(o *ChatOptions) { o.Spoilers = on })
}

// SetNSFWChannel adds channel to the tenant's NSFW allow-list or removes
// it (admins only).
func (s *Service) SetNSFWChannel(ctx context.Context, c Caller, channel string, allowed bool) (ChatOptions, error) {
	if channel == "" {
		return ChatOptions{}, Invalid("channel", "v_required")
	}
	return s.updateChat(ctx, c, "nsfw_channels", func(o *ChatOptions) {
		o.NSFWChannels = slices.DeleteFunc(o.NSFWChannels, func(v string) bool { return v == channel })
		if allowed {
			o.NSFWChannels = append(o.NSFWChannels, channel)
		}
	})
}

// NSFWChannel reports whether the tenant's allow-list has channel.
func (s *Service) NSFWChannel(ctx context.Context, tenant, channel string) (bool, error) {
	o, err := s.ChatOptions(ctx, tenant)
	if err != nil {
		return false, err
	}
	return slices.Contains(o.NSFWChannels, channel), nil
}
