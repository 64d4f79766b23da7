package bot

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ConfigErrors is every problem found in a configuration, in the order
// found. errors.As finds the first *ConfigError in it.
type ConfigErrors []*ConfigError

func (e ConfigErrors) Error() string {
	lines := make([]string, len(e))
	for i, ce := range e {
		lines[i] = ce.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As reach each problem.
func (e ConfigErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i, ce := range e {
		out[i] = ce
	}
	return out
}

// problems collects configuration problems while loading.
type problems struct{ list ConfigErrors }

func (p *problems) add(field, format string, a ...any) {
	p.list = append(p.list, &ConfigError{Field: field, Message: fmt.Sprintf(format, a...)})
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return p.list
}

// source says where a value came from, for messages: a file's line or an
// environment variable.
type source struct {
	file string // "" for an environment variable
	env  string
}

func (s source) at(n *yaml.Node) string {
	if s.file != "" {
		return fmt.Sprintf(" (%s, line %d)", s.file, n.Line)
	}
	return fmt.Sprintf(" (from %s)", s.env)
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// decodeNode decodes n into v field by field, so that each problem names
// its field path (backends[0].url), its line and, for an unknown field, the
// closest known one. It never stops at the first problem.
func decodeNode(n *yaml.Node, v reflect.Value, path string, src source, p *problems) {
	if n.Kind == 0 { // an empty document
		return
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	t := v.Type()
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		decodeLeaf(n, v, path, src, p)
		return
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		if n.Kind != yaml.MappingNode {
			if path == "" {
				p.add("(top level)", "must be a mapping of sections (redis:, http:, backends:, …), got %s%s", describe(n), src.at(n))
				return
			}
			p.add(path, "must be a mapping of fields, got %s%s", describe(n), src.at(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			fpath := joinPath(path, k.Value)
			idx, ok := fields[k.Value]
			if !ok {
				p.add(fpath, "unknown field%s%s", suggestion(k.Value, keys(fields)), src.at(k))
				continue
			}
			decodeNode(val, v.Field(idx), fpath, src, p)
		}
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && t.Elem() != durationType:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		decodeNode(n, v.Elem(), path, src, p)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		if n.Kind != yaml.SequenceNode {
			p.add(path, "must be a list, got %s%s", describe(n), src.at(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, e := range n.Content {
			decodeNode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i), src, p)
		}
		v.Set(s)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			p.add(path, "must be a mapping, got %s%s", describe(n), src.at(n))
			return
		}
		m := reflect.MakeMap(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			ev := reflect.New(t.Elem()).Elem()
			decodeNode(n.Content[i+1], ev, joinPath(path, n.Content[i].Value), src, p)
			m.SetMapIndex(reflect.ValueOf(n.Content[i].Value).Convert(t.Key()), ev)
		}
		v.Set(m)
	default:
		decodeLeaf(n, v, path, src, p)
	}
}

// decodeLeaf decodes a scalar, a list of scalars or a map of scalars, and
// words a failure by the field's type instead of yaml's Go type names.
func decodeLeaf(n *yaml.Node, v reflect.Value, path string, src source, p *problems) {
	if v.Type() == durationType && n.Kind == yaml.ScalarNode {
		d, err := parseDuration(n.Value)
		if err != nil {
			p.add(path, "%s%s", err.Error(), src.at(n))
			return
		}
		v.SetInt(int64(d))
		return
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		p.add(path, "must be %s, got %s%s", wantOf(v.Type()), describe(n), src.at(n))
		return
	}
	v.Set(tmp.Elem())
}

// parseDuration parses "30s"; a bare number gets a hint to add a unit.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err == nil {
		return d, nil
	}
	if _, nerr := strconv.ParseFloat(strings.TrimSpace(s), 64); nerr == nil {
		return 0, fmt.Errorf("must be a duration with a unit: write %ss (or %sms, %sm), not %s", s, s, s, s)
	}
	return 0, fmt.Errorf("must be a duration such as 30s, 1m30s or 500ms, got %q", s)
}

func wantOf(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "text"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list of " + plural(wantOf(t.Elem()))
	case reflect.Map:
		return "a mapping of names to " + plural(wantOf(t.Elem()))
	case reflect.Pointer:
		return wantOf(t.Elem())
	}
	return "a " + t.String()
}

func plural(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "a "), "an ")
	switch s {
	case "text", "true or false":
		return s + " values"
	}
	return s + "s"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if len(n.Value) > 40 {
		return strconv.Quote(n.Value[:40] + "…")
	}
	return strconv.Quote(n.Value)
}

