package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/easelbot/easel/storage"
)

// MaxPageSize is the most jobs one ActivePage lists.
const MaxPageSize = 100

// QueueEntry is one active job with its place in line.
type QueueEntry struct {
	Job *Job
	// Position is the estimated place in line (1 = next), 0 when the job
	// is not waiting.
	Position int
	// ETA estimates the wait before it starts (0 when not waiting or
	// nothing has finished yet).
	ETA time.Duration
}

// QueuePage is one page of a tenant's active jobs.
type QueuePage struct {
	Entries []QueueEntry
	// Next is the cursor of the next page; "" on the last one.
	Next string
}

// queuePageCall reads a page of a tenant's active jobs (lua/queuepage.lua).
type queuePageCall struct {
	Tenant, Cursor, User string
	Limit                int
}

func (queuePageCall) script() string { return scriptQueuePage }
func (c queuePageCall) keys(k storage.Keys) []string {
	return []string{k.TenantActive(c.Tenant)}
}
func (c queuePageCall) argv() []string { return []string{c.Cursor, itoa(c.Limit), c.User} }

// ActivePage lists up to limit (1..MaxPageSize) of tenant's queued,
// dispatched and running jobs with ids after cursor ("" from the start),
// oldest first, only user's when user is set, with positions and ETAs, in
// one round trip.
func (s *Scheduler) ActivePage(ctx context.Context, tenant, user, cursor string, limit int) (QueuePage, error) {
	switch {
	case limit < 1 || limit > MaxPageSize:
		return QueuePage{}, &InvalidError{"limit", fmt.Sprintf("must be between 1 and %d (got %d)", MaxPageSize, limit)}
	case cursor != "" && !namePattern.MatchString(cursor):
		return QueuePage{}, &InvalidError{"cursor", "must be a next_cursor from a previous page"}
	}
	res, err := s.exec(ctx, queuePageCall{Tenant: tenant, Cursor: cursor, User: user, Limit: limit}).ToArray()
	if err != nil {
		return QueuePage{}, fmt.Errorf("queue page: %w", err)
	}
	if len(res) < 2 || (len(res)-2)%3 != 0 {
		return QueuePage{}, fmt.Errorf("queue page: reply of %d items", len(res))
	}
	var page QueuePage
	page.Next, _ = res[0].ToString()
	g, _ := res[1].ToArray()
	num := func(i int) int {
		if i >= len(g) {
			return 0
		}
		v, _ := g[i].ToString()
		n, _ := strconv.Atoi(v)
		return n
	}
	avg, slots := num(0), max(num(1)+num(2), 1)
	for i := 2; i < len(res); i += 3 {
		pos, _ := res[i+1].AsInt64()
		m, err := res[i+2].AsStrMap()
		if err != nil {
			return QueuePage{}, fmt.Errorf("queue page: %w", err)
		}
		e := QueueEntry{Job: parseJob(m), Position: int(pos)}
		if pos > 0 {
			// As ETA: rounds of the worker slots ahead times the average run.
			e.ETA = time.Duration((int(pos)+slots-1)/slots*avg) * time.Millisecond
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}
