package apiclient

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// RunImagine is `easel imagine [flags] "prompt"`: it submits the prompt,
// shows a progress bar fed by the job's events, and writes the images.
// Flags may come before or after the prompt. Exit codes: 0 done, 1 the job
// failed or was canceled, 2 bad usage or a refused request, 130 interrupted
// (the job is canceled on the server).
func RunImagine(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("imagine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output file (default easel-<id>.png; -1.png, -2.png … for several images)")
	fs.StringVar(out, "out", "", "same as -o")
	server := fs.String("server", envOr("EASEL_SERVER", "http://127.0.0.1:8080"), "Easel server URL (env EASEL_SERVER)")
	key := fs.String("key", os.Getenv("EASEL_API_KEY"), "API key (env EASEL_API_KEY)")
	var r JobRequest
	fs.StringVar(&r.NegativePrompt, "negative", "", "negative prompt")
	fs.IntVar(&r.Width, "width", 0, "width in pixels (default: server's, 512)")
	fs.IntVar(&r.Height, "height", 0, "height in pixels (default: server's, 512)")
	fs.IntVar(&r.Steps, "steps", 0, "sampling steps (default: server's, 20)")
	fs.Float64Var(&r.CFGScale, "cfg", 0, "guidance scale (default: server's, 7)")
	seed := fs.Int64("seed", -1, "seed (-1: random)")
	fs.StringVar(&r.Sampler, "sampler", "", "sampler name")
	fs.StringVar(&r.Model, "model", "", "model name")
	fs.IntVar(&r.Count, "n", 1, "number of images")
	fs.IntVar(&r.Count, "count", 1, "same as -n")
	quiet := fs.Bool("quiet", false, "no progress output")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: easel imagine [flags] "prompt"`)
		fs.PrintDefaults()
	}
	var prompt []string
	rest := args
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		prompt = append(prompt, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	r.Prompt = strings.Join(prompt, " ")
	if strings.TrimSpace(r.Prompt) == "" {
		fs.Usage()
		return 2
	}
	r.Seed = seed
	c, err := New(*server, *key, nil)
	if err != nil {
		fmt.Fprintln(stderr, "easel:", err)
		return 2
	}
	sub, err := c.Submit(ctx, r, "")
	if err != nil {
		return apiFail(stderr, err)
	}
	logf := func(format string, a ...any) {
		if !*quiet {
			fmt.Fprintf(stderr, format+"\n", a...)
		}
	}
	if sub.Position > 0 {
		logf("queued #%d (job %s)", sub.Position, sub.ID)
	} else {
		logf("starting (job %s)", sub.ID)
	}
	var bar *progressbar.ProgressBar
	var final Event
	err = c.Events(ctx, sub.ID, 0, func(e Event) error {
		switch e.Type {
		case "queued":
			if e.Seq > 1 { // the first was reported by the submit
				logf("queued #%d", e.Position)
			}
		case "started":
			logf("running on %s", e.Backend)
		case "progress":
			if *quiet || e.Steps == 0 {
				return nil
			}
			if bar == nil {
				bar = progressbar.NewOptions(e.Steps, progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("sampling"), progressbar.OptionShowCount(),
					progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
			}
			_ = bar.Set(e.Step)
			if e.ETASec > 0 {
				bar.Describe(fmt.Sprintf("sampling, ~%s left", (time.Duration(e.ETASec * float64(time.Second))).Round(time.Second)))
			}
		case "retrying":
			logf("retrying in %.1fs: %s", e.AfterS, e.Reason)
		default:
			final = e
		}
		return nil
	})
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.Cancel(cctx, sub.ID)
			fmt.Fprintln(stderr, "easel: interrupted; job canceled")
			return 130
		}
		fmt.Fprintln(stderr, "easel:", err)
		return 1
	}
	switch final.Type {
	case "failed":
		fmt.Fprintf(stderr, "easel: job failed: %s\n", final.Message)
		return 1
	case "canceled":
		fmt.Fprintf(stderr, "easel: job canceled by %s\n", final.By)
		return 1
	}
	paths := outputPaths(*out, sub.ID, final.Images)
	for i, p := range paths {
		img, err := c.Image(ctx, sub.ID, i)
		if err != nil {
			fmt.Fprintln(stderr, "easel: download:", err)
			return 1
		}
		if err := os.WriteFile(p, img, 0o644); err != nil {
			fmt.Fprintln(stderr, "easel:", err)
			return 1
		}
		seed := ""
		if i < len(final.Seeds) {
			seed = fmt.Sprintf(" (seed %d)", final.Seeds[i])
		}
		fmt.Fprintf(stdout, "%s%s\n", p, seed)
	}
	return 0
}

func outputPaths(out, id string, n int) []string {
	if out == "" {
		out = "easel-" + id + ".png"
	}
	if n <= 1 {
		return []string{out}
	}
	ext := filepath.Ext(out)
	base := strings.TrimSuffix(out, ext)
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("%s-%d%s", base, i+1, ext)
	}
	return paths
}

func apiFail(stderr io.Writer, err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		msg := ae.Message
		if ae.RetryAfter > 0 && !strings.Contains(msg, "try again") {
			msg += fmt.Sprintf(" (retry after %s)", ae.RetryAfter)
		}
		fmt.Fprintln(stderr, "easel:", msg)
		if ae.Status < 500 {
			return 2
		}
		return 1
	}
	fmt.Fprintln(stderr, "easel:", err)
	return 1
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
