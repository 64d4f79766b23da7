package commands

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

func TestRerun(t *testing.T) {
	t.Parallel()
	job := &scheduler.Job{ID: "j", Payload: json.RawMessage(`{"prompt":"a fox","width":512,"height":512,"steps":20,"seed":7,"count":2}`),
		Seeds: []int64{7, 8}}
	im, err := Rerun(job, -1)
	require.NoError(t, err)
	require.Equal(t, int64(-1), *im.Seed)
	require.Equal(t, 2, im.Count)
	require.Zero(t, im.VariationStrength)
	im, err = Rerun(job, 1)
	require.NoError(t, err)
	require.Equal(t, int64(8), *im.Seed)
	require.Equal(t, 1, im.Count)
	require.Equal(t, variationStrength, im.VariationStrength)
	_, err = Rerun(job, 2)
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, "image", ve.Field)
}
