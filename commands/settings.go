package commands

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
)

// Settings are saved defaults, applied to fields a request leaves out. The
// same record serves a user's /settings and an admin's server and channel
// defaults (see Defaults); zero fields are unset.
type Settings struct {
	Width          int    `json:"width,omitempty"`
	Height         int    `json:"height,omitempty"`
	Steps          int    `json:"steps,omitempty"`
	NegativePrompt string `json:"negative_prompt,omitempty"`
	Model          string `json:"model,omitempty"`
	Sampler        string `json:"sampler,omitempty"`
	Count          int    `json:"count,omitempty"`
}

// SettingFields lists what /settings can set ("aspect" and "size" set
// width and height together).
var SettingFields = []string{"model", "sampler", "aspect", "size", "width", "height", "steps", "count", "negative_prompt"}

// DefaultFields lists what server and channel defaults can set.
var DefaultFields = []string{"model", "sampler", "steps", "aspect", "size", "width", "height", "negative_prompt"}

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
	if err := setField(&st, field, value, SettingFields); err != nil {
		return st, err
	}
	if err := s.checkSettings(ctx, c, st); err != nil {
		return st, err
	}
	raw, _ := json.Marshal(st)
	if err := s.sched.SetUserSettings(ctx, c.Tenant, c.User, raw); err != nil {
		return st, err
	}
	return st, nil
}

// checkSettings checks saved defaults as a request would use them: against
// the limits, the tenant's policy and the backends' catalog.
func (s *Service) checkSettings(ctx context.Context, c Caller, st Settings) error {
	probe := Imagine{Prompt: "probe"}
	applySettings(&probe, st)
	p, err := s.policies.Resolve(ctx, c.Tenant, c.User)
	if err != nil {
		return err
	}
	if err := s.limits.Validate(&probe, p); err != nil {
		return err
	}
	return s.checkCatalog(ctx, &probe)
}

// setField sets one field of st from text ("" clears it); allowed lists
// the fields this layer may set.
func setField(st *Settings, field, value string, allowed []string) error {
	field = strings.ToLower(strings.TrimSpace(field))
	value = strings.TrimSpace(value)
	if !contains(allowed, field) {
		return Invalid(field, "v_not_setting", strings.Join(allowed, ", "))
	}
	num := func() (int, error) {
		if value == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(value)
		if err != nil {
			return 0, Invalid(field, "v_whole_number", clipText(value, 40))
		}
		return n, nil
	}
	var err error
	switch field {
	case "width":
		st.Width, err = num()
	case "height":
		st.Height, err = num()
	case "steps":
		st.Steps, err = num()
	case "count":
		st.Count, err = num()
	case "negative_prompt":
		st.NegativePrompt = value
	case "model":
		st.Model = value
	case "sampler":
		st.Sampler = value
	case "aspect":
		if value == "" {
			st.Width, st.Height = 0, 0
			break
		}
		wh, ok := Aspects[value]
		if !ok {
			return Invalid("aspect", "v_one_of", "1:1, 3:4, 4:3, 9:16, 16:9", clipText(value, 20))
		}
		st.Width, st.Height = wh[0], wh[1]
	case "size":
		if value == "" {
			st.Width, st.Height = 0, 0
			break
		}
		w, h, ok := strings.Cut(strings.ToLower(value), "x")
		wn, err1 := strconv.Atoi(strings.TrimSpace(w))
		hn, err2 := strconv.Atoi(strings.TrimSpace(h))
		if !ok || err1 != nil || err2 != nil {
			return Invalid("size", "v_size_format", clipText(value, 20))
		}
		st.Width, st.Height = wn, hn
	}
	if err == nil && (st.Steps < 0 || st.Count < 0 || st.Width < 0 || st.Height < 0) {
		err = Invalid(field, "v_not_negative")
	}
	return err
}

// over returns base with every field set in top replacing it (width and
// height as a pair).
func (base Settings) over(top Settings) Settings {
	if top.Width != 0 || top.Height != 0 {
		base.Width, base.Height = top.Width, top.Height
	}
	if top.Steps != 0 {
		base.Steps = top.Steps
	}
	if top.NegativePrompt != "" {
		base.NegativePrompt = top.NegativePrompt
	}
	if top.Model != "" {
		base.Model = top.Model
	}
	if top.Sampler != "" {
		base.Sampler = top.Sampler
	}
	if top.Count != 0 {
		base.Count = top.Count
	}
	return base
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
	if im.Model == "" {
		im.Model = st.Model
	}
	if im.Sampler == "" {
		im.Sampler = st.Sampler
	}
	if im.Count == 0 {
		im.Count = st.Count
	}
}
