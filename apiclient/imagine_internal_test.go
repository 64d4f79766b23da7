package apiclient

import (
	"bytes"
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseImagine(t *testing.T) {
	t.Parallel()
	seven := int64(7)
	env := map[string]string{"EASEL_SERVER": "http://env:1", "EASEL_API_KEY": "env-key"}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want imagineOptions
	}{
		{"defaults", []string{"a fox"}, nil,
			imagineOptions{req: JobRequest{Prompt: "a fox"}, server: defaultServer}},
		{"environment", []string{"a fox"}, env,
			imagineOptions{req: JobRequest{Prompt: "a fox"}, server: "http://env:1", key: "env-key"}},
		{"flags beat the environment", []string{"--server", "http://flag:2", "--key", "flag-key", "a fox"}, env,
			imagineOptions{req: JobRequest{Prompt: "a fox"}, server: "http://flag:2", key: "flag-key"}},
		{"flags after the prompt", []string{"a fox", "-o", "fox.png", "--steps", "30", "-n", "2"}, nil,
			imagineOptions{req: JobRequest{Prompt: "a fox", Steps: 30, Count: 2}, out: "fox.png", server: defaultServer}},
		{"flags between words", []string{"a", "--width=640", "red", "--quiet", "fox"}, nil,
			imagineOptions{req: JobRequest{Prompt: "a red fox", Width: 640}, server: defaultServer, quiet: true}},
		{"every flag", []string{"--out", "o.png", "--negative", "blur", "--width", "640", "--height", "480", "--steps", "9",
			"--cfg", "6.5", "--seed", "7", "--sampler", "DDIM", "--model", "m", "--count", "3", "p"}, nil,
			imagineOptions{req: JobRequest{Prompt: "p", NegativePrompt: "blur", Width: 640, Height: 480, Steps: 9,
				CFGScale: 6.5, Seed: &seven, Sampler: "DDIM", Model: "m", Count: 3}, out: "o.png", server: defaultServer}},
		{"seed 0 is a seed", []string{"--seed", "0", "p"}, nil,
			imagineOptions{req: JobRequest{Prompt: "p", Seed: new(int64)}, server: defaultServer}},
		{"after -- all is prompt", []string{"-n", "2", "--", "-o", "is", "--not", "a flag"}, nil,
			imagineOptions{req: JobRequest{Prompt: "-o is --not a flag", Count: 2}, server: defaultServer}},
		{"words then --", []string{"draw", "--", "-x"}, nil,
			imagineOptions{req: JobRequest{Prompt: "draw -x"}, server: defaultServer}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var usage bytes.Buffer
			got, err := parseImagine(tc.args, &usage, func(k string) string { return tc.env[k] })
			require.NoError(t, err, usage.String())
			require.Equal(t, tc.want, got)
			require.Empty(t, usage.String())
		})
	}
}

func TestParseImagineErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"-o", "x.png"}, {"  "}, {"--steps", "many", "p"}, {"--nope", "p"}, {"p", "-o"}} {
		var usage bytes.Buffer
		_, err := parseImagine(args, &usage, func(string) string { return "" })
		require.Error(t, err, "%q", args)
		require.Contains(t, usage.String(), `usage: easel imagine [flags] "prompt"`)
	}
	var usage bytes.Buffer
	_, err := parseImagine([]string{"--help"}, &usage, func(string) string { return "secret" })
	require.ErrorIs(t, err, flag.ErrHelp)
	require.NotContains(t, usage.String(), "secret")
}

func TestOutputPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		out, id string
		i, n    int
		ext     string
		want    string
	}{
		{"", "abc123", 0, 1, ".png", "easel-abc123.png"},
		{"", "abc123", 1, 2, ".png", "easel-abc123-2.png"},
		{"", "abc", 0, 1, ".jpg", "easel-abc.jpg"},
		{"", "../../etc/x", 0, 1, ".png", "easel-______etc_x.png"},
		{"fox.png", "abc", 0, 1, ".jpg", "fox.png"},
		{"fox.png", "abc", 0, 3, ".png", "fox-1.png"},
		{"fox.png", "abc", 2, 3, ".png", "fox-3.png"},
		{"out.v2/fox", "abc", 1, 2, ".png", "out.v2/fox-2"},
	} {
		require.Equal(t, tc.want, outputPath(tc.out, tc.id, tc.i, tc.n, tc.ext), "%+v", tc)
	}
}

func TestImageExt(t *testing.T) {
	t.Parallel()
	require.Equal(t, ".png", imageExt([]byte("\x89PNG\r\n\x1a\n....")))
	require.Equal(t, ".jpg", imageExt([]byte("\xff\xd8\xff\xe0....")))
	require.Equal(t, ".webp", imageExt([]byte("RIFF\x00\x00\x00\x00WEBPVP8 ")))
	require.Equal(t, ".png", imageExt([]byte("what")))
}

func TestClean(t *testing.T) {
	t.Parallel()
	require.Equal(t, "red[31m alert", clean("red\x1b[31m\r\n alert"))
	require.Equal(t, "ünïcode ok", clean("ünïcode ok"))
}
