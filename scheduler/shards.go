package scheduler

import (
	"context"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/easelbot/easel/storage"
)

// Shards (Config.Shards): tenants spread over N hash tags, each a complete
// scheduler of its own — ready sets, user queues, work stream, delayed and
// dead sets, events stream, slot offers — so on a Redis Cluster the shards'
// scripts run on different masters and no script ever touches two tags.
//
//   - Tenant → shard is a stable hash (FNV-1a of the tenant name, mod N):
//     a tenant's lanes, quotas and jobs all live in one shard.
//   - Shard 0's tag is "s", the tag a single-shard scheduler has always
//     used, so shards=1 keeps today's keys. Shard i > 0 gets a tag chosen
//     so its Cluster hash slot lies i/N of the way round the slot ring from
//     shard 0's: on an evenly split cluster of N masters each shard lands on
//     its own master.
//   - A job id names its shard: shard 0's ids are as before, the others'
//     end in "-<tag>", so Get, Cancel, events and leases find a job's keys
//     from its id alone, with no lookup and whatever N is configured now.
//   - A worker slot is offered on every shard while it waits; a free slot
//     first takes from the shard whose head lane has the least virtual time
//     (see clocks below). Two shards may still hand the same waiting slot a
//     job at once: the slot keeps the first and hands the other back (it
//     goes to the front of its user's queue, no attempt used).
//   - Readers that span tenants (events, relay and webhook groups, dead
//     letters, metrics, the maintainer) read every shard.
//
// Clocks: each shard's virtual times advance only with its own dispatches,
// so raw tags are not comparable across shards — a shard that was idle
// keeps an old clock, and a tenant arriving there would enter far behind
// everyone else and take every slot until it caught up. Rather than a
// cross-shard key written on every dispatch (one more command per job and a
// hot key), the slot reads each shard's clock (its global vt: the start tag
// it served last) in the same peek that reads the heads, takes the largest
// as the system's virtual time C, and compares shards by max(head, C): a
// head behind C is "now", as a newcomer in one queue would be. The offer
// then passes C as a floor, and the dispatch serves the lane from
// max(tag, C), so the lane's next tag and the shard's clock catch up at
// once. Equal saturated tenants on different shards thus alternate by
// their tags exactly as they would in one shard.

// shard is one hash tag's scheduler keys.
type shard struct {
	i      int
	keys   storage.Keys
	pfx    string
	common []string
	// view is the scheduler restricted to this shard (its keys as the
	// scheduler's own), for slots and maintenance.
	view *Scheduler
	// submits and succeeds batch concurrent calls to this shard (batch.go).
	submits  *batcher[submitCall]
	succeeds *batcher[succeedCall]
}

func newShard(i int, k storage.Keys) *shard {
	return &shard{i: i, keys: k, pfx: k.ShardPrefix(), common: commonKeys(k),
		submits:  newBatcher(func(c []submitCall) scriptCall { return submitBatch(c) }),
		succeeds: newBatcher(func(c []succeedCall) scriptCall { return succeedBatch(c) })}
}

// clusterSlots is the number of Redis Cluster hash slots.
const clusterSlots = 16384

// crc16 is Redis Cluster's key hash (CRC16-CCITT, XMODEM).
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func hashSlot(tag string) int { return int(crc16(tag)) % clusterSlots }

// shardTag is the hash tag of shard i of n under base (base itself for
// shard 0): "<base><i>_<k>" with the least k whose hash slot is i/n of the
// ring away from base's.
func shardTag(base string, i, n int) string {
	if i == 0 {
		return base
	}
	want := (hashSlot(base) + i*clusterSlots/n) % clusterSlots
	for k := 0; ; k++ {
		t := base + strconv.Itoa(i) + "_" + strconv.FormatInt(int64(k), 36)
		if hashSlot(t) == want {
			return t
		}
	}
}

// maxShards bounds Config.Shards.
const maxShards = 64

// initShards builds the shards from the store's keys: one for shards=1,
// with exactly the keys a single-shard scheduler uses.
func (s *Scheduler) initShards(base storage.Keys, n int) {
	s.shards = make([]*shard, n)
	s.byTag = map[string]*shard{}
	for i := range n {
		k := base
		k.Tag = shardTag(base.Tag, i, n)
		sh := newShard(i, k)
		s.shards[i] = sh
		s.byTag[k.Tag] = sh
	}
	for _, sh := range s.shards {
		v := *s
		v.keys, v.pfx, v.common, v.shards = sh.keys, sh.pfx, sh.common, []*shard{sh}
		sh.view = &v
	}
}

