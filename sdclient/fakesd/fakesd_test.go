package fakesd_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/sdclient/fakesd"
)

func FuzzDecodeTxt2Img(f *testing.F) {
	f.Add([]byte(`{"prompt":"x","width":512,"height":512,"steps":20}`))
	f.Add([]byte(`{"width":-8}`))
	f.Add([]byte(`nonsense`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, errs := fakesd.DecodeTxt2Img(b, 2048)
		if errs == nil {
			require.True(t, req.Width >= 64 && req.Width <= 2048 && req.Width%8 == 0)
			require.True(t, req.Height >= 64 && req.Height <= 2048 && req.Height%8 == 0)
			require.True(t, req.Steps >= 1 && req.BatchSize >= 1)
		}
	})
}
