package scheduler

import (
	"context"
	"crypto/sha1"
	"embed"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/redis/rueidis"
)

// The scripts live in lua/*.lua, each headed by its KEYS, ARGV and reply.
// lib.lua holds what they share. They are loaded as one Redis Functions
// library named after a hash of their text (so two versions of Easel on one
// Redis never call each other's code) where the server has FUNCTION, and
// run by EVALSHA otherwise (the embedded Redis).
//
//go:embed lua/*.lua
var luaFS embed.FS

// luaScript is one script: its Functions name and its EVALSHA form.
type luaScript struct {
	name string
	fn   string
	eval *rueidis.Lua
}

// luaLibrary is every script, and the Functions library that holds them.
type luaLibrary struct {
	name    string
	code    string
	scripts map[string]*luaScript
}

// Script names, one per file in lua/.
const (
	scriptSubmit   = "submit"
	scriptOffer    = "offer"
	scriptWithdraw = "withdraw"
	// scriptCaps records a slot's capabilities for routing (routing.go).
	scriptCaps     = "caps"
	scriptRenew    = "renew"
	scriptProgress = "progress"
	scriptSucceed  = "succeed"
	scriptFail     = "fail"
	scriptHandBack = "handback"
	scriptCancel   = "cancel"
	scriptPromote  = "promote"
	scriptReclaim  = "reclaim"
	scriptPosition = "position"
	// scriptQueuePage lists a page of a tenant's active jobs (queuepage.go).
	scriptQueuePage = "queuepage"
	// scriptPositions announces queued jobs' changed places (positions.go).
	scriptPositions = "positions"
	// scriptPeek reads a shard's head for a free slot (shards.go).
	scriptPeek = "peek"
	// scriptSpend takes a token of a shared budget (slack_kv.go); it is
	// standalone: no lib.lua state, its one key outside the shard's tag.
	scriptSpend = "spend"
	// scriptPruneAds deletes expired backend ads unless re-advertised
	// since they were read (catalog.go); standalone like spend.
	scriptPruneAds = "pruneads"
)

// standalone scripts run without lib.lua's init and flush: they touch only
// their own KEYS, none of the shard's.
var standalone = map[string]bool{scriptSpend: true, scriptPruneAds: true}

var scriptNames = []string{scriptSubmit, scriptOffer, scriptWithdraw, scriptCaps, scriptRenew,
	scriptProgress, scriptSucceed, scriptFail, scriptHandBack, scriptCancel, scriptPromote, scriptReclaim, scriptPosition,
	scriptQueuePage, scriptPositions, scriptPeek, scriptSpend, scriptPruneAds}

// library is built once from the embedded files.
var library = mustBuildLibrary()

func mustBuildLibrary() *luaLibrary {
	read := func(name string) string {
		b, err := luaFS.ReadFile("lua/" + name + ".lua")
		if err != nil {
			panic(err) // embedded at build time: cannot fail at run time
		}
		return string(b)
	}
	lib := read("lib")
	h := sha1.New()
	h.Write([]byte(lib))
	bodies := map[string]string{}
	for _, n := range scriptNames {
		bodies[n] = read(n)
		h.Write([]byte(bodies[n]))
	}
	l := &luaLibrary{name: "easel_" + hex.EncodeToString(h.Sum(nil))[:12], scripts: map[string]*luaScript{}}
	var code strings.Builder
	code.WriteString("#!lua name=" + l.name + "\n" + lib + "\n")
	for _, n := range scriptNames {
		if standalone[n] {
			sc := &luaScript{name: n, fn: l.name + "_" + n, eval: rueidis.NewLuaScript(bodies[n])}
			fmt.Fprintf(&code, "redis.register_function('%s', function(KEYS, ARGV)\n%s\nend)\n", sc.fn, bodies[n])
			l.scripts[n] = sc
			continue
		}
		sc := &luaScript{name: n, fn: l.name + "_" + n,
			eval: rueidis.NewLuaScript(lib + "\ninit(KEYS, ARGV)\nlocal reply = (function()\n" + bodies[n] + "\nend)()\nflush()\nreturn reply\n")}
		// KEYS and ARGV as parameter names let one body serve both forms;
		// every body ends by writing back the hashes it cached (flush).
		fmt.Fprintf(&code, "redis.register_function('%s', function(KEYS, ARGV)\ninit(KEYS, ARGV)\nlocal reply = (function()\n%s\nend)()\nflush()\nreturn reply\nend)\n", sc.fn, bodies[n])
		l.scripts[n] = sc
	}
	l.code = code.String()
	return l
}

// runner calls the scripts on one Redis, as Functions when it has them.
type runner struct {
	client    rueidis.Client
	functions atomic.Bool
}

// load installs the library on every node (FUNCTION LOAD REPLACE), or falls
// back to EVALSHA when the server has no FUNCTION command.
func (r *runner) load(ctx context.Context) error {
	for addr, node := range r.client.Nodes() {
		err := node.Do(ctx, node.B().FunctionLoad().Replace().FunctionCode(library.code).Build()).Error()
		switch {
		case err == nil:
			r.functions.Store(true)
		case isUnknownCommand(err):
			r.functions.Store(false)
			return nil
		case strings.Contains(err.Error(), "READONLY"):
			// A replica gets the library from its master.
		default:
			return fmt.Errorf("load scripts on %s: %w", addr, err)
		}
	}
	return nil
}

func isUnknownCommand(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "unknown command") || strings.Contains(s, "unknown subcommand")
}

// call runs script name with keys and argv.
func (r *runner) call(ctx context.Context, name string, keys, argv []string) rueidis.RedisResult {
	sc := library.scripts[name]
	if !r.functions.Load() {
		return sc.eval.Exec(ctx, r.client, keys, argv)
	}
	fcall := func() rueidis.RedisResult {
		return r.client.Do(ctx, r.client.B().Fcall().Function(sc.fn).Numkeys(int64(len(keys))).Key(keys...).Arg(argv...).Build())
	}
	res := fcall()
	if err := res.Error(); err != nil && strings.Contains(err.Error(), "Function not found") {
		// A node that joined or restarted without the library: load it again.
		if lerr := r.load(ctx); lerr != nil {
			return res
		}
		res = fcall()
	}
	return res
}