// shardOfTenant is the shard that holds tenant's lanes and jobs.
func (s *Scheduler) shardOfTenant(tenant string) *shard {
	if len(s.shards) == 1 {
		return s.shards[0]
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenant))
	return s.shards[int(h.Sum32())%len(s.shards)]
}

var tagPattern = regexp.MustCompile(`^[A-Za-z0-9]+_[0-9a-z]+$`)

// shardOfID is the shard that holds job id: its tag is the id's suffix
// after the last "-" (none: shard 0). A tag of a shard not configured now
// (N changed since) still names the job's keys.
func (s *Scheduler) shardOfID(id string) *shard {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return s.shards[0]
	}
	tag := id[i+1:]
	if sh, ok := s.byTag[tag]; ok {
		return sh
	}
	if !tagPattern.MatchString(tag) {
		return s.shards[0]
	}
	k := s.shards[0].keys
	k.Tag = tag
	return newShard(-1, k)
}

// kid and kt are the keys of job id's and of tenant's shard.
func (s *Scheduler) kid(id string) storage.Keys    { return s.shardOfID(id).keys }
func (s *Scheduler) kt(tenant string) storage.Keys { return s.shardOfTenant(tenant).keys }

// newJobID is a new id for a job of tenant, naming its shard.
func (s *Scheduler) newJobID(tenant string) string {
	id := NewID(s.cfg.Now())
	if sh := s.shardOfTenant(tenant); sh.i != 0 {
		id += "-" + sh.keys.Tag
	}
	return id
}

// route is the shard a script call runs on: the job's for a call about
// one job, the tenant's for a submit or a queue page, and otherwise the
// scheduler's own first shard (a shard view's only one).
func (s *Scheduler) route(c scriptCall) *shard {
	if len(s.shards) == 1 && len(s.byTag) == 1 {
		return s.shards[0]
	}
	switch c := c.(type) {
	case submitCall:
		return s.shardOfTenant(c.Tenant)
	case submitBatch:
		// A batch holds calls to one shard (batch.go).
		if len(c) > 0 {
			return s.shardOfTenant(c[0].Tenant)
		}
	case succeedBatch:
		if len(c) > 0 {
			return s.shardOfID(c[0].ID)
		}
	case queuePageCall:
		return s.shardOfTenant(c.Tenant)
	case renewCall:
		return s.shardOfID(c.ID)
	case handBackCall:
		return s.shardOfID(c.ID)
	case progressCall:
		return s.shardOfID(c.ID)
	case succeedCall:
		return s.shardOfID(c.ID)
	case failCall:
		return s.shardOfID(c.ID)
	case cancelCall:
		return s.shardOfID(c.ID)
	case positionCall:
		return s.shardOfID(c.ID)
	}
	return s.shards[0]
}

// checkShards refuses to change the number of shards while any shard, old
// or new, holds queued, running or delayed work: a tenant's queue would be
// split between two shards. The count is kept in shard 0's global hash
// (absent: 1). Finished jobs need nothing: their ids name their shard.
func (s *Scheduler) checkShards(ctx context.Context) error {
	c := s.client
	g := s.shards[0].keys.Global()
	was, err := c.Do(ctx, c.B().Hget().Key(g).Field("shards").Build()).AsInt64()
	if err != nil && !rueidis.IsRedisNil(err) {
		return fmt.Errorf("scheduler: shards: %w", err)
	}
	if was == 0 {
		was = 1
	}
	n := len(s.shards)
	if int(was) != n {
		all := map[string]storage.Keys{}
		base := s.shards[0].keys
		for _, m := range []int{int(was), n} {
			for i := range m {
				k := base
				k.Tag = shardTag(base.Tag, i, m)
				all[k.Tag] = k
			}
		}
		busy := int64(0)
		for _, k := range all {
			res := c.DoMulti(ctx, c.B().Hmget().Key(k.Global()).Field("pending", "running").Build(),
				c.B().Zcard().Key(k.Delayed()).Build())
			v, err := res[0].AsStrSlice()
			if err != nil {
				return fmt.Errorf("scheduler: shards: %w", err)
			}
			for _, x := range v {
				n, _ := strconv.ParseInt(x, 10, 64)
				busy += max(n, 0)
			}
			d, err := res[1].AsInt64()
			if err != nil {
				return fmt.Errorf("scheduler: shards: %w", err)
			}
			busy += d
		}
		if busy > 0 {
			return &InvalidError{"scheduler.shards", fmt.Sprintf(
				"changing from %d to %d shards needs an empty queue (%d jobs queued, running or waiting for a retry); stop submitting, let it drain, then restart with the new value", was, n, busy)}
		}
	}
	if err := c.Do(ctx, c.B().Hset().Key(g).FieldValue().FieldValue("shards", strconv.Itoa(n)).Build()).Error(); err != nil {
		return fmt.Errorf("scheduler: shards: %w", err)
	}
	return nil
}

