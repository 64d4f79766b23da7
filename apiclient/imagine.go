package apiclient

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/schollz/progressbar/v3"
)

// Defaults of `easel imagine`.
const (
	defaultServer = "http://127.0.0.1:8080"
	// cancelTimeout bounds the DELETE sent after an interrupt.
	cancelTimeout = 5 * time.Second
)

// Exit codes of RunImagine.
const (
	exitOK          = 0
	exitFailed      = 1   // the job failed or was canceled, or I/O failed
	exitUsage       = 2   // bad flags or a request the server refused (4xx)
	exitInterrupted = 130 // ctx ended; the job was canceled on the server
)

// imagineOptions are the parsed flags of `easel imagine`.
type imagineOptions struct {
	req    JobRequest
	out    string
	server string
	key    string
	quiet  bool
}

// RunImagine is `easel imagine [flags] "prompt"`: it submits the prompt,
// prints its place in the queue and a progress bar fed by the job's events
// on stderr, writes the images and prints their paths on stdout. Flags may
// come before or after the prompt; words after "--" are all prompt.
// Canceling ctx (Ctrl-C in main) cancels the job on the server. It returns
// the exit code: 0 done, 1 the job failed or was canceled (or a download or
// write failed), 2 bad usage or a request the server refused, 130
// interrupted.
func RunImagine(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseImagine(args, stderr, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage // the flag set printed why
	}
	// A transport of its own, closed on return, so that a test calling
	// RunImagine leaves no idle connections behind.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	c, err := New(opts.server, opts.key, &http.Client{Transport: tr})
	if err != nil {
		fmt.Fprintln(stderr, "easel: --server:", err)
		return exitUsage
	}
	r := &imagineRun{c: c, opts: opts, stdout: stdout, stderr: stderr}
	return r.run(ctx)
}

