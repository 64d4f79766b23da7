// Command easel is the one binary of Easel; the subcommand picks the role.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/easelbot/easel/apiclient"
	"github.com/easelbot/easel/bench"
	"github.com/easelbot/easel/bot"
	"github.com/easelbot/easel/sdclient/fakesd"
)

const usage = `usage: easel <command> [flags]

commands:
  serve     HTTP API, playground, scheduler, and workers for configured backends (default)
  worker    workers only, for the configured backends
  imagine   submit a prompt to a running Easel and save the images
  fakesd    run the fake AUTOMATIC1111-compatible backend
  bench     run the benchmark suite
  health    exit 0 when the local /healthz answers (container health checks)

Run "easel <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runRole(ctx, bot.RoleServe, args, stderr)
	case "worker":
		return runRole(ctx, bot.RoleWorker, args, stderr)
	case "imagine":
		return apiclient.RunImagine(ctx, args, stdout, stderr)
	case "fakesd":
		return runFakeSD(ctx, args, stderr)
	case "bench":
		return bench.Run(ctx, args, stdout, stderr)
	case "health":
		return runHealth(ctx, args, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "easel: unknown command %q\n%s", cmd, usage)
	return 2
}

func runRole(ctx context.Context, role bot.Role, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(string(role), flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file (default ./easel.yaml when present)")
	addr := fs.String("addr", "", "HTTP listen address, overrides http.addr (serve)")
	grace := fs.Duration("grace", 30*time.Second, "how long a stop waits for running jobs and deliveries")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	path, explicit := *configPath, *configPath != ""
	if !explicit {
		path = "easel.yaml"
	}
	cfg, err := bot.LoadConfig(path, explicit, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, "easel:", err)
		return 2
	}
	if *addr != "" {
		cfg.HTTP.Addr = *addr
	}
	log, err := bot.NewLogger(cfg.Log)
	if err != nil {
		fmt.Fprintln(stderr, "easel:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	app, err := bot.New(cfg, role, log, bot.Options{})
	if err != nil {
		fmt.Fprintln(stderr, "easel:", err)
		var ce *bot.ConfigError
		if errors.As(err, &ce) {
			return 2
		}
		return 1
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		fmt.Fprintln(stderr, "easel:", err)
		return 1
	}
	<-ctx.Done()
	log.Sugar().Infow("stopping; waiting for running jobs and deliveries", "grace", grace.String())
	stopCtx, cancelStop := context.WithTimeout(context.Background(), *grace)
	defer cancelStop()
	if err := app.Stop(stopCtx); err != nil {
		fmt.Fprintln(stderr, "easel: stop:", err)
		return 1
	}
	return 0
}

// runHealth is the container HEALTHCHECK: the runtime image has no curl.
func runHealth(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080/healthz", "health URL")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "easel health:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "easel health:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "easel health: HTTP", resp.StatusCode)
		return 1
	}
	return 0
}

func runFakeSD(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("fakesd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7860", "listen address")
	step := fs.Duration("step", 50*time.Millisecond, "time per sampling step (0: instant)")
	previewEvery := fs.Int("preview-every", 5, "a preview image every N steps (0: none)")
	firstLoad := fs.Duration("first-load", 0, "time the first load of each model takes (0: one step)")
	format := fs.String("format", "png", `result image format: png, or jxl (which clients cannot decode, like SD.Next set to JPEG XL)`)
	noAPI := fs.Bool("no-api", false, "answer 404 on /sdapi, like a server started without --api")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *format != "png" && *format != "jxl" {
		fmt.Fprintf(stderr, "easel fakesd: -format must be png or jxl (got %q)\n", *format)
		return 2
	}
	cfg := fakesd.Config{StepDuration: *step, PreviewEvery: *previewEvery, Instant: *step == 0, NoPreviews: *previewEvery == 0,
		FirstLoadDuration: *firstLoad, SamplesFormat: *format, NoAPI: *noAPI}
	if err := fakesd.Run(ctx, *addr, cfg, func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }); err != nil {
		fmt.Fprintln(stderr, "easel fakesd:", err)
		return 1
	}
	return 0
}
