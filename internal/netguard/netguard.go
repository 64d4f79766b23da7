// Package netguard keeps Easel's outgoing requests to user-supplied URLs
// (webhook callbacks, img2img source images) away from the server's own
// network: loopback, private, link-local and other special-purpose
// addresses are refused when the URL is checked and again when the
// connection is made, so a DNS answer that changes in between cannot reach
// them.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// MaxURLLength caps the URLs CheckURL accepts, in bytes.
const MaxURLLength = 2048

// CheckURL refuses raw unless it is an http:// or https:// URL of at most
// MaxURLLength bytes whose host resolves only to public addresses (any
// address when allowPrivate is set). The error says why, without the
// field name.
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return errors.New("must be an http:// or https:// URL")
	}
	if len(raw) > MaxURLLength {
		return fmt.Errorf("must be at most %d characters", MaxURLLength)
	}
	if allowPrivate {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, u.Hostname())
	if err != nil {
		return fmt.Errorf("host %s does not resolve", u.Hostname())
	}
	for _, ip := range ips {
		if Private(ip.IP) {
			return fmt.Errorf("must not point at a loopback, private or link-local address (%s)", ip.IP)
		}
	}
	return nil
}

// blockedNets are special-purpose ranges (beyond what net.IP's predicates
// cover) a request must not reach: "this network", carrier-grade NAT (some
// clouds serve instance metadata there), IETF protocol assignments,
// benchmarking, and the reserved 240/4 with the broadcast address.
var blockedNets = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// nat64 is the well-known NAT64 prefix: its addresses carry an IPv4 address
// in their last 32 bits, which is what the request would reach.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Private reports whether ip is an address an outgoing request must not
// reach: loopback, private (RFC 1918, fc00::/7), link-local, unspecified,
// multicast or another special-purpose range, also when written as
// IPv4-mapped or NAT64 IPv6.
func Private(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return true
	}
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range blockedNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Transport returns an HTTP transport that re-checks the address at
// connect time (unless allowPrivate), so neither a DNS answer that changes
// after CheckURL nor a redirect can reach a private address.
func Transport(allowPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil || allowPrivate {
				return c, err
			}
			if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok && Private(ta.IP) {
				_ = c.Close()
				return nil, fmt.Errorf("address %s is private", ta.IP)
			}
			return c, nil
		},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        10, IdleConnTimeout: 30 * time.Second,
	}
}
