package commands

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
)

// Settings are a user's saved defaults, applied to fields a request leaves out.
type Settings struct {
	Width          int    `json:"width,omitempty"`
	Height         int    `json:"height,omitempty"`
	Steps          int    `json:"steps,omitempty"`
	NegativePrompt string `json:"negative_prompt,omitempty"`
}

// SettingFields lists what /settings can set.
var SettingFields = []string{"width", "height", "steps", "negative_prompt"}

// Settings returns the caller's saved defaults.
func (s *Service) Settings(ctx context.Context, c Caller) (Settings, error) {
	var st Settings
	raw, err := s.sched.UserSettings(ctx, c.Tenant, c.User)
	if err != nil || raw == nil {
		return st, err
	}
	return st, json.Unmarshal(raw, &st)
}

// SetSetting saves one default ("" clears it); values are checked against
// the limits like a request's.
func (s *Service) SetSetting(ctx context.Context, c Caller, field, value string) (Settings, error) {
	st, err := s.Settings(ctx, c)
	if err != nil {
		return st, err
	}
	value = strings.TrimSpace(value)
	num := func() (int, error) {
		if value == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(value)
		if err != nil {
			return 0, invalid(field, "must be a whole number (got %q)", value)
		}
		return n, nil
	}
	switch field {
	case "width":
		st.Width, err = num()
	case "height":
		st.Height, err = num()
	case "steps":
		st.Steps, err = num()
	case "negative_prompt":
		st.NegativePrompt = value
	default:
		return st, invalid(field, "is not a setting; settings: %s", strings.Join(SettingFields, ", "))
	}
	if err != nil {
		return st, err
	}
	// Check the saved defaults as a request would use them.
	probe := Imagine{Prompt: "probe"}
	applySettings(&probe, st)
	p, err := s.policies.Resolve(ctx, c.Tenant, c.User)
	if err != nil {
		return st, err
	}
	if err := s.limits.Validate(&probe, p); err != nil {
		return st, err
	}
	raw, _ := json.Marshal(st)
	if err := s.sched.SetUserSettings(ctx, c.Tenant, c.User, raw); err != nil {
		return st, err
	}
	return st, nil
}

func applySettings(im *Imagine, st Settings) {
	if im.Width == 0 && im.Height == 0 {
		im.Width, im.Height = st.Width, st.Height
	}
	if im.Steps == 0 {
		im.Steps = st.Steps
	}
	if im.NegativePrompt == "" {
		im.NegativePrompt = st.NegativePrompt
	}
}
