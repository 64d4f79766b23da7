package sdclient

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// BaseURL is a backend's base URL, split from the credentials it may
// carry (http://user:pass@host:7860).
type BaseURL struct {
	// URL has no user info, query or fragment.
	URL *url.URL
	// Username and Password come from the URL's user info ("" when none).
	Username, Password string
}

// ParseBaseURL checks that raw is an http:// or https:// URL with a host
// and splits off its credentials, so they never appear in logs or errors
// that print the URL.
func ParseBaseURL(raw string) (BaseURL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		shown := raw
		if err == nil && u.User != nil {
			shown = u.Redacted()
		} else if err != nil {
			shown = "an unparsable URL"
		}
		return BaseURL{}, fmt.Errorf("Config.BaseURL must be an http:// or https:// URL (got %q)", shown)
	}
	var b BaseURL
	if u.User != nil {
		b.Username = u.User.Username()
		b.Password, _ = u.User.Password()
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	b.URL = u
	return b, nil
}

// Validate refuses negative timeouts, naming the field (zero means the
// default).
func (t Timeouts) Validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"Connect", t.Connect}, {"Queue", t.Queue}, {"ModelLoad", t.ModelLoad}, {"Stall", t.Stall}} {
		if f.d < 0 {
			return fmt.Errorf("Config.Timeouts.%s must not be negative (got %s)", f.name, f.d)
		}
	}
	return nil
}

// NewHTTPClient is the HTTP client a backend uses when its config names
// none: the default transport with dialing and TLS bounded by t.Connect
// (each call's own deadline bounds the rest).
func NewHTTPClient(t Timeouts) *http.Client {
	t = t.WithDefaults()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = t.Connect
	return &http.Client{Transport: tr}
}
