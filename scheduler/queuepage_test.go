package scheduler_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

func TestActivePage(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	var ids []string
	for i := range 7 {
		res, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:p", User: fmt.Sprint("u", i%2), Payload: json.RawMessage(`{}`)})
		require.NoError(t, err)
		ids = append(ids, res.ID)
	}
	_, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:other", User: "u0", Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	_, err = b.s.Cancel(b.ctx, ids[2], "t")
	require.NoError(t, err)
	want := append(append([]string{}, ids[:2]...), ids[3:]...)
	slices.Sort(want) // ids order by creation time, to the millisecond

	var got []string
	cursor, pages := "", 0
	for {
		page, err := b.s.ActivePage(b.ctx, "api:p", "", cursor, 4)
		require.NoError(t, err)
		pages++
		for _, e := range page.Entries {
			got = append(got, e.Job.ID)
			require.Equal(t, scheduler.StatusQueued, e.Job.Status)
			pos, err := b.s.Position(b.ctx, e.Job.ID)
			require.NoError(t, err)
			require.Equal(t, pos, e.Position, "the place in line Position gives")
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	require.Equal(t, want, got, "every active job once, oldest first, canceled one left out")
	require.Equal(t, 2, pages)

	page, err := b.s.ActivePage(b.ctx, "api:p", "u1", "", 100)
	require.NoError(t, err)
	require.Len(t, page.Entries, 3)
	for _, e := range page.Entries {
		require.Equal(t, "u1", e.Job.User)
	}
	require.Empty(t, page.Next)

	for _, c := range []struct {
		limit  int
		cursor string
		field  string
	}{{0, "", "limit"}, {101, "", "limit"}, {10, "a b", "cursor"}} {
		_, err := b.s.ActivePage(b.ctx, "api:p", "", c.cursor, c.limit)
		var inv *scheduler.InvalidError
		require.ErrorAs(t, err, &inv)
		require.Equal(t, c.field, inv.Field)
	}
}
