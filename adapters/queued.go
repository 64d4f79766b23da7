package adapters

import (
	"strings"
	"time"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// QueuedLine is a queued job's status line for a chat message, from its
// queued or position event: its place in line and the estimated wait, or,
// while every GPU backend is down, which ones and since when. stamp renders
// a time for the platform (Discord and Slack show it in the reader's own
// time zone).
func QueuedLine(loc string, ev scheduler.Event, stamp func(time.Time) string) string {
	line := commands.T(loc, "queued", ev.Position)
	if ev.Waiting != nil && len(ev.Waiting.Backends) > 0 {
		parts := make([]string, len(ev.Waiting.Backends))
		for i, b := range ev.Waiting.Backends {
			parts[i] = commands.T(loc, "backend_down", b.Name, stamp(b.Since))
		}
		return line + commands.T(loc, "waiting_backend", strings.Join(parts, ", "))
	}
	if ev.ETASec > 0 {
		line += commands.T(loc, "eta", WaitText(time.Duration(ev.ETASec*float64(time.Second))))
	}
	return line
}

// WaitText rounds an estimated wait for people: seconds under a minute and
// a half, else minutes.
func WaitText(d time.Duration) string {
	if d < 90*time.Second {
		return max(d.Round(time.Second), time.Second).String()
	}
	return d.Round(time.Minute).String()
}
