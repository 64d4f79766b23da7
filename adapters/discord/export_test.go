package discord

// OnSubmitted makes a run f after each job it submits, before the
// interaction's reply goes out.
func OnSubmitted(a *Adapter, f func(jobID string)) {
	a.mu.Lock()
	a.submitted = f
	a.mu.Unlock()
}
