package scheduler_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

// The maintainer's trim of the shared events stream by age (eventtrim.go):
// it removes what is older than the grace and read and acknowledged by
// every group, never an entry a group has not read or not acknowledged,
// and a finished job's history does not depend on the stream.
func TestTrimEventsKeepsWhatGroupsNeed(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 2} {
		t.Run("shards="+strconv.Itoa(shards), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scheduler.Config{Shards: shards})
			c := b.store.Client
			keys := b.s.EventKeys()
			require.NoError(t, b.s.JoinEventGroup(b.ctx, scheduler.WebhooksGroup))

			// A job run to its end, then enough entries on every shard's
			// stream for several stream nodes (MINID ~ drops whole nodes of
			// stream-node-max-entries, 100 by default).
			id := b.submit(t, "api:x", "u", "X")
			l := b.take(t, "w1")
			require.NoError(t, l.Progress(b.ctx, 1, 2, 0.5, time.Second, nil))
			require.NoError(t, l.Succeed(b.ctx, [][]byte{[]byte("img")}, []int64{42}, "info"))
			var before []scheduler.Event
			require.NoError(t, b.s.Follow(b.ctx, id, 0, func(e scheduler.Event) error { before = append(before, e); return nil }))
			require.Len(t, before, 4)
			for _, k := range keys {
				cmds := make([]rueidis.Completed, 0, 350)
				for range 350 {
					cmds = append(cmds, c.B().Xadd().Key(k).Id("*").FieldValue().FieldValue("e", "filler").Build())
				}
				for _, r := range c.DoMulti(b.ctx, cmds...) {
					require.NoError(t, r.Error())
				}
			}
			xlen := func(k string) int64 {
				n, err := c.Do(b.ctx, c.B().Xlen().Key(k).Build()).AsInt64()
				require.NoError(t, err)
				return n
			}
			lens := func() []int64 {
				var out []int64
				for _, k := range keys {
					out = append(out, xlen(k))
				}
				return out
			}
			full := lens()
			later := time.Now().Add(time.Hour) // every entry is older than the grace then

			// Nothing is read yet: the relay group starts at 0, the
			// webhooks group at the stream's end before the job.
			n, err := b.s.TrimEventsAt(b.ctx, later)
			require.NoError(t, err)
			require.Zero(t, n)
			require.Equal(t, full, lens())

			// The relays read and acknowledge everything; the webhooks
			// group lags behind and keeps every entry.
			relay, err := b.s.RelayRead(b.ctx, "r1", ">", 10000, time.Second)
			require.NoError(t, err)
			require.Len(t, relay, int(sum(full)))
			for _, e := range relay {
				require.NoError(t, b.s.RelayAck(b.ctx, e.ID))
			}
			n, err = b.s.TrimEventsAt(b.ctx, later)
			require.NoError(t, err)
			require.Zero(t, n, "the webhooks group has read nothing")
			require.Equal(t, full, lens())

			// The webhooks read everything and acknowledge all but one
			// entry of each shard, in the middle of the filler: it stays,
			// and so does everything after it.
			hooks, err := b.s.ReadEventGroup(b.ctx, scheduler.WebhooksGroup, "h", false, 10000, time.Second)
			require.NoError(t, err)
			require.Len(t, hooks, int(sum(full)))
			held := map[string]string{} // stream key: entry id left pending
			var ack []string
			seen := map[string]int{}
			for _, e := range hooks {
				k, raw := keys[0], e.EntryID
				if shards > 1 {
					i, r, ok := strings.Cut(e.EntryID, "/")
					require.True(t, ok, e.EntryID)
					si, err := strconv.Atoi(i)
					require.NoError(t, err)
					k, raw = keys[si], r
				}
				seen[k]++
				if seen[k] == 200 {
					held[k] = raw
					continue
				}
				ack = append(ack, e.EntryID)
			}
			require.Len(t, held, len(keys))
			require.NoError(t, b.s.AckEvents(b.ctx, scheduler.WebhooksGroup, ack...))

			// Within the grace nothing goes, read or not.
			n, err = b.s.TrimEventsAt(b.ctx, time.Now())
			require.NoError(t, err)
			require.Zero(t, n)
			require.Equal(t, full, lens())

			n, err = b.s.TrimEventsAt(b.ctx, later)
			require.NoError(t, err)
			require.Positive(t, n, "whole nodes before the pending entry go")
			for i, k := range keys {
				first, err := c.Do(b.ctx, c.B().Xrange().Key(k).Start("-").End("+").Count(1).Build()).AsXRange()
				require.NoError(t, err)
				require.NotEmpty(t, first)
				require.LessOrEqual(t, xlen(k), full[i])
				require.GreaterOrEqual(t, xlen(k), full[i]-199, "at most the entries before the pending one go")
				pend, err := c.Do(b.ctx, c.B().Xrange().Key(k).Start(held[k]).End(held[k]).Build()).AsXRange()
				require.NoError(t, err)
				require.Len(t, pend, 1, "the pending entry stays")
				require.Equal(t, "filler", pend[0].FieldValues["e"])
			}
			// It can still be claimed and acknowledged.
			claimed, err := b.s.ClaimEvents(b.ctx, scheduler.WebhooksGroup, "h2", 0, 100)
			require.NoError(t, err)
			require.Len(t, claimed, len(keys))
			for _, e := range claimed {
				require.NoError(t, b.s.AckEvents(b.ctx, scheduler.WebhooksGroup, e.EntryID))
			}

			// Read and acknowledged by every group: all but the last node go.
			_, err = b.s.TrimEventsAt(b.ctx, later)
			require.NoError(t, err)
			for _, k := range keys {
				require.LessOrEqual(t, xlen(k), int64(100))
			}

			// The finished job is read in full all the same.
			var after []scheduler.Event
			require.NoError(t, b.s.Follow(b.ctx, id, 0, func(e scheduler.Event) error { after = append(after, e); return nil }))
			require.Equal(t, before, after)
			hist, over, err := b.s.History(b.ctx, id, 0)
			require.NoError(t, err)
			require.True(t, over)
			require.Equal(t, before, hist)
			j, err := b.s.Get(b.ctx, id)
			require.NoError(t, err)
			img, err := b.s.Image(b.ctx, j, 0)
			require.NoError(t, err)
			require.Equal(t, "img", string(img))
			// A fan-out cursor from before the trim reads on from there.
			evs, _, err := b.s.ReadEvents(b.ctx, strings.Repeat("0-0,", shards)[:4*shards-1], 0)
			require.NoError(t, err)
			require.Empty(t, evs, "only filler is left")
		})
	}
}

