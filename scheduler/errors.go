package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/rueidis"
)

var (
	// ErrNotFound says there is no such job (or its record expired).
	ErrNotFound = errors.New("job not found")
	// ErrFinished says the job already ended; it cannot be canceled.
	ErrFinished = errors.New("job already finished")
	// ErrStale says the caller's attempt is no longer the job's live attempt
	// (the lease was lost, or the job was canceled); stop working on it.
	ErrStale = errors.New("attempt is stale")
)

// InvalidError is bad input to the scheduler, naming the field.
type InvalidError struct {
	Field   string
	Message string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Message) }

// Unavailable reports whether err means Redis did not answer in time or
// could not be reached (an outage, a restart, a failover) rather than a
// fault of the request or of Easel: callers answer "retry shortly" (the
// HTTP API's 503). It keeps the Redis client's error types inside the
// scheduler.
func Unavailable(err error) bool {
	var ne net.Error
	var re *rueidis.RedisError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, rueidis.ErrClosing),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	case errors.As(err, &ne):
		return true
	case errors.As(err, &re):
		// A restarting or failing-over server.
		msg := re.Error()
		return re.IsLoading() || re.IsTryAgain() || re.IsClusterDown() ||
			strings.HasPrefix(msg, "MASTERDOWN") || strings.HasPrefix(msg, "READONLY")
	}
	return false
}
