package bot

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoSleepPollOnJobPath keeps sleep-and-poll loops off the job and event
// path: every wait there is a blocking Redis read (XREADGROUP BLOCK, XREAD
// BLOCK, BLPOP), a channel, or a timer for a deadline (lease renewal, retry
// backoff). The one permitted poll, A1111's /progress, uses a ticker in
// sdclient/a1111, outside this check.
func TestNoSleepPollOnJobPath(t *testing.T) {
	banned := regexp.MustCompile(`time\.Sleep\(|time\.Tick\(`)
	for _, dir := range []string{"scheduler", "worker", "commands", "adapters", "storage", "bot"} {
		err := filepath.WalkDir(filepath.Join("..", dir), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			// The fakes of other servers (discordtest, slackfake) stand in
			// for the outside world, whose latency they may simulate; they
			// are not Easel's job path.
			if d.IsDir() && (strings.HasSuffix(d.Name(), "test") || d.Name() == "slackfake") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i, line := range strings.Split(string(src), "\n") {
				require.False(t, banned.MatchString(line), "%s:%d sleeps on the job path: %s", path, i+1, strings.TrimSpace(line))
			}
			return nil
		})
		require.NoError(t, err)
	}
}
