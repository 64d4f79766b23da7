package netguard

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url, err string
	}{
		{"https://203.0.113.10/hook", ""},
		{"http://[2001:4860:4860::8888]:8080/hook", ""},
		{"ftp://203.0.113.10/hook", "http:// or https://"},
		{"https:///hook", "http:// or https://"},
		{"not a url", "http:// or https://"},
		{"http://127.0.0.1:9/hook", "loopback, private"},
		{"http://[::1]/hook", "loopback, private"},
		{"http://10.0.0.1/hook", "loopback, private"},
		{"http://172.16.5.4/hook", "loopback, private"},
		{"http://192.168.1.1/hook", "loopback, private"},
		{"http://169.254.169.254/latest/meta-data", "loopback, private"},
		{"http://100.100.100.200/", "loopback, private"},
		{"http://0.0.0.0/", "loopback, private"},
		{"http://[fd00:ec2::254]/", "loopback, private"},
		{"http://[fe80::1]/", "loopback, private"},
		{"http://[::ffff:127.0.0.1]/", "loopback, private"},
		{"http://[64:ff9b::a9fe:a9fe]/", "loopback, private"},
		{"http://255.255.255.255/", "loopback, private"},
		{"http://224.0.0.1/", "loopback, private"},
	} {
		t.Run(c.url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := CheckURL(ctx, c.url, false)
			if c.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, c.err)
			if c.err != "http:// or https://" {
				require.NoError(t, CheckURL(ctx, c.url, true), "allowed when private callbacks are")
			}
		})
	}
}

func TestPrivateAddresses(t *testing.T) {
	t.Parallel()
	for ip, want := range map[string]bool{
		"8.8.8.8": false, "203.0.113.10": false, "2001:4860:4860::8888": false, "100.63.255.255": false,
		"127.0.0.2": true, "10.255.0.1": true, "100.64.0.1": true, "192.0.0.8": true, "198.19.1.1": true,
		"240.0.0.1": true, "::": true, "fc00::1": true, "::ffff:10.0.0.1": true, "64:ff9b::7f00:1": true,
		"64:ff9b::808:808": false,
	} {
		require.Equal(t, want, Private(net.ParseIP(ip)), ip)
	}
}
