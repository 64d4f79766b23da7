//go:build !unix

package bench

import (
	"errors"
	"time"
)

// processCPU needs getrusage, which only unix systems have.
func processCPU() (time.Duration, error) {
	return 0, errors.New("client CPU: getrusage is unix-only")
}
