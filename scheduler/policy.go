package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Policy is one layer of a tenant's rules. Nil fields inherit from the layer
// below: built-in defaults < the owner's config < the tenant admins'
// overrides < per-user overrides. Fields are documented with their unit; zero
// switches a limit off.
type Policy struct {
	// Weight is the tenant's share of the GPUs relative to other tenants
	// (a "supporter" tier might be 3). Owner-only. Default 1.
	Weight *float64 `yaml:"weight,omitempty" json:"weight,omitempty"`
	// UserWeight is a user's share inside the tenant (per-user layer). Default 1.
	UserWeight *float64 `yaml:"user_weight,omitempty" json:"user_weight,omitempty"`
	// MaxRunning caps the tenant's jobs running at once (0: no cap). Default 0.
	MaxRunning *int `yaml:"max_running,omitempty" json:"max_running,omitempty"`
	// UserRate limits each user's submits (jobs/minute, burst). Default off.
	UserRate *Rate `yaml:"user_rate,omitempty" json:"user_rate,omitempty"`
	// TenantRate limits the tenant's submits as a whole. Default off.
	TenantRate *Rate `yaml:"tenant_rate,omitempty" json:"tenant_rate,omitempty"`
	// UserDailyImages caps images per user per UTC day (0: none). Default 0.
	UserDailyImages *int `yaml:"user_daily_images,omitempty" json:"user_daily_images,omitempty"`
	// TenantDailyImages caps images per tenant per UTC day (0: none). Default 0.
	TenantDailyImages *int `yaml:"tenant_daily_images,omitempty" json:"tenant_daily_images,omitempty"`
	// MaxPendingPerUser caps a user's jobs waiting in line (0: none). Default 10.
	MaxPendingPerUser *int `yaml:"max_pending_per_user,omitempty" json:"max_pending_per_user,omitempty"`
	// Overflow is what happens to jobs over a daily quota: "reject" refuses
	// them with the reset time, "relax" runs them behind every normal job.
	// Default reject.
	Overflow *string `yaml:"overflow,omitempty" json:"overflow,omitempty"`
	// MaxSteps caps sampling steps per job. Default 150.
	MaxSteps *int `yaml:"max_steps,omitempty" json:"max_steps,omitempty"`
	// MaxPixels caps width × height per image. Default 2048×2048.
	MaxPixels *int `yaml:"max_pixels,omitempty" json:"max_pixels,omitempty"`
	// MaxImages caps images per job. Default 4.
	MaxImages *int `yaml:"max_images,omitempty" json:"max_images,omitempty"`
	// AllowedModels lists the models users may pick (empty: any).
	AllowedModels []string `yaml:"allowed_models,omitempty" json:"allowed_models,omitempty"`
	// AllowedSamplers lists the samplers users may pick (empty: any).
	AllowedSamplers []string `yaml:"allowed_samplers,omitempty" json:"allowed_samplers,omitempty"`
	// DenyWords refuses prompts containing any of these words
	// (case-insensitive), or matching "/regex/" entries.
	DenyWords []string `yaml:"deny_words,omitempty" json:"deny_words,omitempty"`
	// Blocked refuses every job (per-user layer: a blocked member; tenant
	// layer: a suspended server).
	Blocked *bool `yaml:"blocked,omitempty" json:"blocked,omitempty"`
}

// Ptr returns a pointer to v, for building policies.
func Ptr[T any](v T) *T { return &v }

// DefaultPolicy is the built-in bottom layer.
func DefaultPolicy() Policy {
	return Policy{
		Weight: Ptr(1.0), UserWeight: Ptr(1.0), MaxRunning: Ptr(0),
		UserRate: &Rate{}, TenantRate: &Rate{},
		UserDailyImages: Ptr(0), TenantDailyImages: Ptr(0), MaxPendingPerUser: Ptr(10),
		Overflow: Ptr("reject"), MaxSteps: Ptr(150), MaxPixels: Ptr(2048 * 2048), MaxImages: Ptr(4),
		Blocked: Ptr(false),
	}
}

