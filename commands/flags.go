package commands

import (
	"errors"
	"strconv"
	"strings"
)

// Aspects maps aspect ratios to sizes (multiples of 64, about 0.4 MP); the
// Discord option and the --ar flag share them.
var Aspects = map[string][2]int{
	"1:1": {512, 512}, "3:4": {576, 768}, "4:3": {768, 576}, "9:16": {576, 1024}, "16:9": {1024, 576},
}

// FlagHelp explains the flag syntax of text commands (Slack mentions and
// /imagine).
const FlagHelp = "`a lighthouse at dusk --ar 16:9 --steps 30 --seed 42 --no fog --n 2`\n" +
	"Flags: `--ar` 1:1, 3:4, 4:3, 9:16 or 16:9 · `--w` and `--h` width and height · `--steps` · `--cfg` · " +
	"`--seed` (-1 random) · `--n` images (1–4) · `--no` things to avoid · `--sampler` · `--scheduler` · `--model` · " +
	"`--lora name:0.8` (repeatable) · `--strength` 0–1 for an attached image · `--help`."

// textFlags take the words up to the next flag.
var textFlags = map[string]bool{"no": true, "sampler": true, "scheduler": true, "model": true, "lora": true, "loras": true}

// ParseFlags reads a prompt followed by flags (the Slack syntax). Text flags
// (--no, --sampler, --scheduler, --model, --lora) take the words up to the
// next flag; number flags take one word. --lora may repeat. A size, step
// or image count of 0 is refused rather than read as "default". It
// reports help when --help is given.
func ParseFlags(text string) (im Imagine, help bool, err error) {
	words := strings.Fields(text)
	var prompt []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "--") || len(w) < 3 {
			prompt = append(prompt, w)
			continue
		}
		name := strings.ToLower(strings.TrimPrefix(w, "--"))
		if name == "help" {
			return im, true, nil
		}
		var vals []string
		for i+1 < len(words) && !strings.HasPrefix(words[i+1], "--") {
			vals = append(vals, words[i+1])
			i++
			if !textFlags[name] {
				break
			}
		}
		if len(vals) == 0 {
			return im, false, Invalid("--"+name, "v_needs_value")
		}
		val := strings.Join(vals, " ")
		num := func() (int, error) {
			n, err := strconv.Atoi(val)
			if err != nil || n > 1<<30 || n < -1<<30 {
				return 0, Invalid("--"+name, "v_whole_number", val)
			}
			if n == 0 && name != "seed" {
				return 0, Invalid("--"+name, "v_not_zero")
			}
			return n, nil
		}
		var n int
		switch name {
		case "ar", "aspect":
			wh, ok := Aspects[val]
			if !ok {
				return im, false, Invalid("--ar", "v_one_of", "1:1, 3:4, 4:3, 9:16, 16:9", val)
			}
			im.Width, im.Height = wh[0], wh[1]
		case "w", "width":
			n, err = num()
			im.Width = n
		case "h", "height":
			n, err = num()
			im.Height = n
		case "steps":
			n, err = num()
			im.Steps = n
		case "n", "count":
			n, err = num()
			im.Count = n
		case "seed":
			n, err = num()
			s := int64(n)
			im.Seed = &s
		case "cfg":
			f, ferr := strconv.ParseFloat(val, 64)
			if ferr != nil || f != f {
				err = Invalid("--cfg", "v_number", val)
			}
			im.CFGScale = f
		case "no":
			im.NegativePrompt = val
		case "sampler":
			im.Sampler = val
		case "model":
			im.Model = val
		case "scheduler":
			im.Scheduler = val
		case "lora", "loras":
			ls, lerr := ParseLoRAs(val)
			if lerr != nil {
				var ve *ValidationError
				if errors.As(lerr, &ve) {
					ve.Field = "--lora"
				}
				return im, false, lerr
			}
			im.LoRAs = append(im.LoRAs, ls...)
		case "strength":
			f, ferr := strconv.ParseFloat(val, 64)
			if ferr != nil || f != f || f <= 0 || f > 1 {
				err = Invalid("--strength", "v_strength_number", val)
			}
			im.DenoisingStrength = f
		default:
			return im, false, Invalid("--"+name, "v_not_flag")
		}
		if err != nil {
			return im, false, err
		}
	}
	im.Prompt = strings.Join(prompt, " ")
	if strings.TrimSpace(im.Prompt) == "" {
		return im, false, Invalid("prompt", "v_prompt_required")
	}
	return im, false, nil
}
