package commands

import (
	"context"
	"encoding/json"
	"fmt"

	"go.uber.org/zap"
)

// Server and channel defaults: admins set model, sampler, steps, size and
// negative prompt for the whole server (workspace) or one channel. A
// request's empty fields take, in order, the user's /settings, the
// channel's defaults, the server's defaults and the built-in Limits
// defaults.

func defaultsKey(tenant, channel string) string {
	return "defaults:" + tenant + ":" + channel
}

// Defaults returns the admins' defaults of the caller's server (channel
// "") or of one channel.
func (s *Service) Defaults(ctx context.Context, tenant, channel string) (Settings, error) {
	var st Settings
	raw, ok, err := s.sched.LoadRecord(ctx, defaultsKey(tenant, channel))
	if err != nil || !ok {
		return st, err
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return st, fmt.Errorf("defaults: %w", err)
	}
	return st, nil
}

// SetDefault sets one field of the server's defaults (channel "") or of a
// channel's ("" clears the field); admins only. The layered result is
// checked like a request.
func (s *Service) SetDefault(ctx context.Context, c Caller, channel, field, value string) (Settings, error) {
	if err := admin(c); err != nil {
		return Settings{}, err
	}
	st, err := s.Defaults(ctx, c.Tenant, channel)
	if err != nil {
		return st, err
	}
	if err := setField(&st, field, value, DefaultFields); err != nil {
		return st, err
	}
	probe := st
	if channel != "" {
		server, err := s.Defaults(ctx, c.Tenant, "")
		if err != nil {
			return st, err
		}
		probe = server.over(st)
	}
	if err := s.checkSettings(ctx, Caller{Tenant: c.Tenant}, probe); err != nil {
		return st, err
	}
	raw := ""
	if st != (Settings{}) {
		b, _ := json.Marshal(st)
		raw = string(b)
	}
	if err := s.sched.SaveRecord(ctx, defaultsKey(c.Tenant, channel), raw); err != nil {
		return st, fmt.Errorf("defaults: %w", err)
	}
	s.log.Info("defaults changed", zap.String("tenant", c.Tenant), zap.String("channel", channel),
		zap.String("by", c.User), zap.String("field", field))
	return st, nil
}

// EffectiveDefaults is what fills a request's empty fields for the caller:
// server < channel < user settings.
func (s *Service) EffectiveDefaults(ctx context.Context, c Caller) (Settings, error) {
	return s.layered(ctx, c)
}

func (s *Service) layered(ctx context.Context, c Caller) (Settings, error) {
	server, err := s.Defaults(ctx, c.Tenant, "")
	if err != nil {
		return Settings{}, err
	}
	st := server
	if c.Channel != "" {
		ch, err := s.Defaults(ctx, c.Tenant, c.Channel)
		if err != nil {
			return Settings{}, err
		}
		st = st.over(ch)
	}
	user, err := s.Settings(ctx, c)
	if err != nil {
		return Settings{}, err
	}
	return st.over(user), nil
}
