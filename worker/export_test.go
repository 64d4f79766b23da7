package worker

import "context"

// MarkDownOnly notes backend name down as the idle checks do at their
// second failed check, before they pause its slot: the window in which a
// job dispatched to the slot is handed back rather than run.
func (w *Worker) MarkDownOnly(name string) {
	w.mu.Lock()
	w.healthOf(name).down = true
	w.mu.Unlock()
}

// MarkUp is what a passing idle check does for backend name.
func (w *Worker) MarkUp(ctx context.Context, name string) {
	for _, b := range w.backends {
		if b.Name == name {
			w.markUp(ctx, b)
		}
	}
}
