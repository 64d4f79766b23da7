package blob

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
)

// NewTestSweeper is a sweeper that reports each pass's count.
func NewTestSweeper(s Store, interval time.Duration) (*Sweeper, chan int) {
	w := NewSweeper(s, interval, zap.NewNop())
	w.swept = make(chan int)
	return w, w.swept
}

// Age moves a file's modification time back by by.
func Age(t *testing.T, dir, name string, by time.Duration) {
	t.Helper()
	old := time.Now().Add(-by)
	if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
		t.Fatal(err)
	}
}
