package adapters

import "strings"

// ProgressBar renders a fraction (0–1) as a 20-cell text bar for chat
// messages.
func ProgressBar(fraction float64) string {
	n := max(0, min(int(fraction*20+0.5), 20))
	return strings.Repeat("▰", n) + strings.Repeat("▱", 20-n)
}
