package storage

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCommandStats(t *testing.T) {
	t.Parallel()
	info := "# Commandstats\r\ncmdstat_fcall:calls=12,usec=340,usec_per_call=28.33,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_xreadgroup:calls=5,usec=20,usec_per_call=4.00\r\ncmdstat_client|id:calls=1,usec=0\r\n"
	calls, err := ParseCommandStats(info)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"fcall": 12, "xreadgroup": 5, "client|id": 1}, calls)
	require.Equal(t, int64(18), TotalCalls(calls))

	_, err = ParseCommandStats("cmdstat_get:usec=3\r\n")
	require.ErrorContains(t, err, "has no calls")
	_, err = ParseCommandStats("cmdstat_get:calls=x,usec=3\r\n")
	require.ErrorContains(t, err, "cmdstat_get")
}

func FuzzParseCommandStats(f *testing.F) {
	f.Add("cmdstat_get:calls=3,usec=1\r\n")
	f.Add("# Commandstats\r\ncmdstat_set:calls=1\r\n")
	f.Fuzz(func(t *testing.T, info string) {
		calls, err := ParseCommandStats(info)
		if err == nil {
			require.LessOrEqual(t, len(calls), strings.Count(info, "cmdstat_"))
		}
	})
}