// Over returns p with the set fields of top laid over it.
func (p Policy) Over(top Policy) Policy {
	out := p
	ov, tv := reflect.ValueOf(&out).Elem(), reflect.ValueOf(top)
	for i := 0; i < tv.NumField(); i++ {
		if f := tv.Field(i); !f.IsNil() {
			ov.Field(i).Set(f)
		}
	}
	return out
}

// Admission turns a resolved policy into the limits a submit enforces.
func (p Policy) Admission() *Admission {
	d := DefaultPolicy().Over(p)
	return &Admission{
		TenantWeight: *d.Weight, UserWeight: *d.UserWeight, MaxRunning: *d.MaxRunning,
		UserRate: *d.UserRate, TenantRate: *d.TenantRate,
		UserDailyImages: *d.UserDailyImages, TenantDailyImages: *d.TenantDailyImages,
		MaxPendingPerUser: *d.MaxPendingPerUser, Relax: *d.Overflow == "relax", Blocked: *d.Blocked,
	}
}

// PolicyConfig is the owner's layer: defaults for every tenant, per-tenant
// settings (tiers), and ceilings tenant admins cannot exceed.
type PolicyConfig struct {
	// Defaults apply to every tenant. Default: the built-in policy.
	Defaults Policy `yaml:"defaults"`
	// Tenants holds the owner's per-tenant settings, keyed by tenant
	// ("discord:<guild>", "slack:<team>", "api:<name>"), e.g. a weight of 3
	// for a supporter tier.
	Tenants map[string]Policy `yaml:"tenants"`
	// Ceilings caps what tenant admins may set: numeric fields are maxima
	// (a tenant admin may lower a limit freely but raise it only this far).
	// Weight and UserWeight are owner-only regardless. Default: the
	// effective owner value of each field is its ceiling.
	Ceilings Policy `yaml:"ceilings"`
}

// Field names a tenant admin may set, as in the JSON/YAML of Policy.
var adminFields = []string{"max_running", "user_rate", "tenant_rate", "user_daily_images",
	"tenant_daily_images", "max_pending_per_user", "overflow", "max_steps", "max_pixels",
	"max_images", "allowed_models", "allowed_samplers", "deny_words"}

// AdminFields lists the policy fields tenant admins may set.
func AdminFields() []string { return append([]string(nil), adminFields...) }

// Policies resolves and stores layered policies. Admin and user layers live
// in Redis; resolved policies are cached in process for CacheTTL, so a change
// reaches every instance within that time.
type Policies struct {
	s     *Scheduler
	owner PolicyConfig
	ttl   time.Duration

	mu    sync.Mutex
	cache map[string]cachedPolicy
}

type cachedPolicy struct {
	p   Policy
	exp time.Time
}

// PolicyCacheTTL is how long a resolved policy is reused.
const PolicyCacheTTL = 500 * time.Millisecond

// NewPolicies returns the policy store for owner's configuration.
func NewPolicies(s *Scheduler, owner PolicyConfig) (*Policies, error) {
	if err := validateOverflow(owner.Defaults, "policy.defaults"); err != nil {
		return nil, err
	}
	for t, p := range owner.Tenants {
		if err := validateOverflow(p, "policy.tenants."+t); err != nil {
			return nil, err
		}
		if !namePattern.MatchString(t) {
			return nil, &InvalidError{"policy.tenants." + t, "is not a valid tenant name"}
		}
	}
	return &Policies{s: s, owner: owner, ttl: PolicyCacheTTL, cache: map[string]cachedPolicy{}}, nil
}

func validateOverflow(p Policy, field string) error {
	if p.Overflow != nil && *p.Overflow != "reject" && *p.Overflow != "relax" {
		return &InvalidError{field + ".overflow", fmt.Sprintf("must be reject or relax (got %q)", *p.Overflow)}
	}
	for _, w := range p.DenyWords {
		if _, err := compileDeny(w); err != nil {
			return &InvalidError{field + ".deny_words", err.Error()}
		}
	}
	return nil
}

func (ps *Policies) ownerLayer(tenant string) Policy {
	return DefaultPolicy().Over(ps.owner.Defaults).Over(ps.owner.Tenants[tenant])
}

func (ps *Policies) key(tenant, user string) string { return ps.s.keys.Policy(tenant, user) }

