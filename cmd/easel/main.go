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
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/easelbot/easel/apiclient"
	"github.com/easelbot/easel/bench"
	"github.com/easelbot/easel/bot"
	"github.com/easelbot/easel/sdclient/comfyui/comfytest"
	"github.com/easelbot/easel/sdclient/fakesd"
)

// command is one subcommand of easel.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "HTTP API, playground, chat bots, scheduler, and workers for configured backends (the default)",
			func(ctx context.Context, args []string, _, stderr io.Writer) int {
				return runRole(ctx, bot.RoleServe, args, stderr)
			}},
		{"worker", "workers only, for the configured backends (GPU machines)",
			func(ctx context.Context, args []string, _, stderr io.Writer) int {
				return runRole(ctx, bot.RoleWorker, args, stderr)
			}},
		{"imagine", "submit a prompt to a running Easel and save the images", apiclient.RunImagine},
		{"config", "check the configuration (config check) or print it, secrets redacted (config print)", runConfig},
		{"health", "exit 0 when the local /healthz answers (container health checks)",
			func(ctx context.Context, args []string, _, stderr io.Writer) int { return runHealth(ctx, args, stderr) }},
		{"fakesd", "run the fake AUTOMATIC1111-compatible backend",
			func(ctx context.Context, args []string, _, stderr io.Writer) int { return runFakeSD(ctx, args, stderr) }},
		{"fakecomfy", "run the fake ComfyUI backend (HTTP and websocket)",
			func(ctx context.Context, args []string, _, stderr io.Writer) int {
				return runFakeComfy(ctx, args, stderr)
			}},
		{"bench", "run the benchmark suite", bench.Run},
		{"version", "print the version and build information",
			func(_ context.Context, _ []string, stdout, _ io.Writer) int {
				fmt.Fprintln(stdout, version())
				return 0
			}},
		{"help", "list the commands, or show one command's flags (easel help CMD)", nil},
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, "usage: easel <command> [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s  %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun \"easel help <command>\" for a command's flags. Configuration: ./easel.yaml\n"+
		"(or --config FILE), every field overridable as EASEL_<SECTION>_<FIELD>; see the README.\n")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "serve"
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "-h" || a == "-help" || a == "--help":
			usage(stdout)
			return 0
		case a == "--version" || a == "-version":
			fmt.Fprintln(stdout, version())
			return 0
		case a != "" && a[0] != '-':
			name, args = a, args[1:]
		}
	}
	if name == "help" {
		if len(args) == 0 {
			usage(stdout)
			return 0
		}
		for _, c := range commands() {
			if c.name == args[0] && c.run != nil {
				fmt.Fprintf(stdout, "easel %s: %s\n\n", c.name, c.summary)
				c.run(ctx, append(args[1:], "-h"), stdout, stdout)
				return 0
			}
		}
		fmt.Fprintf(stderr, "easel help: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			return c.run(ctx, args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "easel: unknown command %q\n", name)
	usage(stderr)
	return 2
}

// version is the module version and VCS revision from the build info.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "easel (no build information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	out := "easel " + v
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		out += " " + rev[:min(12, len(rev))] + dirty
	}
	if at != "" {
		out += " " + at
	}
	return out + " " + bi.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}

// roleFlags are the flags of serve and worker (and of config, which loads
// the configuration the same way).
type roleFlags struct {
	fs         *flag.FlagSet
	configPath *string
	addr       *string
	grace      *time.Duration
}

func newRoleFlags(name string, stderr io.Writer) roleFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return roleFlags{
		fs:         fs,
		configPath: fs.String("config", "", "YAML config file (default ./easel.yaml when present)"),
		addr:       fs.String("addr", "", "HTTP listen address, overrides http.addr (serve)"),
		grace:      fs.Duration("grace", 30*time.Second, "how long a stop waits for running jobs and deliveries"),
	}
}

// load reads the configuration the flags name.
func (f roleFlags) load() (*bot.Config, error) {
	path, explicit := *f.configPath, *f.configPath != ""
	if !explicit {
		path = "easel.yaml"
	}
	cfg, err := bot.LoadConfig(path, explicit, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	if *f.addr != "" {
		cfg.HTTP.Addr = *f.addr
	}
	return cfg, nil
}

// printErr writes err to w, one "easel: " line per problem.
func printErr(w io.Writer, prefix string, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(w, prefix+line)
	}
}

func runRole(ctx context.Context, role bot.Role, args []string, stderr io.Writer) int {
	f := newRoleFlags(string(role), stderr)
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := f.load()
	if err != nil {
		printErr(stderr, "easel: ", err)
		return 2
	}
	log, err := bot.NewLogger(cfg.Log)
	if err != nil {
		fmt.Fprintln(stderr, "easel:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	for _, w := range bot.UnknownEnv(os.Environ(), cfg) {
		log.Warn(w)
	}
	app, err := bot.New(cfg, role, log, bot.Options{})
	if err != nil {
		printErr(stderr, "easel: ", err)
		var ce *bot.ConfigError
		if errors.As(err, &ce) {
			return 2
		}
		return 1
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		printErr(stderr, "easel: ", err)
		return 1
	}
	<-ctx.Done()
	log.Sugar().Infow("stopping; waiting for running jobs and deliveries", "grace", f.grace.String())
	stopCtx, cancelStop := context.WithTimeout(context.Background(), *f.grace)
	defer cancelStop()
	if err := app.Stop(stopCtx); err != nil {
		fmt.Fprintln(stderr, "easel: stop:", err)
		return 1
	}
	return 0
}

const configUsage = `usage: easel config check [serve|worker] [flags]
       easel config print [serve|worker] [flags]

check loads the configuration (file and EASEL_ environment) as the role
would, lists every problem with its field and the variable that sets it,
and exits 1 when there is any; it connects to nothing. print writes the
effective configuration as YAML, secrets redacted. The role defaults to
serve; the flags are the role's (--config FILE).
`

// runConfig is `easel config check|print`.
func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "check" && args[0] != "print") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, configUsage)
			return 0
		}
		fmt.Fprint(stderr, configUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	role := bot.RoleServe
	if len(args) > 0 && (args[0] == "serve" || args[0] == "worker") {
		role, args = bot.Role(args[0]), args[1:]
	}
	f := newRoleFlags("config "+sub, stderr)
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := f.load()
	if err == nil {
		err = bot.Check(cfg, role)
	}
	for _, w := range bot.UnknownEnv(os.Environ(), cfg) {
		fmt.Fprintln(stderr, "easel: warning:", w)
	}
	if err != nil {
		printErr(stderr, "easel: ", err)
		return 1
	}
	if sub == "print" {
		eff, err := bot.Effective(cfg, role)
		if err != nil {
			printErr(stderr, "easel: ", err)
			return 1
		}
		out, err := bot.Redacted(eff)
		if err != nil {
			fmt.Fprintln(stderr, "easel:", err)
			return 1
		}
		_, _ = stdout.Write(out)
		return 0
	}
	fmt.Fprintf(stdout, "configuration OK for easel %s\n", role)
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

func runFakeComfy(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("fakecomfy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8188", "listen address")
	step := fs.Duration("step", 50*time.Millisecond, "time per sampling step")
	previews := fs.Bool("previews", true, "send a binary JPEG preview frame after every step")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *step <= 0 {
		*step = time.Nanosecond
	}
	cfg := comfytest.Config{StepDuration: *step, NoPreviews: !*previews}
	if err := comfytest.Run(ctx, *addr, cfg, func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }); err != nil {
		fmt.Fprintln(stderr, "easel fakecomfy:", err)
		return 1
	}
	return 0
}
