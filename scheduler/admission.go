package scheduler

import (
	"fmt"
	"time"
)

// Rate is a rate limit: PerMinute jobs a minute on average, with bursts of
// up to Burst jobs at once (generic cell rate algorithm).
type Rate struct {
	// PerMinute is the sustained rate in jobs per minute; 0 means no limit.
	PerMinute float64 `yaml:"per_minute" json:"per_minute"`
	// Burst is how many jobs may arrive at once; values below 1 count as 1.
	Burst int `yaml:"burst" json:"burst"`
}

// Admission is the resolved set of limits a submit is checked against,
// atomically with its enqueue. Zero values switch a limit off.
type Admission struct {
	// TenantWeight is the tenant's share of the GPUs relative to others
	// (default 1): a tenant of weight 3 gets three times the GPU work of a
	// tenant of weight 1 while both have work waiting.
	TenantWeight float64
	// UserWeight is the user's share inside the tenant (default 1).
	UserWeight float64
	// MaxRunning caps the tenant's jobs running at once; 0 is no cap.
	MaxRunning int
	UserRate   Rate
	TenantRate Rate
	// UserDailyImages and TenantDailyImages cap images admitted per UTC day.
	UserDailyImages   int
	TenantDailyImages int
	// MaxPendingPerUser caps a user's jobs waiting in the queue.
	MaxPendingPerUser int
	// Relax, when true, runs over-quota jobs in the relax lane (behind
	// every normal job) instead of refusing them.
	Relax bool
	// Blocked refuses the submit (a blocked user or suspended tenant).
	Blocked bool
}

// Refusal reasons.
const (
	RefusedUserPending = "user_pending"
	RefusedUserRate    = "user_rate"
	RefusedTenantRate  = "tenant_rate"
	RefusedUserQuota   = "user_quota"
	RefusedTenantQuota = "tenant_quota"
	RefusedBlocked     = "blocked"
)

// RefusedError is a submit that admission turned away.
type RefusedError struct {
	// Reason is one of the Refused* constants.
	Reason string
	// Limit is the limit that was hit (jobs/min, images/day, pending jobs).
	Limit float64
	// RetryAfter is how long until a retry can succeed (rate limits and
	// quotas); zero for the pending cap.
	RetryAfter time.Duration
}

func (e *RefusedError) Error() string {
	switch e.Reason {
	case RefusedBlocked:
		return "you are not allowed to make images here; ask an admin"
	case RefusedUserPending:
		return fmt.Sprintf("you already have %g jobs waiting, the most allowed; wait for one to finish", e.Limit)
	case RefusedUserRate:
		return fmt.Sprintf("you are over the limit of %g jobs a minute; try again in %s", e.Limit, roundUp(e.RetryAfter))
	case RefusedTenantRate:
		return fmt.Sprintf("this server is over its limit of %g jobs a minute; try again in %s", e.Limit, roundUp(e.RetryAfter))
	case RefusedUserQuota:
		return fmt.Sprintf("your %g images for today are used; the quota resets in %s", e.Limit, roundUp(e.RetryAfter))
	case RefusedTenantQuota:
		return fmt.Sprintf("this server's %g images for today are used; the quota resets in %s", e.Limit, roundUp(e.RetryAfter))
	}
	return "refused: " + e.Reason
}

// roundUp renders d for people: whole seconds under a minute, else h and m.
func roundUp(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d s", int((d+time.Second-1)/time.Second))
	}
	d = (d + time.Minute - 1).Truncate(time.Minute)
	h, m := int(d.Hours()), int(d.Minutes())%60
	if h == 0 {
		return fmt.Sprintf("%d m", m)
	}
	return fmt.Sprintf("%d h %d m", h, m)
}
