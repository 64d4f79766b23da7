package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/netguard"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

// Caller is who runs a command: a user of a tenant, maybe one of its admins
// (as the adapter established: Discord Manage Server, Slack workspace admin,
// an HTTP API key).
type Caller struct {
	Tenant string
	User   string
	Admin  bool
	// Channel is where the command came from (a Discord channel, a Slack
	// conversation); "" has no channel defaults and no NSFW allowance.
	Channel string
	// NSFW reports whether NSFW-tagged models and LoRAs may run where the
	// command came from (an age-restricted Discord channel, an allowed DM, a
	// Slack channel on the allow-list). It is asked only when a request
	// uses one; nil means no.
	NSFW func(context.Context) (bool, error)
}

var (
	// ErrNotFound is the answer for no such job for this caller's tenant.
	ErrNotFound = errors.New("no such job")
	// ErrForbidden says the caller may not do this (not the job's owner, not an admin).
	ErrForbidden = errors.New("only the job's owner or an admin may do that")
	// ErrFinished says the job already ended.
	ErrFinished = errors.New("the job already finished")
)

// Service runs commands for every adapter.
type Service struct {
	sched    *scheduler.Scheduler
	policies *scheduler.Policies
	limits   Limits
	log      *zap.Logger
	// cat caches the backends' catalog for submits.
	cat catalogCache
	// imageClient fetches init images under the private-address rules.
	imageClient *http.Client
}

// New returns the command service.
func New(sched *scheduler.Scheduler, policies *scheduler.Policies, limits Limits, log *zap.Logger) (*Service, error) {
	if err := limits.fill(); err != nil {
		return nil, err
	}
	imageClient := &http.Client{Transport: netguard.Transport(limits.AllowPrivateImageURLs), Timeout: limits.InitImageTimeout,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if r.URL.Scheme != "http" && r.URL.Scheme != "https" {
				return errors.New("redirected to a URL that is not http(s)")
			}
			return nil
		}}
	return &Service{sched: sched, policies: policies, limits: limits, log: log, imageClient: imageClient}, nil
}

// Imagine validates im against the caller's policy and the backends'
// catalog, fetches and checks its init image, and submits it. It returns
// the admitted job and the request as filled with defaults. A refused
// request enqueues nothing.
func (s *Service) Imagine(ctx context.Context, c Caller, origin json.RawMessage, im Imagine, idempotencyKey string) (scheduler.SubmitResult, Imagine, error) {
	p, err := s.policies.Resolve(ctx, c.Tenant, c.User)
	if err != nil {
		return scheduler.SubmitResult{}, im, err
	}
	st, err := s.layered(ctx, c)
	if err != nil {
		return scheduler.SubmitResult{}, im, err
	}
	hasInit := im.InitImageData != nil || strings.TrimSpace(im.InitImage) != "" || im.InitImageFrom != ""
	if hasInit {
		// The init image's size wins over saved defaults.
		st.Width, st.Height = 0, 0
	}
	applySettings(&im, st)
	// Cheap checks first, so a bad request fetches nothing.
	probe := im
	if err := s.limits.Validate(&probe, p); err != nil {
		return scheduler.SubmitResult{}, im, err
	}
	if err := s.checkCatalog(ctx, &im); err != nil {
		return scheduler.SubmitResult{}, im, err
	}
	if err := s.checkNSFW(ctx, c, &im); err != nil {
		return scheduler.SubmitResult{}, im, err
	}
	init, err := s.initImage(ctx, &im)
	if err != nil {
		return scheduler.SubmitResult{}, im, err
	}
	if init != nil {
		d := scheduler.DefaultPolicy().Over(p)
		im.Width, im.Height = s.limits.sizeFor(init, im.Width, im.Height, *d.MaxPixels)
	}
	if err := s.limits.Validate(&im, p); err != nil {
		return scheduler.SubmitResult{}, im, err
	}
	req := sdclient.Request{Prompt: im.Prompt, NegativePrompt: im.NegativePrompt, Width: im.Width, Height: im.Height,
		Steps: im.Steps, CFGScale: im.CFGScale, Seed: *im.Seed, Sampler: im.Sampler, Model: im.Model, Count: im.Count,
		SubseedStrength: im.VariationStrength, Scheduler: im.Scheduler, LoRAs: im.LoRAs, DistilledCFGScale: im.DistilledCFGScale}
	if im.VariationStrength > 0 {
		req.VariationOf = im.VariationOf
	}
	var initData []byte
	if init != nil {
		// The image goes to the blob store, not into the payload Redis keeps.
		req.InitImageBytes, req.DenoisingStrength = len(init.Data), im.DenoisingStrength
		initData = init.Data
	}
	body, err := json.Marshal(req)
	if err != nil {
		return scheduler.SubmitResult{}, im, err
	}
	res, err := s.sched.Submit(ctx, scheduler.SubmitRequest{
		Tenant: c.Tenant, User: c.User, Payload: body, Origin: origin, Cost: s.limits.Cost(&im), Images: im.Count,
		IdempotencyKey: idempotencyKey, Admission: p.Admission(), Model: im.Model, InitImage: initData,
	})
	return res, im, err
}

