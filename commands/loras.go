package commands

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/easelbot/easel/sdclient"
)

// LoRA limits: how many one request may apply, and the weight range.
const (
	MaxLoRAs         = 8
	MinLoRAWeight    = -5.0
	MaxLoRAWeight    = 5.0
	maxLoRANameBytes = 200
)

// ParseLoRAs reads the loras option: "name:weight" items separated by
// commas ("detail:0.8, film-grain:0.5"); a bare name takes weight 1. The
// error names the field "loras" and the bad item.
func ParseLoRAs(s string) ([]sdclient.LoRA, error) {
	var out []sdclient.LoRA
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		l := sdclient.LoRA{Name: item, Weight: 1}
		if i := strings.LastIndexByte(item, ':'); i >= 0 {
			w, err := strconv.ParseFloat(strings.TrimSpace(item[i+1:]), 64)
			if err != nil {
				return nil, Invalid("loras", "v_lora_weight_number", clipText(item, 60))
			}
			l.Name, l.Weight = strings.TrimSpace(item[:i]), w
		}
		out = append(out, l)
		if len(out) > MaxLoRAs {
			return nil, Invalid("loras", "v_lora_max", MaxLoRAs)
		}
	}
	if len(out) == 0 && strings.TrimSpace(s) != "" {
		return nil, Invalid("loras", "v_lora_syntax")
	}
	return out, checkLoRAs(out)
}

// checkLoRAs checks the count, names and weights of LoRAs (not whether a
// backend has them).
func checkLoRAs(ls []sdclient.LoRA) error {
	if len(ls) > MaxLoRAs {
		return Invalid("loras", "v_lora_max_got", MaxLoRAs, len(ls))
	}
	for _, l := range ls {
		switch {
		case strings.TrimSpace(l.Name) == "":
			return Invalid("loras", "v_lora_name")
		case !utf8.ValidString(l.Name) || len(l.Name) > maxLoRANameBytes:
			return Invalid("loras", "v_lora_name_len", maxLoRANameBytes)
		case strings.ContainsAny(l.Name, "<>:,\x00\n\r"):
			return Invalid("loras", "v_lora_name_chars", clipText(l.Name, 60))
		case math.IsNaN(l.Weight) || l.Weight < MinLoRAWeight || l.Weight > MaxLoRAWeight:
			return Invalid("loras", "v_lora_weight", clipText(l.Name, 60), MinLoRAWeight, MaxLoRAWeight, l.Weight)
		}
	}
	return nil
}

// FormatLoRAs writes LoRAs back in the option syntax ("a:0.8,b:0.5").
func FormatLoRAs(ls []sdclient.LoRA) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.Name + ":" + strconv.FormatFloat(l.Weight, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

// clipText shortens s to n runes for an error message.
func clipText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
