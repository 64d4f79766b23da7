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
// ("[{name: gpu, url: ...}]"). lookup is os.LookupEnv in production.
func applyEnv(v any, lookup func(string) (string, bool)) error {
	return walkEnv(reflect.ValueOf(v).Elem(), "EASEL", "", lookup)
}

var durationType = reflect.TypeOf(time.Duration(0))

func walkEnv(v reflect.Value, env, path string, lookup func(string) (string, bool)) error {
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
		fpath := name
		if path != "" {
			fpath = path + "." + name
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			if err := walkEnv(fv, fenv, fpath, lookup); err != nil {
				return err
			}
			continue
		}
		raw, ok := lookup(fenv)
		if !ok {
			continue
		}
		if err := setFromString(fv, raw); err != nil {
			return fmt.Errorf("%s (from %s): %w", fpath, fenv, err)
		}
	}
	return nil
}

func setFromString(fv reflect.Value, raw string) error {
	if fv.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration like 30s or 1m30s: %q", raw)
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
			return fmt.Errorf("not true or false: %q", raw)
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("not a whole number: %q", raw)
		}
		fv.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("not a number: %q", raw)
		}
		fv.SetFloat(n)
	case reflect.Slice, reflect.Map, reflect.Pointer:
		p := reflect.New(fv.Type())
		if err := yaml.Unmarshal([]byte(raw), p.Interface()); err != nil {
			return fmt.Errorf("not valid YAML for a %s: %w", fv.Type(), err)
		}
		fv.Set(p.Elem())
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
