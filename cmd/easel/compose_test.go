package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/easelbot/easel/bot"
)

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

// TestComposeFiles checks docker-compose.yml against the binary: every
// command and flag it runs exists, every EASEL_ variable is a config field
// (or a secret named in .env.example), ports match the listen addresses,
// and every ${VAR} is explained in .env.example. With Debian's
// docker-compose installed (.ci/run installs it) the file is also validated
// by `docker-compose config`, with and without the demo profile.
func TestComposeFiles(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	example, err := os.ReadFile("../../.env.example")
	require.NoError(t, err)
	dockerfile, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	require.Contains(t, string(dockerfile), `HEALTHCHECK`)
	require.Contains(t, string(dockerfile), `CMD ["easel", "health"]`)

	var cf composeFile
	require.NoError(t, yaml.Unmarshal(raw, &cf))
	known := map[string]bool{}
	for _, n := range bot.EnvNames() {
		known[n] = true
	}
	secrets := map[string]bool{}
	for _, line := range strings.Split(string(example), "\n") {
		if name, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			secrets[strings.TrimSpace(name)] = true
		}
	}
	for _, v := range regexp.MustCompile(`\$\{([A-Z0-9_]+)`).FindAllStringSubmatch(string(raw), -1) {
		require.True(t, secrets[v[1]], "${%s} is used by docker-compose.yml but not explained in .env.example", v[1])
	}
	for name, svc := range cf.Services {
		if !strings.HasPrefix(svc.Image, "easel") {
			continue
		}
		require.NotEmpty(t, svc.Command, name)
		// The command and its flags exist: `easel <cmd> -h` lists them.
		help, _ := exec.Command(easelBin, svc.Command[0], "-h").CombinedOutput()
		require.NotContains(t, string(help), "unknown command", "service %s runs %q", name, svc.Command[0])
		for _, arg := range svc.Command[1:] {
			if strings.HasPrefix(arg, "--") {
				require.Contains(t, string(help), "-"+strings.TrimLeft(arg, "-")+" ", "service %s: flag %s of %s", name, arg, svc.Command[0])
			}
		}
		for env := range svc.Environment {
			require.True(t, known[env] || secrets[env], "service %s sets %s, which Easel does not read", name, env)
		}
		if addr, ok := svc.Environment["EASEL_HTTP_ADDR"]; ok {
			_, port, _ := strings.Cut(addr, ":")
			for _, p := range svc.Ports {
				require.True(t, strings.HasSuffix(p, ":"+port), "service %s publishes %s but listens on %s", name, p, addr)
			}
		}
		if len(svc.Healthcheck.Test) > 2 && svc.Healthcheck.Test[1] == "easel" {
			out, err := exec.Command(easelBin, append(svc.Healthcheck.Test[2:3], "-h")...).CombinedOutput()
			require.NotContains(t, string(out), "unknown command", "%s: %v", name, err)
		}
	}
	if _, err := exec.LookPath("docker-compose"); err != nil {
		require.Empty(t, os.Getenv("CI"), "docker-compose is not installed; .ci/run installs it")
		t.Log("docker-compose not installed: skipping `docker-compose config` (.ci/run installs it)")
		return
	}
	for _, args := range [][]string{{"config", "-q"}, {"--profile", "demo", "config", "-q"}} {
		cmd := exec.Command("docker-compose", append([]string{"-f", "docker-compose.yml", "--env-file", ".env.example"}, args...)...)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "docker-compose %v: %s", args, out)
	}
}
