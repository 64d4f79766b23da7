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
	// Next is the cursor of the next (older) page; "" on the last one.
	Next string
	// Prev is the cursor of the previous (newer) page for FinishedNewer;
	// "" on the first one.
	Prev string
}

// historyKey is the sorted set of tenant's finished jobs by finish time
// (ms), or of one user's when user is set; finish in lua/lib.lua writes it.
func (s *Scheduler) historyKey(tenant, user string) string {
	return s.kt(tenant).TenantHistory(tenant, user)
}

func checkHistoryArgs(cursor string, limit int) error {
	switch {
	case limit < 1 || limit > MaxPageSize:
		return &InvalidError{"limit", fmt.Sprintf("must be between 1 and %d (got %d)", MaxPageSize, limit)}
	case cursor != "" && !namePattern.MatchString(cursor):
		return &InvalidError{"cursor", "must be a next_cursor from a previous page"}
	}
	return nil
}

// FinishedPage lists up to limit (1..MaxPageSize) of tenant's finished
// jobs (only user's when user is set), newest first, after cursor (the
// previous page's Next, a job id; "" from the newest). Jobs whose records
// expired are left out. A cursor that fell off the capped history ends the
// listing.
func (s *Scheduler) FinishedPage(ctx context.Context, tenant, user, cursor string, limit int) (HistoryPage, error) {
	if err := checkHistoryArgs(cursor, limit); err != nil {
		return HistoryPage{}, err
	}
	key := s.historyKey(tenant, user)
	start := int64(0)
	if cursor != "" {
		rank, err := s.historyRank(ctx, key, cursor)
		if err != nil || rank < 0 {
			return HistoryPage{}, err
		}
		start = rank + 1
	}
	return s.historyRange(ctx, key, start, limit, true)
}

// FinishedNewer lists the up to limit finished jobs just newer than
// cursor (a page's Prev), newest first: the page before the one cursor
// starts. A cursor that fell off the capped history gives an empty page.
func (s *Scheduler) FinishedNewer(ctx context.Context, tenant, user, cursor string, limit int) (HistoryPage, error) {
	if err := checkHistoryArgs(cursor, limit); err != nil {
		return HistoryPage{}, err
	}
	if cursor == "" {
		return s.FinishedPage(ctx, tenant, user, "", limit)
	}
	key := s.historyKey(tenant, user)
	rank, err := s.historyRank(ctx, key, cursor)
	if err != nil || rank <= 0 {
		return HistoryPage{}, err
	}
	start := max(rank-int64(limit), 0)
	// cursor's page follows: Next is this page's last job.
	return s.historyRange(ctx, key, start, int(rank-start), false)
}

// historyRank is member's place in key, newest first; -1 when absent.
func (s *Scheduler) historyRank(ctx context.Context, key, member string) (int64, error) {
	rank, err := s.client.Do(ctx, s.client.B().Zrevrank().Key(key).Member(member).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("history: %w", err)
	}
	return rank, nil
}

// historyRange reads up to limit jobs of key from rank start (newest
// first). With more it looks one past the page to set Next; without, a
// page follows (Next is its last job).
func (s *Scheduler) historyRange(ctx context.Context, key string, start int64, limit int, more bool) (HistoryPage, error) {
	end := start + int64(limit) - 1
	if more {
		end++
	}
	ids, err := s.client.Do(ctx, s.client.B().Zrange().Key(key).Min(itoa(int(start))).Max(itoa(int(end))).Rev().Build()).AsStrSlice()
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
	if !more {
		page.Next = ids[len(ids)-1]
	}
	if start > 0 {
		page.Prev = ids[0]
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