func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}

// The maintainer trims the stream on its own, on its reclaim pace: here on
// its first pass, with a clock an hour ahead (every entry past the grace).
func TestMaintainerTrimsEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	c := b.store.Client
	k := b.s.EventKeys()[0]
	cmds := make([]rueidis.Completed, 0, 350)
	for range 350 {
		cmds = append(cmds, c.B().Xadd().Key(k).Id("*").FieldValue().FieldValue("e", "filler").Build())
	}
	for _, r := range c.DoMulti(b.ctx, cmds...) {
		require.NoError(t, r.Error())
	}
	relay, err := b.s.RelayRead(b.ctx, "r1", ">", 1000, time.Second)
	require.NoError(t, err)
	require.Len(t, relay, 350)
	for _, e := range relay {
		require.NoError(t, b.s.RelayAck(b.ctx, e.ID))
	}
	m := startMaintainer(t, b)
	select {
	case <-m.Passes():
	case <-b.ctx.Done():
		require.FailNow(t, "no maintenance pass")
	}
	n, err := c.Do(b.ctx, c.B().Xlen().Key(k).Build()).AsInt64()
	require.NoError(t, err)
	require.LessOrEqual(t, n, int64(100))
}

// With no chat platform no relay ever reads: the relay group the scheduler
// made has no consumer and must not hold the trim back (an HTTP-only
// deployment's stream would otherwise grow to its length cap). Once a
// relay has read, its position counts again.
func TestUnreadRelayGroupDoesNotHoldTheTrim(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	c := b.store.Client
	k := b.s.EventKeys()[0]
	fill := func() {
		cmds := make([]rueidis.Completed, 0, 350)
		for range 350 {
			cmds = append(cmds, c.B().Xadd().Key(k).Id("*").FieldValue().FieldValue("e", "filler").Build())
		}
		for _, r := range c.DoMulti(b.ctx, cmds...) {
			require.NoError(t, r.Error())
		}
	}
	xlen := func() int64 {
		n, err := c.Do(b.ctx, c.B().Xlen().Key(k).Build()).AsInt64()
		require.NoError(t, err)
		return n
	}
	later := time.Now().Add(time.Hour)
	fill()
	n, err := b.s.TrimEventsAt(b.ctx, later)
	require.NoError(t, err)
	require.Positive(t, n)
	require.LessOrEqual(t, xlen(), int64(100))

	// A relay reads one entry and stops: what it has not read stays.
	fill()
	got, err := b.s.RelayRead(b.ctx, "r1", ">", 1, time.Second)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.NoError(t, b.s.RelayAck(b.ctx, got[0].ID))
	before := xlen()
	_, err = b.s.TrimEventsAt(b.ctx, later)
	require.NoError(t, err)
	require.GreaterOrEqual(t, xlen(), before-100, "the relay's unread entries stay")
}

func TestEventsGraceConfig(t *testing.T) {
	t.Parallel()
	c, err := scheduler.Config{}.WithDefaults()
	require.NoError(t, err)
	require.Equal(t, 5*time.Minute, c.EventsGrace)
	_, err = scheduler.Config{EventsGrace: 500 * time.Millisecond}.WithDefaults()
	require.ErrorContains(t, err, "scheduler.events_grace")
	require.ErrorContains(t, err, "at least 1s")
}
