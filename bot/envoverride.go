package bot

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// applyEnv overrides fields of the struct v points to from environment
// variables named EASEL_<PATH> where PATH is the field's yaml path in upper
// case joined by "_" (scheduler.max_attempts → EASEL_SCHEDULER_MAX_ATTEMPTS).
// Scalars parse by type (durations as "30s"); lists and maps parse as YAML
// ("[{name: gpu, url: ...}]"). lookup is os.LookupEnv in production. Every
// problem is added to p.
func applyEnv(v any, lookup func(string) (string, bool), p *problems) {
	walkEnv(reflect.ValueOf(v).Elem(), "EASEL", "", lookup, p)
}

var durationType = reflect.TypeOf(time.Duration(0))

func walkEnv(v reflect.Value, env, path string, lookup func(string) (string, bool), p *problems) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fenv := env + "_" + strings.ToUpper(name)
		fpath := joinPath(path, name)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			walkEnv(fv, fenv, fpath, lookup, p)
			continue
		}
		raw, ok := lookup(fenv)
		if !ok {
			continue
		}
		if err := setFromString(fv, raw); err != nil {
			p.add(fpath, "%s (from %s)", err.Error(), fenv)
			continue
		}
		if k := fv.Kind(); k == reflect.Slice || k == reflect.Map || k == reflect.Pointer {
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(raw), &n); err != nil {
				p.add(fpath, "not valid YAML: %s (from %s)", strings.TrimPrefix(err.Error(), "yaml: "), fenv)
				continue
			}
			fv.Set(reflect.Zero(fv.Type()))
			decodeNode(&n, fv, fpath, source{env: fenv}, p)
		}
	}
}

// setFromString sets a scalar field from its environment value; lists,
// maps and pointers are left to decodeNode.
func setFromString(fv reflect.Value, raw string) error {
	if fv.Type() == durationType {
		d, err := parseDuration(raw)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", raw)
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("must be a whole number, got %q", raw)
		}
		fv.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("must be a number, got %q", raw)
		}
		fv.SetFloat(n)
	case reflect.Slice, reflect.Map, reflect.Pointer:
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// EnvNames lists every EASEL_* environment variable the configuration reads.
func EnvNames() []string {
	var out []string
	var walk func(t reflect.Type, env string)
	walk = func(t reflect.Type, env string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			e := env + "_" + strings.ToUpper(name)
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, e)
				continue
			}
			out = append(out, e)
		}
	}
	walk(reflect.TypeOf(Config{}), "EASEL")
	return out
}
