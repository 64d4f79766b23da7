package scheduler

import (
	"os"
	"testing"
)

func TestZZDump(t *testing.T) { _ = os.WriteFile("/tmp/perf_lib.lua", []byte(library.code), 0o644) }