// parseImagine reads the flags and the prompt. On a bad flag or a missing
// prompt the usage has been written to usageOut.
func parseImagine(args []string, usageOut io.Writer, getenv func(string) string) (imagineOptions, error) {
	var o imagineOptions
	fs := flag.NewFlagSet("imagine", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	fs.StringVar(&o.out, "o", "", "output `file` (default easel-<job id>.png; with several images name-1.png, name-2.png, …)")
	fs.StringVar(&o.out, "out", "", "same as -o")
	fs.StringVar(&o.server, "server", "", "Easel server `URL` (default $EASEL_SERVER, else "+defaultServer+")")
	// No default shown: the usage must never print the key.
	fs.StringVar(&o.key, "key", "", "API `key` (default $EASEL_API_KEY)")
	fs.StringVar(&o.req.NegativePrompt, "negative", "", "negative `prompt`")
	fs.IntVar(&o.req.Width, "width", 0, "width in `pixels` (default: the server's)")
	fs.IntVar(&o.req.Height, "height", 0, "height in `pixels` (default: the server's)")
	fs.IntVar(&o.req.Steps, "steps", 0, "sampling `steps` (default: the server's)")
	fs.Float64Var(&o.req.CFGScale, "cfg", 0, "guidance `scale` (default: the server's)")
	seed := fs.Int64("seed", 0, "`seed` (default: random)")
	fs.StringVar(&o.req.Sampler, "sampler", "", "sampler `name` (default: the server's)")
	fs.StringVar(&o.req.Model, "model", "", "model `name` (default: the server's)")
	fs.IntVar(&o.req.Count, "n", 0, "number of images (default: the server's, 1)")
	fs.IntVar(&o.req.Count, "count", 0, "same as -n")
	fs.BoolVar(&o.quiet, "quiet", false, "print only the paths of the images and errors")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: easel imagine [flags] "prompt"`)
		fs.PrintDefaults()
	}

	prompt, err := parseInterleaved(fs, args)
	if err != nil {
		return o, err
	}
	o.req.Prompt = strings.Join(prompt, " ")
	if strings.TrimSpace(o.req.Prompt) == "" {
		fmt.Fprintln(usageOut, "easel: a prompt is required")
		fs.Usage()
		return o, errors.New("no prompt")
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "seed" {
			o.req.Seed = seed
		}
	})
	if o.server == "" {
		o.server = getenv("EASEL_SERVER")
	}
	if o.server == "" {
		o.server = defaultServer
	}
	if o.key == "" {
		o.key = getenv("EASEL_API_KEY")
	}
	return o, nil
}

// parseInterleaved parses args with fs, allowing positional arguments
// between flags (`easel imagine "a fox" -o fox.png`), and returns the
// positional ones. After "--" every argument is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// imagineRun is one run of `easel imagine`.
type imagineRun struct {
	c              *Client
	opts           imagineOptions
	stdout, stderr io.Writer

	bar      *progressbar.ProgressBar
	barSteps int
	barDesc  string
	position int
	// queuedLine is the last position line printed.
	queuedLine string
}

func (r *imagineRun) run(ctx context.Context) int {
	key := "imagine-" + rand.Text()
	sub, err := r.c.Submit(ctx, r.opts.req, key)
	if err != nil {
		if ctx.Err() != nil {
			return r.interruptedSubmit(ctx, key)
		}
		return r.apiFailure(err)
	}
	id := clean(sub.ID) // for messages; requests escape it
	if sub.Position > 0 {
		r.position = sub.Position
		r.logf("queued #%d (job %s)", sub.Position, id)
	} else {
		r.logf("dispatched (job %s)", id)
	}

	var final Event
	err = r.c.Events(ctx, sub.ID, 0, func(e Event) error {
		r.event(e)
		if e.Terminal() {
			final = e
		}
		return nil
	})
	r.clearBar()
	if err != nil {
		if ctx.Err() != nil {
			return r.interrupted(ctx, sub.ID)
		}
		return r.apiFailure(err)
	}
	switch final.Type {
	case EventFailed:
		msg := clean(final.Message)
		if final.Code != "" {
			msg += " (" + clean(final.Code) + ")"
		}
		fmt.Fprintf(r.stderr, "easel: job %s failed: %s\n", id, msg)
		return exitFailed
	case EventCanceled:
		fmt.Fprintf(r.stderr, "easel: job %s was canceled by %s\n", id, clean(final.By))
		return exitFailed
	}
	return r.download(ctx, sub.ID, final)
}

// event reports one event on stderr.
func (r *imagineRun) event(e Event) {
	switch e.Type {
	case EventQueued:
		// The first is the submit's, reported already; later ones (a job
		// put back in line) are news.
		if e.Seq > 1 && e.Position > 0 && e.Position != r.position {
			r.position = e.Position
			r.logf("queued #%d", e.Position)
		}
	case EventPosition:
		// The place in line changed, or why the job waits.
		line := fmt.Sprintf("queued #%d", e.Position)
		switch {
		case e.Waiting != nil:
			line += ": " + clean(e.Waiting.Message)
		case e.ETASec > 0:
			line += ", about " + formatETA(time.Duration(e.ETASec*float64(time.Second)))
		}
		if line != r.queuedLine {
			r.position, r.queuedLine = e.Position, line
			r.logf("%s", line)
		}
	case EventStarted:
		if e.Attempt > 1 {
			r.logf("running on %s (attempt %d)", clean(e.Backend), e.Attempt)
		} else {
			r.logf("running on %s", clean(e.Backend))
		}
	case EventProgress:
		r.progress(e)
	case EventRetrying:
		after := time.Duration(e.AfterS * float64(time.Second)).Round(100 * time.Millisecond)
		r.logf("retrying in %s (attempt %d): %s", after, e.Attempt, clean(e.Reason))
	}
}

// progress moves the bar; a new try (or a changed step count) gets a new one.
func (r *imagineRun) progress(e Event) {
	if r.opts.quiet || e.Steps <= 0 {
		return
	}
	if r.bar == nil || r.barSteps != e.Steps {
		r.clearBar()
		r.barSteps, r.barDesc = e.Steps, "sampling"
		r.bar = progressbar.NewOptions(e.Steps,
			progressbar.OptionSetWriter(r.stderr),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(false), // the server's ETA is better informed
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription(r.barDesc))
	}
	_ = r.bar.Set(e.Step)
	desc := "sampling"
	if e.ETASec > 0 {
		desc += ", eta " + formatETA(time.Duration(e.ETASec*float64(time.Second)))
	}
	if desc != r.barDesc {
		r.barDesc = desc
		r.bar.Describe(desc)
	}
}

func formatETA(d time.Duration) string {
	if d < time.Second {
		return "<1s"
	}
	return d.Round(time.Second).String()
}

// clearBar takes the bar off the line so that a message can be printed; the
// next progress event starts a new one.
func (r *imagineRun) clearBar() {
	if r.bar != nil {
		_ = r.bar.Clear()
		r.bar, r.barSteps = nil, 0
	}
}

func (r *imagineRun) logf(format string, a ...any) {
	if r.opts.quiet {
		return
	}
	r.clearBar()
	fmt.Fprintf(r.stderr, format+"\n", a...)
}

// download fetches every image of the succeeded job and writes the files.
func (r *imagineRun) download(ctx context.Context, id string, done Event) int {
	n := done.Images
	seeds := done.Seeds
	if n == 0 {
		j, err := r.c.Job(ctx, id)
		if err != nil {
			return r.downloadFailure(ctx, err)
		}
		n = len(j.Images)
		seeds = nil
		for _, im := range j.Images {
			seeds = append(seeds, im.Seed)
		}
	}
	if n == 0 {
		fmt.Fprintf(r.stderr, "easel: job %s succeeded without images\n", clean(id))
		return exitFailed
	}
	for i := range n {
		img, err := r.c.Image(ctx, id, i)
		if err != nil {
			return r.downloadFailure(ctx, err)
		}
		path := outputPath(r.opts.out, id, i, n, imageExt(img))
		if err := os.WriteFile(path, img, 0o644); err != nil {
			fmt.Fprintln(r.stderr, "easel:", err)
			return exitFailed
		}
		if i < len(seeds) {
			fmt.Fprintf(r.stdout, "%s (seed %d)\n", path, seeds[i])
		} else {
			fmt.Fprintln(r.stdout, path)
		}
	}
	return exitOK
}

func (r *imagineRun) downloadFailure(ctx context.Context, err error) int {
	if ctx.Err() != nil {
		// The job is done; nothing to cancel.
		fmt.Fprintln(r.stderr, "easel: interrupted")
		return exitInterrupted
	}
	fmt.Fprintln(r.stderr, "easel:", clean(err.Error()))
	return exitFailed
}

// interruptedSubmit handles an interrupt while the submit was on its way:
// the server may have queued the job (it can even be running already) with
// the answer lost. The same submit again under the same idempotency key
// names that job (or queues it now), and it is canceled, so an interrupt
// never leaves a job behind that the user was not told of.
func (r *imagineRun) interruptedSubmit(ctx context.Context, key string) int {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer cancel()
	sub, err := r.c.Submit(cctx, r.opts.req, key)
	if err != nil {
		fmt.Fprintln(r.stderr, "easel: interrupted; the job may have been queued:", clean(err.Error()))
		return exitInterrupted
	}
	return r.interrupted(ctx, sub.ID)
}

// interrupted cancels the job on the server, on a context of its own since
// ctx is already done.
func (r *imagineRun) interrupted(ctx context.Context, jobID string) int {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer cancel()
	err := r.c.Cancel(cctx, jobID)
	id := clean(jobID)
	var ae *APIError
	switch {
	case err == nil:
		fmt.Fprintf(r.stderr, "easel: interrupted; job %s canceled\n", id)
	case errors.As(err, &ae) && ae.Status == http.StatusConflict:
		fmt.Fprintf(r.stderr, "easel: interrupted; job %s had already finished\n", id)
	default:
		fmt.Fprintf(r.stderr, "easel: interrupted; could not cancel job %s: %s\n", id, clean(err.Error()))
	}
	return exitInterrupted
}

// apiFailure prints an error: an API answer as "<field>: <message>", exit
// 2 for a refused (4xx) request.
func (r *imagineRun) apiFailure(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		msg := clean(ae.Error())
		if ae.RetryAfter > 0 && !strings.Contains(msg, "try again") {
			msg += fmt.Sprintf(" (try again in %s)", ae.RetryAfter.Round(time.Second))
		}
		fmt.Fprintln(r.stderr, "easel:", msg)
		if ae.Status >= 400 && ae.Status < 500 {
			return exitUsage
		}
		return exitFailed
	}
	msg := clean(err.Error())
	if errors.Is(err, syscall.ECONNREFUSED) {
		msg += fmt.Sprintf(" (is Easel running at %s?)", r.opts.server)
	}
	fmt.Fprintln(r.stderr, "easel:", msg)
	return exitFailed
}

// outputPath is the file of image i of n: out (default easel-<id><ext>),
// numbered name-1.png, name-2.png, … when there are several.
func outputPath(out, id string, i, n int, ext string) string {
	if out == "" {
		out = "easel-" + safeName(id) + ext
	}
	if n <= 1 {
		return out
	}
	e := filepath.Ext(out)
	return fmt.Sprintf("%s-%d%s", strings.TrimSuffix(out, e), i+1, e)
}

// imageExt is the file extension for the image format of b, ".png" when
// unknown.
func imageExt(b []byte) string {
	switch http.DetectContentType(b) {
	case "image/jpeg":
		return ".jpg"
	case "image/webp":
		return ".webp"
	}
	return ".png"
}

// safeName keeps a server-given ID from steering the default file name out
// of the current directory.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_') {
			return r
		}
		return '_'
	}, s)
	if s == "" {
		return "job"
	}
	return s
}

// clean drops control characters from server-given text before it reaches
// a terminal.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}