// yamlFields maps a struct's yaml names to field indexes.
func yamlFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = i
	}
	return out
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func joinPath(path, name string) string {
	if name == "" {
		name = `""`
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

// suggestion is `; did you mean "x"?` for the closest candidate within a
// small edit distance, else the list of candidates when short.
func suggestion(got string, candidates []string) string {
	if s := didYouMean(got, candidates); s != "" {
		return s
	}
	if len(candidates) > 0 && len(candidates) <= 12 {
		return "; known fields: " + strings.Join(candidates, ", ")
	}
	return ""
}

// didYouMean is `; did you mean "x"?` for the closest candidate within a
// small edit distance, else "".
func didYouMean(got string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(got), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && bestD <= max(2, len(got)/3) {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// EnvFor is the EASEL_ variable that sets the configuration field at path
// ("backends[0].url" → EASEL_BACKENDS, "scheduler.lease" →
// EASEL_SCHEDULER_LEASE), or "" when path names no known field.
func EnvFor(path string) string {
	t := reflect.TypeOf(Config{})
	env := "EASEL"
	for _, seg := range strings.Split(path, ".") {
		name, _, _ := strings.Cut(seg, "[")
		if t.Kind() != reflect.Struct || t == durationType {
			return env
		}
		idx, ok := yamlFields(t)[name]
		if !ok {
			return ""
		}
		env += "_" + strings.ToUpper(name)
		t = t.Field(idx).Type
		if t.Kind() != reflect.Struct || t == durationType {
			return env
		}
	}
	if t.Kind() == reflect.Struct && t != durationType {
		return "" // a section, set field by field
	}
	return env
}

// UnknownEnv lists the set EASEL_ variables that nothing reads, each with
// a suggestion, for a warning at start: a typo would otherwise be silently
// ignored. environ is os.Environ(); cfg (may be nil) adds the variables its
// backends name in password_env.
func UnknownEnv(environ []string, cfg *Config) []string {
	known := map[string]bool{}
	names := EnvNames()
	for _, n := range names {
		known[n] = true
	}
	for _, n := range OtherEnv {
		known[n] = true
	}
	if cfg != nil {
		for _, b := range cfg.Backends {
			if b.PasswordEnv != "" {
				known[b.PasswordEnv] = true
			}
		}
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "EASEL_") || known[name] {
			continue
		}
		out = append(out, fmt.Sprintf("%s is set but Easel does not read it%s", name,
			didYouMean(name, append(names, OtherEnv...))))
	}
	sort.Strings(out)
	return out
}

// OtherEnv are the EASEL_ variables read outside the configuration: the
// CLI client's, the tests' and those only docker-compose.yml reads from
// .env (a test keeps this list and .env.example in step).
var OtherEnv = []string{"EASEL_SERVER", "EASEL_API_KEY", "EASEL_TEST_REDIS_URL", "EASEL_TEST_REDIS",
	"EASEL_SD_USERNAME", "EASEL_SD_PASSWORD", "EASEL_REDIS_PASSWORD", "EASEL_REDIS_PUBLISH", "EASEL_GPU0_URL",
	"EASEL_GPU0_KIND", "EASEL_HTTP_PUBLISH"}
