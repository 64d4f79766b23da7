package scheduler

import (
	"errors"
	"fmt"
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
