package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// servedWindow is the window of the dashboard's served shares.
const servedWindow = 15 * time.Minute

// adminRoutes mounts the dashboard page and its admin API.
func (s *Server) adminRoutes() {
	m := s.mux
	m.HandleFunc("GET /admin", s.adminPage)
	m.HandleFunc("GET /v1/admin/overview", s.auth(s.adminOnly(s.overview)))
	m.HandleFunc("GET /v1/admin/overview/events", s.authStream(s.adminOnly(s.overviewEvents)))
	m.HandleFunc("POST /v1/admin/dead/{entry}/retry", s.auth(s.adminOnly(s.retryDead)))
	m.HandleFunc("DELETE /v1/admin/dead/{entry}", s.auth(s.adminOnly(s.deleteDead)))
}

// adminPage serves the dashboard; its data needs an admin key (or
// loopback in open mode).
func (s *Server) adminPage(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, "web/admin.html")
}

func (s *Server) adminOnly(h func(http.ResponseWriter, *http.Request, commands.Caller)) func(http.ResponseWriter, *http.Request, commands.Caller) {
	return func(w http.ResponseWriter, r *http.Request, c commands.Caller) {
		if !c.Admin {
			writeError(w, http.StatusForbidden, "forbidden", "the dashboard needs an admin key (http.admin_keys)", "")
			return
		}
		h(w, r, c)
	}
}

// Overview is the dashboard's snapshot of one tenant.
type Overview struct {
	Tenant string `json:"tenant"`
	// Users counts each user's pending and running jobs.
	Users []UserLoad `json:"users"`
	// Jobs are the active jobs, oldest first (running ones with backend
	// and progress).
	Jobs []AdminJob `json:"jobs"`
	// Served is each tenant's share of the GPU time served over the last
	// 15 minutes (weight-normalised), 0..1; Weight is this tenant's.
	Served map[string]float64 `json:"served"`
	Weight float64            `json:"weight"`
	// Entitled is the share fair dispatch entitles each backlogged tenant
	// to now (its weight over the sum of the backlogged tenants'
	// weights), 0..1.
	Entitled map[string]float64 `json:"entitled"`
	// Backends and their models, from the healthy backends' catalog.
	Catalog  commands.Catalog    `json:"catalog"`
	Failures []JobView           `json:"failures"`
	Dead     []DeadView          `json:"dead"`
	Policy   commands.PolicyView `json:"policy"`
	Usage    []scheduler.Usage   `json:"usage"`
	// Refusals counts the tenant's refused submits by reason, over every
	// instance (kept in Redis).
	Refusals map[string]int64 `json:"refusals"`
	// Recent are the tenant's latest succeeded jobs (up to 8), whose
	// images the page shows as thumbnails.
	Recent []JobView `json:"recent"`
}

// UserLoad is one user's active jobs, and the share of the tenant's GPU
// time their user weight entitles them to while they have queued work
// (their weight over the sum of the backlogged users' weights; 0 when
// nothing of theirs waits).
type UserLoad struct {
	User     string  `json:"user"`
	Pending  int     `json:"pending"`
	Running  int     `json:"running"`
	Entitled float64 `json:"entitled"`
}

// AdminJob is an active job as the dashboard shows it.
type AdminJob struct {
	JobView
	Backend string `json:"backend,omitempty"`
}

// DeadView is a dead letter of the tenant.
type DeadView struct {
	Entry   string   `json:"entry"`
	Code    string   `json:"code"`
	Job     *JobView `json:"job"`
	Message string   `json:"message"`
}

