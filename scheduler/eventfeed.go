package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

// ReadEvents waits up to block for entries of the shared events stream
// (every job's events) after entry id after, and returns their events with
// the entry id to read after next. With after "" it returns at once, with
// no events and the stream's current end. It is the one blocking read an in-process event fan-out needs,
// however many jobs it follows.
func (s *Scheduler) ReadEvents(ctx context.Context, after string, block time.Duration) ([]Event, string, error) {
	if len(s.shards) > 1 {
		return s.readEventsSharded(ctx, after, block)
	}
	key := s.keys.Events()
	if after == "" {
		last, err := s.client.Do(ctx, s.client.B().Xrevrange().Key(key).End("+").Start("-").Count(1).Build()).AsXRange()
		if err != nil {
			return nil, "", fmt.Errorf("read events: %w", err)
		}
		if len(last) > 0 {
			return nil, last[0].ID, nil
		}
		return nil, "0-0", nil
	}
	res, err := s.client.Do(ctx, s.client.B().Xread().Count(1000).Block(max(block.Milliseconds(), 1)).
		Streams().Key(key).Id(after).Build()).AsXRead()
	if rueidis.IsRedisNil(err) {
		return nil, after, nil
	}
	if err != nil {
		return nil, after, fmt.Errorf("read events: %w", err)
	}
	entries := res[key]
	evs := make([]Event, 0, len(entries))
	for _, e := range entries {
		after = e.ID
		if ev, err := DecodeEvent(e.FieldValues["e"]); err == nil {
			evs = append(evs, ev) // a malformed entry is skipped, not fatal
		}
	}
	return evs, after, nil
}

// History returns job id's events with Seq above afterSeq, oldest first,
// and whether the job has ended: after it has, no more events come. The
// first (queued) event is rebuilt from the record, and so is the first
// attempt's started event while the record keeps it (Job.startedEvent);
// so is a finished job's
// terminal event once the job's own stream has expired
// (FinishedEventsGrace after the end, to keep Redis small): a reader
// arriving later gets queued and the terminal event, with the images,
// seeds and info.
// ErrNotFound for an unknown job.
func (s *Scheduler) History(ctx context.Context, id string, afterSeq int64) ([]Event, bool, error) {
	if !namePattern.MatchString(id) {
		return nil, false, ErrNotFound
	}
	// The record is read first: a terminal status is written with its
	// event in one script, so the range read after it holds that event.
	k := s.kid(id)
	// Now by Redis's clock, as the record's finish time is
	// (Job.startedEvent).
	res := s.client.DoMulti(ctx, s.timeCmds(rueidis.Commands{s.client.B().Hgetall().Key(k.Job(id)).Build(),
		s.client.B().Xrange().Key(k.JobEvents(id)).Start("-").End("+").Build()})...)
	now, err := s.pipelinedNow(res)
	if err != nil {
		return nil, false, fmt.Errorf("history: %w", err)
	}
	m, err := res[0].AsStrMap()
	if err != nil {
		return nil, false, fmt.Errorf("history: %w", err)
	}
	if len(m) == 0 || m["status"] == "" {
		return nil, false, ErrNotFound
	}
	entries, err := res[1].AsXRange()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, false, fmt.Errorf("history: %w", err)
	}
	j := parseJob(m)
	var evs []Event
	last := afterSeq
	if afterSeq < 1 {
		evs = append(evs, j.queuedEvent())
		last = 1
	}
	if st, ok := j.startedEvent(now); ok && st.Seq > last {
		evs = append(evs, st)
		last = st.Seq
	}
	for _, e := range entries {
		ev, err := DecodeEvent(e.FieldValues["e"])
		if err != nil {
			return nil, false, fmt.Errorf("history: %w", err)
		}
		// Above last: the kept started event may have been written to the
		// stream between the two reads.
		if ev.Seq > last {
			evs = append(evs, ev)
			last = ev.Seq
		}
	}
	if end, ok := j.terminalEvent(); ok && end.Seq > afterSeq && (len(evs) == 0 || !evs[len(evs)-1].Type.Terminal()) {
		if j.infoStored {
			if end.Info, err = s.Info(ctx, j); err != nil {
				return nil, false, fmt.Errorf("history: %w", err)
			}
		}
		evs = append(evs, end)
	}
	return evs, j.Status.Terminal(), nil
}
