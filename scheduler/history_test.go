package scheduler_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

func ids(p scheduler.HistoryPage) []string {
	var out []string
	for _, j := range p.Jobs {
		out = append(out, j.ID)
	}
	return out
}

// History pages forward with Next and back with Prev (FinishedNewer), and
// lists only the user's jobs when a user is given.
func TestHistoryPagesBothWays(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	for i := range 5 {
		b.submit(t, "api:a", "u", "job")
		require.NoError(t, b.take(t, "w").Succeed(b.ctx, [][]byte{{byte(i)}}, []int64{int64(i)}, ""))
	}
	b.submit(t, "api:a", "other", "job")
	require.NoError(t, b.take(t, "w").Succeed(b.ctx, [][]byte{{9}}, []int64{9}, ""))

	all, err := b.s.FinishedPage(b.ctx, "api:a", "u", "", 10)
	require.NoError(t, err)
	want := ids(all)
	require.Len(t, want, 5)
	require.Empty(t, all.Next)
	require.Empty(t, all.Prev)

	p1, err := b.s.FinishedPage(b.ctx, "api:a", "u", "", 2)
	require.NoError(t, err)
	require.Equal(t, want[:2], ids(p1))
	require.Empty(t, p1.Prev)
	p2, err := b.s.FinishedPage(b.ctx, "api:a", "u", p1.Next, 2)
	require.NoError(t, err)
	require.Equal(t, want[2:4], ids(p2))
	p3, err := b.s.FinishedPage(b.ctx, "api:a", "u", p2.Next, 2)
	require.NoError(t, err)
	require.Equal(t, want[4:], ids(p3))
	require.Empty(t, p3.Next)
	require.Equal(t, want[4], p3.Prev)

	back, err := b.s.FinishedNewer(b.ctx, "api:a", "u", p3.Prev, 2)
	require.NoError(t, err)
	require.Equal(t, want[2:4], ids(back))
	require.Equal(t, want[2], back.Prev)
	require.Equal(t, want[3], back.Next)
	fwd, err := b.s.FinishedPage(b.ctx, "api:a", "u", back.Next, 2)
	require.NoError(t, err)
	require.Equal(t, want[4:], ids(fwd))
	first, err := b.s.FinishedNewer(b.ctx, "api:a", "u", back.Prev, 2)
	require.NoError(t, err)
	require.Equal(t, want[:2], ids(first))
	require.Empty(t, first.Prev)

	// Newer than the newest: nothing; a short first page keeps its size.
	none, err := b.s.FinishedNewer(b.ctx, "api:a", "u", want[0], 2)
	require.NoError(t, err)
	require.Empty(t, none.Jobs)
	short, err := b.s.FinishedNewer(b.ctx, "api:a", "u", want[1], 2)
	require.NoError(t, err)
	require.Equal(t, want[:1], ids(short))

	var bad *scheduler.InvalidError
	_, err = b.s.FinishedNewer(b.ctx, "api:a", "u", "no spaces", 2)
	require.ErrorAs(t, err, &bad)
	require.Equal(t, "cursor", bad.Field)
}
