package comfytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Run serves a fake ComfyUI on addr until ctx ends (`easel fakecomfy`).
func Run(ctx context.Context, addr string, cfg Config, logf func(format string, args ...any)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("comfytest: %w", err)
	}
	s := New(cfg)
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if logf != nil {
		previews := "JPEG previews"
		if s.cfg.NoPreviews {
			previews = "no previews"
		}
		logf("fake ComfyUI on http://%s, %s per step, %s", ln.Addr(), s.cfg.StepDuration, previews)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		s.Close()
		return fmt.Errorf("comfytest: %w", err)
	case <-ctx.Done():
	}
	// Websockets are hijacked connections Shutdown does not wait for:
	// Close ends them and the running prompt first.
	s.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("comfytest: shutdown: %w", err)
	}
	return nil
}