func (s *Server) snapshot(ctx context.Context, c commands.Caller) (Overview, error) {
	o := Overview{Tenant: c.Tenant, Users: []UserLoad{}, Jobs: []AdminJob{}, Failures: []JobView{}, Dead: []DeadView{}, Recent: []JobView{}}
	page, err := s.sched.ActivePage(ctx, c.Tenant, "", "", scheduler.MaxPageSize)
	if err != nil {
		return o, err
	}
	loads := map[string]*UserLoad{}
	for _, e := range page.Entries {
		v := view(e.Job, e.Position)
		v.ETASec = e.ETA.Seconds()
		v.Request = nil
		o.Jobs = append(o.Jobs, AdminJob{JobView: v, Backend: e.Job.Backend})
		l := loads[e.Job.User]
		if l == nil {
			l = &UserLoad{User: e.Job.User}
			loads[e.Job.User] = l
		}
		if e.Job.Status == scheduler.StatusQueued {
			l.Pending++
		} else {
			l.Running++
		}
	}
	ent, err := s.sched.Entitled(ctx, c.Tenant)
	if err != nil {
		return o, err
	}
	o.Entitled = ent.Tenants
	for _, e := range page.Entries { // in order of first appearance
		if l := loads[e.Job.User]; l != nil {
			l.Entitled = ent.Users[l.User]
			o.Users = append(o.Users, *l)
			delete(loads, e.Job.User)
		}
	}
	if o.Served, err = s.sched.Served(ctx, servedWindow); err != nil {
		return o, err
	}
	if o.Policy, err = s.svc.Policy(ctx, c); err != nil {
		return o, err
	}
	o.Weight = 1
	if o.Policy.Effective.Weight != nil {
		o.Weight = *o.Policy.Effective.Weight
	}
	if o.Catalog, err = s.svc.Models(ctx); err != nil {
		return o, err
	}
	hist, err := s.sched.FinishedPage(ctx, c.Tenant, "", "", 50)
	if err != nil {
		return o, err
	}
	for _, j := range hist.Jobs {
		if j.Status == scheduler.StatusFailed && len(o.Failures) < 10 {
			v := view(j, 0)
			v.Request = nil
			o.Failures = append(o.Failures, v)
		}
		if j.Status == scheduler.StatusSucceeded && len(o.Recent) < 8 {
			v := view(j, 0)
			v.Request = requestView(j.Payload)
			o.Recent = append(o.Recent, v)
		}
	}
	dead, err := s.sched.DeadLetters(ctx, scheduler.MaxPageSize)
	if err != nil {
		return o, err
	}
	for _, d := range dead {
		if d.Job == nil || d.Job.Tenant != c.Tenant {
			continue
		}
		v := view(d.Job, 0)
		v.Request = nil
		o.Dead = append(o.Dead, DeadView{Entry: d.Entry, Code: d.Code, Job: &v, Message: d.Job.Error})
	}
	if o.Refusals, err = s.sched.Refusals(ctx, c.Tenant); err != nil {
		return o, err
	}
	if o.Usage, err = s.svc.TopUsers(ctx, c, 20); err != nil {
		return o, err
	}
	return o, nil
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	o, err := s.snapshot(r.Context(), c)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

// overviewEvents streams the overview as Server-Sent Events ("overview"):
// one at once, then a fresh one after events of the tenant's jobs (from
// the server's one event feed) and after each refusal of the tenant's
// counted by any instance (at most one snapshot per wake-up), and a
// keep-alive comment every 15 s.
func (s *Server) overviewEvents(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(r.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	defer context.AfterFunc(s.streams, cancel)()
	// Until the stream starts, Redis waits are bounded like any request's:
	// an outage answers 503, not a hang.
	first, firstDone := context.WithTimeout(ctx, s.cfg.RedisTimeout)
	defer firstDone()
	// Events come from the server's one event feed (no Redis read of this
	// stream's own), refusals from Pub/Sub; each wakes the loop through a
	// one-slot channel, so wakes while a snapshot is being sent fold into
	// one.
	watch := s.feed.watch(c.Tenant)
	defer s.feed.unwatch(watch)
	refused := make(chan struct{}, 1)
	subscribed := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel() // the stream ends with its source
		_ = s.sched.RefusalNotices(ctx, func() { close(subscribed) }, func(tenant string) {
			if tenant == c.Tenant {
				select {
				case refused <- struct{}{}:
				default:
				}
			}
		})
	}()
	// The first snapshot follows the feed's start (it knows where the
	// events stream ends) and the subscription: an event or a refusal
	// after it is in it or wakes another.
	for _, ready := range []<-chan struct{}{s.feed.ready, subscribed} {
		select {
		case <-ready:
		case <-first.Done():
			if r.Context().Err() == nil { // Redis failed or hung before the first snapshot
				w.Header().Set("Retry-After", strconv.Itoa(unavailableRetry))
				writeError(w, http.StatusServiceUnavailable, "unavailable", "the queue store (Redis) is not answering; retry shortly", "")
			}
			return
		}
	}
	// snapshot reads the overview within the Redis budget.
	snapshot := func() (Overview, error) {
		sctx, done := context.WithTimeout(ctx, s.cfg.RedisTimeout)
		defer done()
		return s.snapshot(sctx, c)
	}
	o, err := snapshot()
	if err != nil {
		s.writeErr(w, err)
		return
	}
	fresh := true // o is the snapshot to send first
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(format string, args ...any) error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return err
		}
		return rc.Flush()
	}
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	changed := true
	for {
		if changed {
			if !fresh {
				o, err = snapshot()
			}
			fresh = false
			if err != nil {
				if ctx.Err() == nil {
					data, _ := json.Marshal(map[string]string{"message": err.Error()})
					_ = send("event: error\ndata: %s\n\n", data)
				}
				return
			}
			data, _ := json.Marshal(o)
			if send("event: overview\ndata: %s\n\n", data) != nil {
				return
			}
		} else if send(": keep-alive\n\n") != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.feed.ctx.Done():
			return
		case <-watch.wake:
			changed = true
		case <-refused:
			changed = true
		case <-keepAlive.C:
			changed = false
		}
	}
}

// retryDead queues a dead letter's job again (a new job with the same
// request, for the same user) and removes the letter.
func (s *Server) retryDead(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	_, _ = io.Copy(io.Discard, r.Body)
	d, err := s.sched.DeadLetter(r.Context(), r.PathValue("entry"))
	if errors.Is(err, scheduler.ErrNotFound) || (err == nil && (d.Job == nil || d.Job.Tenant != c.Tenant)) {
		writeError(w, http.StatusNotFound, "not_found", "no such dead letter (or its job expired)", "")
		return
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var im commands.Imagine
	if err := json.Unmarshal(d.Job.Payload, &im); err != nil || im.Prompt == "" {
		writeError(w, http.StatusConflict, "not_retryable", "this job's request cannot be replayed (not an image request)", "")
		return
	}
	res, _, err := s.svc.Imagine(r.Context(), keyHolder(c, d.Job.User), []byte(`{"kind":"http"}`), im, "retry:"+d.Entry)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if _, err := s.sched.DeleteDeadLetter(r.Context(), d.Entry); err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": res.ID, "position": res.Position,
		"links": map[string]string{"self": "/v1/jobs/" + res.ID, "events": "/v1/jobs/" + res.ID + "/events"}})
}

func (s *Server) deleteDead(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	d, err := s.sched.DeadLetter(r.Context(), r.PathValue("entry"))
	if errors.Is(err, scheduler.ErrNotFound) || (err == nil && d.Job != nil && d.Job.Tenant != c.Tenant) {
		writeError(w, http.StatusNotFound, "not_found", "no such dead letter", "")
		return
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if _, err := s.sched.DeleteDeadLetter(r.Context(), d.Entry); err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "deleted"})
}