// checkCatalog checks im's names against the catalog of known backends
// (healthy or marked down but not expired), reading it again once when a
// name is unknown and the cached copy is not fresh.
func (s *Service) checkCatalog(ctx context.Context, im *Imagine) error {
	cats, err := s.cachedCatalog(ctx, catalogTTL)
	if err != nil {
		return err
	}
	err = cats.known.checkCatalog(im)
	if err == nil {
		return nil
	}
	s.cat.mu.Lock()
	stale := time.Since(s.cat.at) > catalogRefetch
	s.cat.mu.Unlock()
	if !stale {
		return err
	}
	if cats, err = s.refreshCatalog(ctx); err != nil {
		return err
	}
	return cats.known.checkCatalog(im)
}

// InitImageTimeout is how long fetching an init image URL may take
// (Limits.InitImageTimeout, with its default filled in).
func (s *Service) InitImageTimeout() time.Duration { return s.limits.InitImageTimeout }

// Job returns a job of the caller's tenant.
func (s *Service) Job(ctx context.Context, c Caller, id string) (*scheduler.Job, error) {
	j, err := s.sched.Get(ctx, id)
	if errors.Is(err, scheduler.ErrNotFound) || (err == nil && j.Tenant != c.Tenant) {
		return nil, ErrNotFound
	}
	return j, err
}