// Resolve returns the effective policy of user in tenant (user may be "" for
// the tenant's own policy).
func (ps *Policies) Resolve(ctx context.Context, tenant, user string) (Policy, error) {
	ck := tenant + "\x00" + user
	now := time.Now()
	ps.mu.Lock()
	if c, ok := ps.cache[ck]; ok && now.Before(c.exp) {
		ps.mu.Unlock()
		return c.p, nil
	}
	ps.mu.Unlock()
	keys := []string{ps.key(tenant, "")}
	if user != "" {
		keys = append(keys, ps.key(tenant, user))
	}
	raw, err := ps.s.client.Do(ctx, ps.s.client.B().Mget().Key(keys...).Build()).AsStrSlice()
	if err != nil && !rueidis.IsRedisNil(err) {
		return Policy{}, fmt.Errorf("resolve policy: %w", err)
	}
	p := ps.ownerLayer(tenant)
	for _, r := range raw {
		if r == "" {
			continue
		}
		var layer Policy
		if err := json.Unmarshal([]byte(r), &layer); err != nil {
			return Policy{}, fmt.Errorf("resolve policy: stored layer: %w", err)
		}
		p = p.Over(layer)
	}
	ps.mu.Lock()
	ps.cache[ck] = cachedPolicy{p: p, exp: now.Add(ps.ttl)}
	if len(ps.cache) > 100000 {
		clear(ps.cache)
	}
	ps.mu.Unlock()
	return p, nil
}

// Layer returns the stored admin (user "") or user layer as set.
func (ps *Policies) Layer(ctx context.Context, tenant, user string) (Policy, error) {
	var p Policy
	raw, err := ps.s.client.Do(ctx, ps.s.client.B().Get().Key(ps.key(tenant, user)).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("policy layer: %w", err)
	}
	return p, json.Unmarshal([]byte(raw), &p)
}

// Set sets one field of the tenant admins' layer (user "") or of a user's
// layer from its text form ("30", "6/10" for a rate of 6 a minute with burst
// 10, "a,b,c" for lists, "" or "default" to inherit again). It refuses fields
// tenant admins may not set and values over the owner's ceiling.
func (ps *Policies) Set(ctx context.Context, tenant, user, field, value string) (Policy, error) {
	if !namePattern.MatchString(tenant) || (user != "" && !namePattern.MatchString(user)) {
		return Policy{}, &InvalidError{"tenant", "invalid tenant or user name"}
	}
	allowed := adminFields
	if user != "" {
		allowed = []string{"user_rate", "user_daily_images", "max_pending_per_user", "blocked", "max_steps", "max_images", "max_pixels"}
	}
	if !contains(allowed, field) {
		return Policy{}, &InvalidError{field, fmt.Sprintf("is not a field you can set; settable: %s", strings.Join(allowed, ", "))}
	}
	layer, err := ps.Layer(ctx, tenant, user)
	if err != nil {
		return Policy{}, err
	}
	if err := setField(&layer, field, value); err != nil {
		return Policy{}, err
	}
	if err := ps.checkCeiling(tenant, layer); err != nil {
		return Policy{}, err
	}
	raw, _ := json.Marshal(layer)
	c := ps.s.client
	cmds := rueidis.Commands{c.B().Set().Key(ps.key(tenant, user)).Value(string(raw)).Build()}
	// Dispatch-time fields take effect on the tenant's bookkeeping at once.
	// The change is stamped with its time (pv), so a submit from a process
	// whose cached policy predates it cannot write the old cap back
	// (lua/submit.lua).
	if field == "max_running" && user == "" {
		eff := ps.ownerLayer(tenant).Over(layer)
		stamp, err := ps.s.policyStamp(ctx)
		if err != nil {
			return Policy{}, fmt.Errorf("set policy: %w", err)
		}
		cmds = append(cmds, c.B().Hset().Key(ps.s.kt(tenant).Tenant(tenant)).FieldValue().FieldValue("cap", strconv.Itoa(*eff.MaxRunning)).
			FieldValue("pv", strconv.FormatInt(stamp, 10)).Build())
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return Policy{}, fmt.Errorf("set policy: %w", err)
		}
	}
	ps.mu.Lock()
	clear(ps.cache)
	ps.mu.Unlock()
	return layer, nil
}

