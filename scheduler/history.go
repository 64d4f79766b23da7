package scheduler

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"
)

// HistoryCap is how many finished jobs the history keeps per tenant and
// per user (lua/lib.lua's finish trims to it on every 16th finish, so a
// history may hold somewhat more until the next trim).
const HistoryCap = 200

// HistoryPage is one page of finished jobs, newest first.
type HistoryPage struct {
	Jobs []*Job
	// Next is the cursor of the next page; "" on the last one.
	Next string
}

// historyKey is the sorted set of tenant's finished jobs by finish time
// (ms), or of one user's when user is set; finish in lua/lib.lua writes it.
func (s *Scheduler) historyKey(tenant, user string) string {
	k := s.kt(tenant).Tenant(tenant) + ":hist"
	if user != "" {
		k += ":u:" + user
	}
	return k
}

// FinishedPage lists up to limit (1..MaxPageSize) of tenant's finished
// jobs (only user's when user is set), newest first, after cursor (the
// previous page's Next, a job id; "" from the newest). Jobs whose records
// expired are left out. A cursor that fell off the capped history ends the
// listing.
func (s *Scheduler) FinishedPage(ctx context.Context, tenant, user, cursor string, limit int) (HistoryPage, error) {
	switch {
	case limit < 1 || limit > MaxPageSize:
		return HistoryPage{}, &InvalidError{"limit", fmt.Sprintf("must be between 1 and %d (got %d)", MaxPageSize, limit)}
	case cursor != "" && !namePattern.MatchString(cursor):
		return HistoryPage{}, &InvalidError{"cursor", "must be a next_cursor from a previous page"}
	}
	key := s.historyKey(tenant, user)
	start := int64(0)
	if cursor != "" {
		rank, err := s.client.Do(ctx, s.client.B().Zrevrank().Key(key).Member(cursor).Build()).AsInt64()
		if rueidis.IsRedisNil(err) {
			return HistoryPage{}, nil
		}
		if err != nil {
			return HistoryPage{}, fmt.Errorf("history: %w", err)
		}
		start = rank + 1
	}
	ids, err := s.client.Do(ctx, s.client.B().Zrange().Key(key).Min(itoa(int(start))).Max(itoa(int(start)+limit)).Rev().Build()).AsStrSlice()
	if err != nil {
		return HistoryPage{}, fmt.Errorf("history: %w", err)
	}
	var page HistoryPage
	if len(ids) > limit {
		ids = ids[:limit]
		page.Next = ids[limit-1]
	}
	if len(ids) == 0 {
		return page, nil
	}
	jobs, err := s.getMany(ctx, ids)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("history: %w", err)
	}
	for _, j := range jobs {
		if j != nil {
			page.Jobs = append(page.Jobs, j)
		}
	}
	return page, nil
}
