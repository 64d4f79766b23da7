package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/easelbot/easel/scheduler"
)

// discordOrigin is a Discord job's origin with the real field lengths: a
// snowflake application, channel, guild and user id, an interaction token
// of Discord's usual length (about 200 characters).
var discordOrigin = json.RawMessage(`{"kind":"discord","app_id":"1180000000000000000","token":"` +
	strings.Repeat("aW50ZXJhY3Rpb246MTE4MDAwMDAwMDAwMDAwMDAwMDpUb2tlbg", 4) +
	`","channel_id":"1180000000000000001","guild_id":"1180000000000000002","user_id":"1180000000000000003","created_ms":1764600000000}`)

// MemoryPerJob queues n jobs with a short prompt and a Discord origin and
// reports Redis used_memory growth per queued job.
func MemoryPerJob(ctx context.Context, url string, n int) (string, string, error) {
	r, err := newRig(ctx, url, 1, false)
	if err != nil {
		return "", "", err
	}
	defer r.close()
	before, err := usedMemory(ctx, r)
	if err != nil {
		return "", "", err
	}
	for i := range n {
		_, err := r.sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "discord:" + strconv.Itoa(1000+i%10), User: strconv.Itoa(i % 50),
			Payload: payload, Origin: discordOrigin, Images: 1})
		if err != nil {
			return "", "", err
		}
	}
	after, err := usedMemory(ctx, r)
	if err != nil {
		return "", "", err
	}
	return fmt.Sprintf("%d bytes per queued job (n=%d)", (after-before)/int64(n), n), "< 1 KiB", nil
}

func usedMemory(ctx context.Context, r *rig) (int64, error) {
	c := r.store.Client
	info, err := c.Do(ctx, c.B().Info().Section("memory").Build()).ToString()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO memory has no used_memory")
}
