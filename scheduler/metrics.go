package scheduler

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
)

// Collector exports the scheduler's state as Prometheus metrics, read from
// Redis at scrape time: queue depth, lanes ready and parked, delayed retries,
// free worker slots, and fairness over the last FairnessWindow — each
// tenant's share of the weight-normalised GPU cost served (for the busiest
// TopTenants) and Jain's fairness index over the tenants served.
type Collector struct {
	s *Scheduler
	// FairnessWindow is how far back fairness is measured. Default 10m.
	FairnessWindow time.Duration
	// TopTenants bounds the tenant label's cardinality. Default 10.
	TopTenants int

	pending, ready, blocked, delayed, credits, jain, share *prometheus.Desc
}

// NewCollector returns a collector for s.
func NewCollector(s *Scheduler) *Collector {
	return &Collector{
		s: s, FairnessWindow: 10 * time.Minute, TopTenants: 10,
		pending: prometheus.NewDesc("easel_queue_pending_jobs", "Jobs waiting in fair queues (not counting delayed retries).", nil, nil),
		ready:   prometheus.NewDesc("easel_queue_ready_lanes", "Tenant lanes with dispatchable work.", []string{"lane"}, nil),
		blocked: prometheus.NewDesc("easel_queue_blocked_lanes", "Tenant lanes parked at their concurrency cap.", nil, nil),
		delayed: prometheus.NewDesc("easel_queue_delayed_jobs", "Jobs waiting for a retry.", nil, nil),
		credits: prometheus.NewDesc("easel_worker_free_slots", "Idle worker slots with a live offer.", nil, nil),
		jain:    prometheus.NewDesc("easel_fairness_jain_index", "Jain's fairness index of weight-normalised GPU cost served per tenant over the fairness window (1 = perfectly even).", nil, nil),
		share:   prometheus.NewDesc("easel_tenant_served_share", "Share of weight-normalised GPU cost served to the tenant over the fairness window (busiest tenants only).", []string{"tenant"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.ready, c.blocked, c.delayed, c.credits, c.jain, c.share} {
		ch <- d
	}
	c.s.refusals.Describe(ch)
	c.s.submits.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.s.refusals.Collect(ch)
	c.s.submits.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Every shard's counts, summed; a free slot is offered on every shard,
	// so free slots are the most any shard sees. A slot's score is its
	// offer's expiry by Redis's clock.
	at, err := c.s.redisNow(ctx)
	if err != nil {
		return
	}
	now := strconv.FormatInt(at.UnixMilli(), 10)
	cl := c.s.client
	var cmds rueidis.Commands
	for _, sh := range c.s.shards {
		k := sh.keys
		cmds = append(cmds,
			cl.B().Hmget().Key(k.Global()).Field("pending").Build(),
			cl.B().Zcount().Key(k.Slots()).Min(now).Max("+inf").Build(),
			cl.B().Zcard().Key(k.Ready()).Build(),
			cl.B().Zcard().Key(k.Relax()).Build(),
			cl.B().Zcard().Key(k.Blocked()).Build(),
			cl.B().Zcard().Key(k.Delayed()).Build())
	}
	replies := cl.DoMulti(ctx, cmds...)
	num := func(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }
	card := func(r rueidis.RedisResult) float64 { n, _ := r.AsInt64(); return float64(n) }
	var pending, free, ready, relax, blocked, delayed float64
	for i := range c.s.shards {
		res := replies[6*i : 6*i+6]
		g, err := res[0].AsStrSlice()
		if err != nil && !rueidis.IsRedisNil(err) {
			return
		}
		if len(g) == 1 {
			pending += num(g[0])
		}
		free = max(free, card(res[1]))
		ready += card(res[2])
		relax += card(res[3])
		blocked += card(res[4])
		delayed += card(res[5])
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, pending)
	ch <- prometheus.MustNewConstMetric(c.credits, prometheus.GaugeValue, free)
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, ready, "normal")
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, relax, "relax")
	ch <- prometheus.MustNewConstMetric(c.blocked, prometheus.GaugeValue, blocked)
	ch <- prometheus.MustNewConstMetric(c.delayed, prometheus.GaugeValue, delayed)

	served, err := c.s.Served(ctx, c.FairnessWindow)
	if err != nil || len(served) == 0 {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.jain, prometheus.GaugeValue, JainIndex(served))
	type ts struct {
		t string
		v float64
	}
	var all []ts
	var total float64
	for t, v := range served {
		all = append(all, ts{t, v})
		total += v
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	for i, x := range all {
		if i >= c.TopTenants {
			break
		}
		ch <- prometheus.MustNewConstMetric(c.share, prometheus.GaugeValue, x.v/total, x.t)
	}
}

// Served returns the weight-normalised GPU cost served per tenant over the
// last window (minute resolution): for each tenant served in it, its
// running total now (the tenant hash's sv) less the mark of its first
// minute in the window (Keys.ServedMarks, written by dispatch).
//
// The minutes are Redis's clock's (as dispatch keys the marks), not this
// machine's.
func (s *Scheduler) Served(ctx context.Context, window time.Duration) (map[string]float64, error) {
	at, err := s.redisNow(ctx)
	if err != nil {
		return nil, fmt.Errorf("served: %w", err)
	}
	now := at.UnixMilli() / 60000
	minutes := max(int64(window/time.Minute), 1)
	cmds := make(rueidis.Commands, 0, minutes)
	for m := now - minutes + 1; m <= now; m++ {
		for _, sh := range s.shards {
			cmds = append(cmds, s.client.B().Hgetall().Key(sh.keys.ServedMarks(m)).Build())
		}
	}
	// Oldest minute first: a tenant's first mark is the total before the window.
	before := map[string]float64{}
	var tenants []string
	for _, r := range s.client.DoMulti(ctx, cmds...) {
		m, err := r.AsStrMap()
		if err != nil {
			return nil, err
		}
		for t, v := range m {
			if _, ok := before[t]; !ok {
				before[t], _ = strconv.ParseFloat(v, 64)
				tenants = append(tenants, t)
			}
		}
	}
	out := make(map[string]float64, len(tenants))
	if len(tenants) == 0 {
		return out, nil
	}
	cmds = make(rueidis.Commands, 0, len(tenants))
	for _, t := range tenants {
		cmds = append(cmds, s.client.B().Hget().Key(s.kt(t).Tenant(t)).Field("sv").Build())
	}
	for i, r := range s.client.DoMulti(ctx, cmds...) {
		v, err := r.ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, err
		}
		total, _ := strconv.ParseFloat(v, 64)
		out[tenants[i]] = max(total-before[tenants[i]], 0)
	}
	return out, nil
}

// JainIndex is (Σx)² / (n·Σx²): 1 when every tenant got the same, 1/n when
// one got everything.
func JainIndex(x map[string]float64) float64 {
	var sum, sq float64
	for _, v := range x {
		sum += v
		sq += v * v
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(x)) * sq)
}
