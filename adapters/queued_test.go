package adapters_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters"
	"github.com/easelbot/easel/scheduler"
)

func TestQueuedLine(t *testing.T) {
	t.Parallel()
	stamp := func(t time.Time) string { return t.UTC().Format(time.TimeOnly) }
	down := &scheduler.Waiting{Backends: []scheduler.DownBackend{
		{Name: "gpu0", Since: time.Date(2026, 12, 1, 19, 2, 11, 0, time.UTC)},
		{Name: "gpu1", Since: time.Date(2026, 12, 1, 19, 3, 0, 0, time.UTC)}}}
	for _, tc := range []struct {
		loc  string
		ev   scheduler.Event
		want string
	}{
		{"en", scheduler.Event{Position: 3}, "Queued — #3 in line"},
		{"en", scheduler.Event{Position: 2, ETASec: 41.6}, "Queued — #2 in line, ~42s"},
		{"en", scheduler.Event{Position: 9, ETASec: 600}, "Queued — #9 in line, ~10m0s"},
		{"en", scheduler.Event{Position: 1, ETASec: 12, Waiting: down},
			"Queued — #1 in line — waiting for a GPU backend (gpu0 unreachable since 19:02:11, gpu1 unreachable since 19:03:00)"},
		{"de", scheduler.Event{Position: 1, Waiting: &scheduler.Waiting{}}, "In der Warteschlange — Platz 1"},
		{"de", scheduler.Event{Position: 1, Waiting: &scheduler.Waiting{Backends: down.Backends[:1]}},
			"In der Warteschlange — Platz 1 — wartet auf ein GPU-Backend (gpu0 nicht erreichbar seit 19:02:11)"},
		{"ja", scheduler.Event{Position: 2, Waiting: &scheduler.Waiting{Backends: down.Backends[:1]}},
			"待機中 — 2 番目 — GPU バックエンドを待っています（gpu0 は 19:02:11 から応答なし）"},
	} {
		require.Equal(t, tc.want, adapters.QueuedLine(tc.loc, tc.ev, stamp), "%s %+v", tc.loc, tc.ev)
	}
}

func TestWaitText(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		200 * time.Millisecond: "1s", 42400 * time.Millisecond: "42s", 89 * time.Second: "1m29s",
		95 * time.Second: "2m0s", 20 * time.Minute: "20m0s",
	} {
		require.Equal(t, want, adapters.WaitText(d), d.String())
	}
}