// checkCeiling refuses admin values above the owner's ceilings.
func (ps *Policies) checkCeiling(tenant string, layer Policy) error {
	ceil := ps.ownerLayer(tenant).Over(ps.owner.Ceilings)
	type intField struct {
		name      string
		val, ceil *int
	}
	for _, f := range []intField{
		{"max_steps", layer.MaxSteps, ceil.MaxSteps}, {"max_pixels", layer.MaxPixels, ceil.MaxPixels},
		{"max_images", layer.MaxImages, ceil.MaxImages}, {"max_pending_per_user", layer.MaxPendingPerUser, ceil.MaxPendingPerUser},
		{"user_daily_images", layer.UserDailyImages, ceil.UserDailyImages}, {"tenant_daily_images", layer.TenantDailyImages, ceil.TenantDailyImages},
		{"max_running", layer.MaxRunning, ceil.MaxRunning},
	} {
		if f.val == nil || f.ceil == nil || *f.ceil == 0 {
			continue
		}
		if *f.val == 0 || *f.val > *f.ceil {
			return &InvalidError{f.name, fmt.Sprintf("must be between 1 and %d on this bot (the owner's ceiling)", *f.ceil)}
		}
	}
	for _, f := range []struct {
		name      string
		val, ceil *Rate
	}{{"user_rate", layer.UserRate, ceil.UserRate}, {"tenant_rate", layer.TenantRate, ceil.TenantRate}} {
		if f.val == nil || f.ceil == nil || f.ceil.PerMinute == 0 {
			continue
		}
		if f.val.PerMinute == 0 || f.val.PerMinute > f.ceil.PerMinute || f.val.Burst > max(f.ceil.Burst, 1) {
			return &InvalidError{f.name, fmt.Sprintf("must be at most %g/min with burst %d on this bot (the owner's ceiling)", f.ceil.PerMinute, max(f.ceil.Burst, 1))}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// setField parses value into the named field of p.
func setField(p *Policy, field, value string) error {
	v := reflect.ValueOf(p).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if strings.Split(t.Field(i).Tag.Get("json"), ",")[0] != field {
			continue
		}
		f := v.Field(i)
		value = strings.TrimSpace(value)
		if value == "" || value == "default" {
			f.Set(reflect.Zero(f.Type()))
			return nil
		}
		switch f.Interface().(type) {
		case *int:
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 || n > 1<<30 {
				return &InvalidError{field, fmt.Sprintf("must be a whole number ≥ 0 (got %q)", value)}
			}
			f.Set(reflect.ValueOf(&n))
		case *float64:
			n, err := strconv.ParseFloat(value, 64)
			if err != nil || n <= 0 || n > 1000 {
				return &InvalidError{field, fmt.Sprintf("must be a number above 0 and at most 1000 (got %q)", value)}
			}
			f.Set(reflect.ValueOf(&n))
		case *bool:
			b, err := strconv.ParseBool(value)
			if err != nil {
				return &InvalidError{field, fmt.Sprintf("must be true or false (got %q)", value)}
			}
			f.Set(reflect.ValueOf(&b))
		case *string:
			if field == "overflow" && value != "reject" && value != "relax" {
				return &InvalidError{field, fmt.Sprintf("must be reject or relax (got %q)", value)}
			}
			f.Set(reflect.ValueOf(&value))
		case *Rate:
			r, err := ParseRate(value)
			if err != nil {
				return &InvalidError{field, err.Error()}
			}
			f.Set(reflect.ValueOf(&r))
		case []string:
			var list []string
			for _, s := range strings.Split(value, ",") {
				if s = strings.TrimSpace(s); s != "" {
					if field == "deny_words" {
						if _, err := compileDeny(s); err != nil {
							return &InvalidError{field, err.Error()}
						}
					}
					list = append(list, s)
				}
			}
			if len(list) > 200 {
				return &InvalidError{field, fmt.Sprintf("must have at most 200 entries (got %d)", len(list))}
			}
			f.Set(reflect.ValueOf(list))
		}
		return nil
	}
	return &InvalidError{field, "unknown policy field"}
}

// ParseRate parses "6/10" (6 jobs a minute, burst 10), "6" (burst 1) or "0"
// (no limit).
func ParseRate(s string) (Rate, error) {
	per, burst, hasBurst := strings.Cut(s, "/")
	r := Rate{Burst: 1}
	var err error
	r.PerMinute, err = strconv.ParseFloat(strings.TrimSpace(per), 64)
	if err != nil || r.PerMinute < 0 || r.PerMinute > 1e6 {
		return Rate{}, fmt.Errorf("must be jobs per minute, optionally /burst, like 6/10 (got %q)", s)
	}
	if hasBurst {
		r.Burst, err = strconv.Atoi(strings.TrimSpace(burst))
		if err != nil || r.Burst < 1 || r.Burst > 10000 {
			return Rate{}, fmt.Errorf("burst must be a whole number from 1 to 10000 (got %q)", burst)
		}
	}
	return r, nil
}

func compileDeny(w string) (*regexp.Regexp, error) {
	if len(w) > 2 && strings.HasPrefix(w, "/") && strings.HasSuffix(w, "/") {
		re, err := regexp.Compile("(?i)" + w[1:len(w)-1])
		if err != nil {
			return nil, fmt.Errorf("bad regular expression %s: %w", w, err)
		}
		return re, nil
	}
	return regexp.Compile(`(?i)\b` + regexp.QuoteMeta(w) + `\b`)
}

// DeniedWord returns the deny-list entry prompt matches, or "".
func (p Policy) DeniedWord(prompt string) string {
	for _, w := range p.DenyWords {
		if re, err := compileDeny(w); err == nil && re.MatchString(prompt) {
			return w
		}
	}
	return ""
}

// Usage is one user's images today.
type Usage struct {
	User   string `json:"user"`
	Images int    `json:"images"`
}

// UsageToday returns images admitted today for the tenant and for user
// (user "" skips it).
func (ps *Policies) UsageToday(ctx context.Context, tenant, user string) (tenantImages, userImages int, err error) {
	m, err := ps.quotaToday(ctx, tenant)
	if err != nil {
		return 0, 0, fmt.Errorf("usage: %w", err)
	}
	tenantImages, _ = strconv.Atoi(m["n"])
	if user != "" {
		userImages, _ = strconv.Atoi(m["u:"+user])
	}
	return tenantImages, userImages, nil
}

// quotaToday reads the tenant's quota hash, empty when it counts another
// day (the day it counts is the tenant hash's qd field).
func (ps *Policies) quotaToday(ctx context.Context, tenant string) (map[string]string, error) {
	// Today is Redis's day, as submit counts it (lua/submit.lua).
	c := ps.s.client
	res := c.DoMulti(ctx, ps.s.timeCmds(rueidis.Commands{
		c.B().Hget().Key(ps.s.kt(tenant).Tenant(tenant)).Field("qd").Build(),
		c.B().Hgetall().Key(ps.s.kt(tenant).Quota(tenant)).Build()})...)
	now, err := ps.s.pipelinedNow(res)
	if err != nil {
		return nil, err
	}
	day, err := res[0].ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, err
	}
	m, err := res[1].AsStrMap()
	if err != nil {
		return nil, err
	}
	if day != strconv.FormatInt(now.UnixMilli()/86400000, 10) {
		return map[string]string{}, nil
	}
	return m, nil
}

// TopUsers returns the tenant's users by images today, most first, at most n.
func (ps *Policies) TopUsers(ctx context.Context, tenant string, n int) ([]Usage, error) {
	m, err := ps.quotaToday(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("top users: %w", err)
	}
	var out []Usage
	for f, v := range m {
		if u, ok := strings.CutPrefix(f, "u:"); ok {
			if images, _ := strconv.Atoi(v); images > 0 {
				out = append(out, Usage{User: u, Images: images})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Images > out[j].Images || (out[i].Images == out[j].Images && out[i].User < out[j].User)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// ResetUsage clears a user's image count and rate-limit state for today.
func (ps *Policies) ResetUsage(ctx context.Context, tenant, user string) error {
	c := ps.s.client
	for _, r := range c.DoMulti(ctx,
		c.B().Hdel().Key(ps.s.kt(tenant).Quota(tenant)).Field("u:"+user).Build(),
		c.B().Del().Key(ps.s.kt(tenant).RateLimit(tenant, user)).Build()) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("reset usage: %w", err)
		}
	}
	return nil
}
