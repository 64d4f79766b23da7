package commands

import "fmt"

// ValidationError is a bad request, naming the field and the limit.
// Message is English (the HTTP API's error text); an error made from a
// catalog message also carries its key and arguments, so a chat adapter
// can say the same in the user's language (Localized).
type ValidationError struct {
	Field   string
	Message string
	// Key is the catalog key of Message ("" for an English-only message);
	// Args are its arguments, a Msg among them rendered in the same
	// language.
	Key  string
	Args []any
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// Localized is Error in the language of locale: the field name stays as
// it is (it names the option), the detail comes from the catalog; an
// error without a catalog key is English.
func (e *ValidationError) Localized(locale string) string {
	if e.Key == "" {
		return e.Error()
	}
	return e.Field + ": " + T(locale, e.Key, localArgs(locale, e.Args)...)
}

// Msg is a catalog message used as an argument of another, rendered in
// the same language.
type Msg struct {
	Key  string
	Args []any
}

func localArgs(locale string, args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if m, ok := a.(Msg); ok {
			a = T(locale, m.Key, localArgs(locale, m.Args)...)
		}
		out[i] = a
	}
	return out
}

// invalid is an English-only validation error.
func invalid(field, format string, a ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// Invalid is a validation error whose detail is the catalog message key
// with args; its Message is the English text.
func Invalid(field, key string, args ...any) error {
	return &ValidationError{Field: field, Message: T("en", key, localArgs("en", args)...), Key: key, Args: args}
}
