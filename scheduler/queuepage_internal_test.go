package scheduler

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Jobs queued before the sorted index existed (or an index lost) are
// listed all the same: the page rebuilds the index from the active set.
func TestQueuePageRebuildsItsIndex(t *testing.T) {
	t.Parallel()
	s, ctx := contractSetup(t, Config{})
	a := submitForContract(t, s, ctx, "api:idx", "u")
	b := submitForContract(t, s, ctx, "api:idx", "u")
	lex := s.keys.TenantActive("api:idx") + ":lex"
	require.NoError(t, s.client.Do(ctx, s.client.B().Del().Key(lex).Build()).Error())
	page, err := s.ActivePage(ctx, "api:idx", "", "", 10)
	require.NoError(t, err)
	require.Len(t, page.Entries, 2)
	require.ElementsMatch(t, []string{a, b}, []string{page.Entries[0].Job.ID, page.Entries[1].Job.ID})
	n, err := s.client.Do(ctx, s.client.B().Zcard().Key(lex).Build()).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
}
