package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// CommandCalls returns how many times the server has run each command
// (lower-case name → calls), from INFO commandstats: commands run inside
// scripts and functions are counted too. Benchmarks and tests take its
// difference over a run.
func (s *Store) CommandCalls(ctx context.Context) (map[string]int64, error) {
	info, err := s.Client.Do(ctx, s.Client.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		return nil, fmt.Errorf("commandstats: %w", err)
	}
	return ParseCommandStats(info)
}

// ParseCommandStats reads INFO commandstats lines of the form
// "cmdstat_<name>:calls=<n>,usec=…"; other lines are skipped.
func ParseCommandStats(info string) (map[string]int64, error) {
	calls := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":calls=")
		if !ok {
			return nil, fmt.Errorf("commandstats: %q has no calls", line)
		}
		n, _, _ := strings.Cut(fields, ",")
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("commandstats: %q: %w", line, err)
		}
		calls[name] = v
	}
	return calls, nil
}

// TotalCalls is the sum of a CommandCalls answer.
func TotalCalls(calls map[string]int64) int64 {
	var total int64
	for _, n := range calls {
		total += n
	}
	return total
}