// Shards is the number of shards (Config.Shards).
func (s *Scheduler) Shards() int { return len(s.shards) }

// ShardOf is the shard index (0..Shards()-1) of tenant (tests, tools).
func (s *Scheduler) ShardOf(tenant string) int { return s.shardOfTenant(tenant).i }

// peekCall reads a shard's head for a free slot choosing where to take
// from (lua/peek.lua).
type peekCall struct{}

func (peekCall) script() string             { return scriptPeek }
func (peekCall) keys(storage.Keys) []string { return nil }
func (peekCall) argv() []string             { return nil }
func (peekCall) noClock() bool              { return true }

// offerFloorCall is an offer (lua/offer.lua) that serves lanes from at
// least the system's virtual times (see Clocks above).
type offerFloorCall struct {
	slotCall
	Floor, RelaxFloor float64
}

func (c offerFloorCall) argv() []string {
	return append(c.slotCall.argv(), ftoa(c.Floor), ftoa(c.RelaxFloor))
}

// head is one shard's peek, and its place in a slot's order.
type head struct {
	sh                *shard
	pending           int64
	head, rhead       float64
	hasHead, hasRHead bool
	vt, rvt           float64
	ok                bool
	err               error
	class             int
	key               float64
	tiebreak          int
}

// peekAll reads every shard's head and clock in one round trip per node.
func (s *Scheduler) peekAll(ctx context.Context) []head {
	res := s.execMulti(ctx, s.shards, peekCall{})
	out := make([]head, len(s.shards))
	for i, r := range res {
		h := head{sh: s.shards[i]}
		v, err := r.AsStrSlice()
		if err != nil || len(v) != 5 {
			h.err = fmt.Errorf("peek: %w", err)
			out[i] = h
			continue
		}
		h.pending, _ = strconv.ParseInt(v[0], 10, 64)
		if v[1] != "" {
			h.head, _ = strconv.ParseFloat(v[1], 64)
			h.hasHead = true
		}
		if v[2] != "" {
			h.rhead, _ = strconv.ParseFloat(v[2], 64)
			h.hasRHead = true
		}
		h.vt, _ = strconv.ParseFloat(v[3], 64)
		h.rvt, _ = strconv.ParseFloat(v[4], 64)
		h.ok = true
		out[i] = h
	}
	return out
}

// order sorts shards for a free slot: those with a normal lane ready by
// max(head, C), then those with only relax lanes by max(head, relax C),
// then those with pending work but no lane ready (at their caps), then the
// rest. It returns C and the relax C.
func order(hs []head, rot int) (float64, float64) {
	var c, rc float64
	for _, h := range hs {
		c, rc = max(c, h.vt), max(rc, h.rvt)
	}
	for i := range hs {
		h := &hs[i]
		h.tiebreak = (i + rot) % len(hs)
		switch {
		case !h.ok:
			h.class = 4
		case h.hasHead:
			h.class, h.key = 0, max(h.head, c)
		case h.hasRHead:
			h.class, h.key = 1, max(h.rhead, rc)
		case h.pending > 0:
			h.class = 2
		default:
			h.class = 3
		}
	}
	slices.SortStableFunc(hs, func(a, b head) int {
		switch {
		case a.class != b.class:
			return a.class - b.class
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return a.tiebreak - b.tiebreak
	})
	return c, rc
}

// execMulti runs the same script call on several shards at once (one
// pipeline per node).
func (s *Scheduler) execMulti(ctx context.Context, shards []*shard, c scriptCall) []rueidis.RedisResult {
	out := make([]rueidis.RedisResult, len(shards))
	keys, argv := make([][]string, len(shards)), make([][]string, len(shards))
	for i, sh := range shards {
		keys[i], argv[i] = s.args(sh, c)
	}
	if !s.runner.functions.Load() {
		for i := range shards {
			out[i] = s.runner.call(ctx, c.script(), keys[i], argv[i])
		}
		return out
	}
	cmds := make(rueidis.Commands, len(shards))
	for i := range shards {
		cmds[i] = s.client.B().Fcall().Function(library.scripts[c.script()].fn).Numkeys(int64(len(keys[i]))).
			Key(keys[i]...).Arg(argv[i]...).Build()
	}
	for i, r := range s.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil && strings.Contains(err.Error(), "Function not found") {
			r = s.runner.call(ctx, c.script(), keys[i], argv[i]) // loads the library again
		}
		out[i] = r
	}
	return out
}
