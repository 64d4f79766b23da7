package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
		Ports       []any             `yaml:"ports"`
		Scale       int               `yaml:"scale"`
		Deploy      struct {
			Replicas int `yaml:"replicas"`
		} `yaml:"deploy"`
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
				require.True(t, strings.HasSuffix(fmt.Sprint(p), ":"+port), "service %s publishes %s but listens on %s", name, p, addr)
			}
		}
		if len(svc.Healthcheck.Test) > 2 && svc.Healthcheck.Test[1] == "easel" {
			out, err := exec.Command(easelBin, append(svc.Healthcheck.Test[2:3], "-h")...).CombinedOutput()
			require.NotContains(t, string(out), "unknown command", "%s: %v", name, err)
		}
	}
	// Every .env.example variable is read by Easel or by the compose file.
	for name := range secrets {
		require.True(t, known[name] || slices.Contains(bot.OtherEnv, name) || !strings.HasPrefix(name, "EASEL_"),
			".env.example sets %s, which neither Easel nor bot.OtherEnv knows", name)
	}
}

// renderCompose renders docker-compose.yml (and more files) with
// `docker-compose config`, with only envFile's values (not a developer's
// .env) and the given profiles.
func renderCompose(t *testing.T, envFile string, more []string, profiles ...string) (composeFile, error) {
	t.Helper()
	args := []string{"-f", "docker-compose.yml"}
	for _, f := range more {
		args = append(args, "-f", f)
	}
	args = append(args, "--env-file", envFile)
	for _, p := range profiles {
		args = append(args, "--profile", p)
	}
	cmd := exec.Command("docker-compose", append(args, "config")...)
	cmd.Dir = "../.."
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return composeFile{}, fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return composeFile{}, err
	}
	var cf composeFile
	require.NoError(t, yaml.Unmarshal(out, &cf), "%s", out)
	return cf, nil
}

// TestComposeServicesLoad renders docker-compose.yml with docker-compose
// (with and without the demo and gpu profiles and the published-Redis
// override) and runs `easel config check` on each Easel service's rendered
// command and environment, as the container would: every service's
// configuration must load, with no unknown variable. No two worker
// services may serve the same backend.
func TestComposeServicesLoad(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		require.Empty(t, os.Getenv("CI"), "docker-compose is not installed; .ci/run installs it")
		t.Skip("docker-compose not installed (.ci/run installs it)")
	}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.env")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	withPW := filepath.Join(dir, "pw.env")
	require.NoError(t, os.WriteFile(withPW, []byte("EASEL_REDIS_PASSWORD=0123456789abcdef\nEASEL_SD_USERNAME=me\nEASEL_SD_PASSWORD=pw\n"), 0o600))

	withS3 := filepath.Join(dir, "s3.env")
	require.NoError(t, os.WriteFile(withS3, []byte("EASEL_STORAGE_BLOBS_KIND=s3\nMINIO_ROOT_PASSWORD=0123456789abcdef\n"), 0o600))

	// Publishing Redis without a password is refused, naming the variable.
	_, err := renderCompose(t, empty, []string{"deploy/compose.redis-port.yml"})
	require.ErrorContains(t, err, "EASEL_REDIS_PASSWORD")

	for _, c := range []struct {
		name     string
		env      string
		more     []string
		profiles []string
	}{
		{"no profile", empty, nil, nil},
		{"gpu", empty, nil, []string{"gpu"}},
		{"demo", empty, nil, []string{"demo"}},
		{"password, redis port, every profile", withPW, []string{"deploy/compose.redis-port.yml"}, []string{"gpu", "demo"}},
		{"images in MinIO", withS3, nil, []string{"s3", "demo"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cf, err := renderCompose(t, c.env, c.more, c.profiles...)
			require.NoError(t, err)
			require.Contains(t, cf.Services, "easel")
			backends := map[string]string{}
			for name, svc := range cf.Services {
				if !strings.HasPrefix(svc.Image, "easel") || (svc.Command[0] != "serve" && svc.Command[0] != "worker") {
					continue
				}
				cmd := exec.Command(easelBin, append([]string{"config", "check"}, svc.Command...)...)
				cmd.Dir = t.TempDir()
				cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
				for k, v := range svc.Environment {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "service %s: easel config check %v:\n%s", name, svc.Command, out)
				require.NotContains(t, string(out), "warning", "service %s", name)
				var list []struct {
					Name string `yaml:"name"`
				}
				require.NoError(t, yaml.Unmarshal([]byte(svc.Environment["EASEL_BACKENDS"]), &list), name)
				for _, b := range list {
					require.Empty(t, backends[b.Name], "services %s and %s both run backend %s", backends[b.Name], name, b.Name)
					backends[b.Name] = name
				}
				require.LessOrEqual(t, svc.Scale, 1, "service %s", name)
				require.LessOrEqual(t, svc.Deploy.Replicas, 1, "service %s", name)
			}
			// Open mode trusts the Docker bridge: the API is then published
			// on the host's loopback only, unless the owner says otherwise.
			easelSvc := cf.Services["easel"]
			if easelSvc.Environment["EASEL_HTTP_TRUSTED_NETWORKS"] != "" {
				require.Len(t, easelSvc.Ports, 1)
				require.Contains(t, fmt.Sprint(easelSvc.Ports[0]), "127.0.0.1")
			}
			if strings.Contains(c.name, "redis port") {
				require.NotEmpty(t, cf.Services["redis"].Ports)
				require.Contains(t, cf.Services["easel"].Environment["EASEL_REDIS_URL"], ":0123456789abcdef@")
			}
		})
	}
}
