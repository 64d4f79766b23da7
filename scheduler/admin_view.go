package scheduler

import (
	"context"
	"fmt"
	"regexp"
)

// DeadLetter is one entry of the dead-letter stream: a job out of attempts.
type DeadLetter struct {
	// Entry is the stream entry id (for DeleteDeadLetter).
	Entry string
	// JobID and Code are as written when the job failed for good.
	JobID, Code string
	// Job is the job's record, nil once it expired.
	Job *Job
}

// DeadLetters lists up to n dead letters, newest first, with their jobs.
func (s *Scheduler) DeadLetters(ctx context.Context, n int) ([]DeadLetter, error) {
	if n < 1 || n > MaxPageSize {
		return nil, &InvalidError{"limit", fmt.Sprintf("must be between 1 and %d (got %d)", MaxPageSize, n)}
	}
	if len(s.shards) > 1 {
		return s.deadLettersSharded(ctx, n)
	}
	entries, err := s.client.Do(ctx, s.client.B().Xrevrange().Key(s.keys.Dead()).End("+").Start("-").Count(int64(n)).Build()).AsXRange()
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	out := make([]DeadLetter, 0, len(entries))
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, DeadLetter{Entry: e.ID, JobID: e.FieldValues["id"], Code: e.FieldValues["code"]})
		ids = append(ids, e.FieldValues["id"])
	}
	if len(ids) == 0 {
		return out, nil
	}
	jobs, err := s.getMany(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	for i := range out {
		out[i].Job = jobs[i]
	}
	return out, nil
}

var streamEntry = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// DeadLetter returns one dead letter by its entry id (ErrNotFound when
// there is none).
func (s *Scheduler) DeadLetter(ctx context.Context, entry string) (DeadLetter, error) {
	if !streamEntry.MatchString(entry) {
		return DeadLetter{}, ErrNotFound
	}
	dead := s.keys.Dead()
	if len(s.shards) > 1 {
		sh, err := s.deadShard(ctx, entry)
		if err != nil {
			return DeadLetter{}, fmt.Errorf("dead letter: %w", err)
		}
		if sh == nil {
			return DeadLetter{}, ErrNotFound
		}
		dead = sh.keys.Dead()
	}
	entries, err := s.client.Do(ctx, s.client.B().Xrange().Key(dead).Start(entry).End(entry).Build()).AsXRange()
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter: %w", err)
	}
	if len(entries) == 0 {
		return DeadLetter{}, ErrNotFound
	}
	d := DeadLetter{Entry: entry, JobID: entries[0].FieldValues["id"], Code: entries[0].FieldValues["code"]}
	jobs, err := s.getMany(ctx, []string{d.JobID})
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter: %w", err)
	}
	d.Job = jobs[0]
	return d, nil
}

// DeleteDeadLetter removes a dead letter; it reports whether one was there.
func (s *Scheduler) DeleteDeadLetter(ctx context.Context, entry string) (bool, error) {
	if !streamEntry.MatchString(entry) {
		return false, nil
	}
	dead := s.keys.Dead()
	if len(s.shards) > 1 {
		sh, err := s.deadShard(ctx, entry)
		if err != nil {
			return false, fmt.Errorf("dead letter: delete: %w", err)
		}
		if sh == nil {
			return false, nil
		}
		dead = sh.keys.Dead()
	}
	n, err := s.client.Do(ctx, s.client.B().Xdel().Key(dead).Id(entry).Build()).AsInt64()
	if err != nil {
		return false, fmt.Errorf("dead letter: delete: %w", err)
	}
	return n > 0, nil
}
