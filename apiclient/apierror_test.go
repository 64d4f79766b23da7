package apiclient

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDecodeError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		header string
		body   string
		want   APIError
	}{
		{"field", 400, "", `{"error":{"code":"invalid_request","message":"steps: too many","field":"steps"}}`,
			APIError{Status: 400, Code: "invalid_request", Message: "steps: too many", Field: "steps"}},
		{"retry_after_s wins", 429, "5", `{"error":{"code":"user_rate","message":"slow down","retry_after_s":30}}`,
			APIError{Status: 429, Code: "user_rate", Message: "slow down", RetryAfter: 30 * time.Second}},
		{"Retry-After header", 503, "7", `{"error":{"code":"busy","message":"busy"}}`,
			APIError{Status: 503, Code: "busy", Message: "busy", RetryAfter: 7 * time.Second}},
		{"plain text", 502, "", "upstream timed out\nmore", APIError{Status: 502, Message: "upstream timed out"}},
		{"HTML page", 502, "", "<html><body>Bad Gateway</body></html>", APIError{Status: 502}},
		{"JSON without error", 500, "", `{"oops":1}`, APIError{Status: 500, Message: `{"oops":1}`}},
		{"silly Retry-After", 429, "-3", ``, APIError{Status: 429}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			if tc.header != "" {
				rec.Header().Set("Retry-After", tc.header)
			}
			rec.WriteHeader(tc.status)
			_, _ = rec.WriteString(tc.body)
			require.Equal(t, &tc.want, decodeError(rec.Result()))
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	require.Equal(t, 120*time.Second, parseRetryAfter("120", now))
	require.Equal(t, 90*time.Second, parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
	require.Zero(t, parseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now))
	require.Zero(t, parseRetryAfter("soon", now))
	require.Zero(t, parseRetryAfter("", now))
}