// Cancel cancels a job of the caller (or any job of the tenant for an admin).
func (s *Service) Cancel(ctx context.Context, c Caller, id string) (*scheduler.Job, error) {
	j, err := s.Job(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if j.User != c.User && !c.Admin {
		return nil, ErrForbidden
	}
	if _, err := s.sched.Cancel(ctx, id, c.User); err != nil {
		if errors.Is(err, scheduler.ErrFinished) {
			return j, ErrFinished
		}
		return nil, err
	}
	return s.sched.Get(ctx, id)
}

// QueueEntry is one active job with its estimated place in line and wait.
type QueueEntry struct {
	Job      *scheduler.Job
	Position int
	ETA      time.Duration
}

// Queue lists the caller's active jobs (the whole tenant's for an admin).
func (s *Service) Queue(ctx context.Context, c Caller) ([]QueueEntry, error) {
	jobs, err := s.sched.Active(ctx, c.Tenant)
	if err != nil {
		return nil, err
	}
	out := make([]QueueEntry, 0, len(jobs))
	for _, j := range jobs {
		if j.User != c.User && !c.Admin {
			continue
		}
		pos := 0
		var eta time.Duration
		if j.Status == scheduler.StatusQueued {
			if pos, err = s.sched.Position(ctx, j.ID); err != nil {
				return nil, err
			}
			if eta, err = s.sched.ETA(ctx, pos); err != nil {
				return nil, err
			}
		}
		out = append(out, QueueEntry{Job: j, Position: pos, ETA: eta})
	}
	return out, nil
}

// Usage is a caller's images today against their quotas.
type Usage struct {
	UserImages   int `json:"user_images"`
	UserLimit    int `json:"user_limit"` // 0: no limit
	TenantImages int `json:"tenant_images"`
	TenantLimit  int `json:"tenant_limit"`
	// ResetsIn is the time until the UTC day ends and quotas reset.
	ResetsIn time.Duration `json:"-"`
	ResetsAt time.Time     `json:"resets_at"`
}

// Usage reports the caller's usage today.
func (s *Service) Usage(ctx context.Context, c Caller) (Usage, error) {
	p, err := s.policies.Resolve(ctx, c.Tenant, c.User)
	if err != nil {
		return Usage{}, err
	}
	ti, ui, err := s.policies.UsageToday(ctx, c.Tenant, c.User)
	if err != nil {
		return Usage{}, err
	}
	d := scheduler.DefaultPolicy().Over(p)
	now := s.sched.Config().Now().UTC()
	reset := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
	return Usage{UserImages: ui, UserLimit: *d.UserDailyImages, TenantImages: ti, TenantLimit: *d.TenantDailyImages,
		ResetsIn: reset.Sub(now), ResetsAt: reset}, nil
}

func admin(c Caller) error {
	if !c.Admin {
		return fmt.Errorf("%w (admin command)", ErrForbidden)
	}
	return nil
}

// PolicyView is a tenant's policy as it applies, and the admins' own layer.
type PolicyView struct {
	Effective scheduler.Policy `json:"effective"`
	Overrides scheduler.Policy `json:"overrides"`
	Settable  []string         `json:"settable"`
}

// Policy shows the tenant's policy (admins only).
func (s *Service) Policy(ctx context.Context, c Caller) (PolicyView, error) {
	if err := admin(c); err != nil {
		return PolicyView{}, err
	}
	eff, err := s.policies.Resolve(ctx, c.Tenant, "")
	if err != nil {
		return PolicyView{}, err
	}
	layer, err := s.policies.Layer(ctx, c.Tenant, "")
	if err != nil {
		return PolicyView{}, err
	}
	return PolicyView{Effective: scheduler.DefaultPolicy().Over(eff), Overrides: layer, Settable: scheduler.AdminFields()}, nil
}

// SetPolicy sets one field of the tenant's policy, or of one user's when
// user is set (admins only).
func (s *Service) SetPolicy(ctx context.Context, c Caller, user, field, value string) (scheduler.Policy, error) {
	if err := admin(c); err != nil {
		return scheduler.Policy{}, err
	}
	p, err := s.policies.Set(ctx, c.Tenant, user, field, value)
	if err == nil {
		s.log.Info("policy changed", zap.String("tenant", c.Tenant), zap.String("by", c.User),
			zap.String("user", user), zap.String("field", field))
	}
	return p, err
}

// Block blocks or unblocks a user of the tenant (admins only).
func (s *Service) Block(ctx context.Context, c Caller, user string, blocked bool) error {
	_, err := s.SetPolicy(ctx, c, user, "blocked", fmt.Sprint(blocked))
	return err
}

// ResetUsage clears a user's usage today (admins only).
func (s *Service) ResetUsage(ctx context.Context, c Caller, user string) error {
	if err := admin(c); err != nil {
		return err
	}
	return s.policies.ResetUsage(ctx, c.Tenant, user)
}

// TopUsers reports the tenant's busiest users today (admins only).
func (s *Service) TopUsers(ctx context.Context, c Caller, n int) ([]scheduler.Usage, error) {
	if err := admin(c); err != nil {
		return nil, err
	}
	return s.policies.TopUsers(ctx, c.Tenant, n)
}
