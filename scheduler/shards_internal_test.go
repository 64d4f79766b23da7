package scheduler

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/storage"
)

func TestShardTagsSpreadOverTheSlotRing(t *testing.T) {
	t.Parallel()
	require.Equal(t, uint16(0x31C3), crc16("123456789"), "CRC16-XMODEM check value")
	for _, n := range []int{2, 3, 5} {
		base := hashSlot("s")
		for i := range n {
			tag := shardTag("s", i, n)
			if i == 0 {
				require.Equal(t, "s", tag)
				continue
			}
			require.Regexp(t, tagPattern, tag)
			require.Equal(t, (base+i*clusterSlots/n)%clusterSlots, hashSlot(tag), "shard %d of %d", i, n)
		}
	}
}

func TestShardOfTenantAndJobID(t *testing.T) {
	t.Parallel()
	s := &Scheduler{}
	s.initShards(storage.DefaultKeys(), 3)
	seen := map[int]bool{}
	for i := range 30 {
		tenant := "api:t" + string(rune('a'+i))
		sh := s.shardOfTenant(tenant)
		require.Same(t, sh, s.shardOfTenant(tenant), "stable")
		seen[sh.i] = true
		id := "lx2abc" + "0123456789ab"
		if sh.i != 0 {
			id += "-" + sh.keys.Tag
		}
		require.Same(t, sh, s.shardOfID(id))
		require.True(t, strings.HasPrefix(s.kid(id).Job(id), "easel:{"+sh.keys.Tag+"}:job:"))
	}
	require.Len(t, seen, 3, "30 tenants use every shard")
	// An id whose tag is no shard of this configuration still names its keys.
	k := s.kid("abc-s7_q")
	require.Equal(t, "s7_q", k.Tag)
	require.Equal(t, "s", s.kid("abc-{x}").Tag, "not a tag: shard 0")
	one := &Scheduler{}
	one.initShards(storage.DefaultKeys(), 1)
	require.Equal(t, "easel:{s}:job:abc", one.kid("abc").Job("abc"), "one shard: today's keys")
}

func TestPeekContract(t *testing.T) {
	t.Parallel()
	s, ctx := contractSetup(t, Config{})
	v, err := s.exec(ctx, peekCall{}).AsStrSlice()
	require.NoError(t, err)
	require.Equal(t, []string{"0", "", "", "0", "0"}, v, "empty shard")
	for _, tn := range []string{"api:a", "api:b"} {
		_, err := s.Submit(ctx, SubmitRequest{Tenant: tn, User: "u", Payload: []byte(`{}`), Cost: 2})
		require.NoError(t, err)
	}
	v, err = s.exec(ctx, peekCall{}).AsStrSlice()
	require.NoError(t, err)
	require.Equal(t, []string{"2", "0", "", "0", "0"}, v, "two pending, heads at vt 0")
	// A slot offered with a floor serves the head from it: the shard's
	// clock and the lane's next tag start at the floor.
	sl := s.Slot("w", "b")
	defer func() { require.NoError(t, sl.Close(ctx)) }()
	require.NoError(t, sl.listen(ctx))
	res, err := s.exec(ctx, offerFloorCall{slotCall: slotCall{Member: sl.member, TTL: s.cfg.Lease, After: "-"}, Floor: 100}).ToMessage()
	require.NoError(t, err)
	l, err := sl.deliveredLease(res)
	require.NoError(t, err)
	require.NotNil(t, l)
	v, err = s.exec(ctx, peekCall{}).AsStrSlice()
	require.NoError(t, err)
	require.Equal(t, "1", v[0])
	require.Equal(t, "100", v[3], "the clock moved to the floor")
}
