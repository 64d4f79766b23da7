package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/easelbot/easel/scheduler"
)

// HistoryEntry is one finished job as chat history shows it.
type HistoryEntry struct {
	Job *scheduler.Job
	// Prompt, Model ("" for the backend's default), Width and Height are
	// the job's request; Seed is its first image's seed (else the
	// request's; nil when random and unknown).
	Prompt        string
	Model         string
	Width, Height int
	Seed          *int64
	// When is when the job finished.
	When time.Time
}

// History is one page of the caller's own finished jobs, newest first.
type History struct {
	Entries []HistoryEntry
	// Older and Newer are the cursors of the next pages each way ("" when
	// there is none): pass Older with newer false, Newer with newer true.
	Older, Newer string
}

// History lists up to limit of the caller's finished jobs (their own
// only, admin or not), after cursor (older) or, with newer, before it.
// Records that expired are left out; images as long as storage.image_ttl.
func (s *Service) History(ctx context.Context, c Caller, cursor string, newer bool, limit int) (History, error) {
	read := s.sched.FinishedPage
	if newer {
		read = s.sched.FinishedNewer
	}
	page, err := read(ctx, c.Tenant, c.User, cursor, limit)
	if err != nil {
		return History{}, err
	}
	h := History{Older: page.Next, Newer: page.Prev, Entries: []HistoryEntry{}}
	for _, j := range page.Jobs {
		if j.Tenant != c.Tenant || j.User != c.User {
			continue
		}
		h.Entries = append(h.Entries, historyEntry(j))
	}
	return h, nil
}

func historyEntry(j *scheduler.Job) HistoryEntry {
	e := HistoryEntry{Job: j, When: j.FinishedAt}
	var im Imagine
	if json.Unmarshal(j.Payload, &im) == nil {
		e.Prompt, e.Model, e.Width, e.Height, e.Seed = im.Prompt, im.Model, im.Width, im.Height, im.Seed
	}
	if len(j.Seeds) > 0 {
		seed := j.Seeds[0]
		e.Seed = &seed
	}
	if e.Seed != nil && *e.Seed < 0 {
		e.Seed = nil
	}
	return e
}

// Thumbnail returns the JPEG thumbnail of image n of job j (made on first
// ask and kept beside the image); the caller has checked j is theirs.
func (s *Service) Thumbnail(ctx context.Context, j *scheduler.Job, n int) ([]byte, error) {
	o, _, err := s.sched.OpenThumb(ctx, j, n)
	if err != nil {
		return nil, fmt.Errorf("thumbnail: %w", err)
	}
	defer o.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, o); err != nil {
		return nil, fmt.Errorf("thumbnail: %w", err)
	}
	return b.Bytes(), nil
}
