package scheduler

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/easelbot/easel/storage"
)

// Model-aware routing: a job that names a checkpoint (SubmitRequest.Model)
// is dispatched only to a worker slot whose backend has it, preferring one
// that has it loaded. Slots say what their backend has with Advertise; the
// dispatch script reads it from one hash (storage.Keys.SlotCaps). See the
// package documentation for the rule and what it costs fairness.

// Capabilities is what a worker slot's backend can run.
type Capabilities struct {
	// Models are the checkpoints the backend has, by any spelling ModelKey
	// folds together.
	Models []string
	// Loaded is the checkpoint loaded now ("" when unknown).
	Loaded string
}

// maxModelName bounds a model name in a job or an advertisement.
const maxModelName = 256

var (
	hashSuffix = regexp.MustCompile(`\s*\[[0-9a-fA-F]{6,64}\]$`)
	modelExt   = regexp.MustCompile(`(?i)\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$`)
	keyFold    = strings.NewReplacer("/", "_", `\`, "_", "\t", " ", "\n", " ", "\r", " ")
)

// ModelKey is the spelling-insensitive key of a checkpoint or LoRA name,
// the one routing matches on: A1111 lists "sub_name" where ComfyUI lists
// "sub/name.safetensors", and A1111 also accepts and reports a title
// ("name.safetensors [hash]"). It never contains a tab or a newline.
func ModelKey(s string) string {
	s = strings.TrimSpace(hashSuffix.ReplaceAllString(strings.TrimSpace(s), ""))
	s = modelExt.ReplaceAllString(s, "")
	return strings.ToLower(keyFold.Replace(s))
}

// capsCall records (or, with Forget, removes) a slot's capabilities and
// dispatches (lua/caps.lua).
type capsCall struct {
	Member string
	Forget bool
	TTL    time.Duration
	Caps   Capabilities
}

func (capsCall) script() string             { return scriptCaps }
func (capsCall) keys(storage.Keys) []string { return nil }
func (c capsCall) argv() []string {
	if c.Forget {
		return []string{c.Member, "0", "", ""}
	}
	seen := map[string]bool{}
	var b strings.Builder
	for _, m := range c.Caps.Models {
		k := ModelKey(m)
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		b.WriteString(k)
		b.WriteByte('\n')
	}
	return []string{c.Member, mstoa(c.TTL), ModelKey(c.Caps.Loaded), b.String()}
}

// Advertise records what the slot's backend can run, valid for ttl (the
// worker advertises again before then; a slot whose capabilities ran out
// or were never advertised takes only jobs that name no model), and
// dispatches jobs that now have a slot. A job that succeeds on the slot
// makes its model the slot's loaded one without a call. The capabilities
// survive Withdraw (the slot comes back with them) and end with Close.
func (sl *Slot) Advertise(ctx context.Context, caps Capabilities, ttl time.Duration) error {
	if ttl <= 0 {
		return &InvalidError{"ttl", "must be positive"}
	}
	for _, m := range append([]string{caps.Loaded}, caps.Models...) {
		if len(m) > maxModelName {
			return &InvalidError{"models", fmt.Sprintf("a model name must be at most %d bytes (got %d)", maxModelName, len(m))}
		}
	}
	if sl.subs != nil {
		return sl.advertiseMulti(ctx, caps, ttl)
	}
	if err := sl.s.exec(ctx, capsCall{Member: sl.member, TTL: ttl, Caps: caps}).Error(); err != nil {
		return fmt.Errorf("advertise slot: %w", err)
	}
	return nil
}

// forget removes the slot's capabilities.
func (sl *Slot) forget(ctx context.Context) error {
	if err := sl.s.exec(ctx, capsCall{Member: sl.member, Forget: true}).Error(); err != nil {
		return fmt.Errorf("forget slot: %w", err)
	}
	return nil
}
