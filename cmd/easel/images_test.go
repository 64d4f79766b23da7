package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
)

// sharedImages gives the test's processes one image directory (as a
// shared volume does in a deployment) and points store's image reads at
// it; it returns the environment variable that sets it.
func sharedImages(t *testing.T, store *storage.Store) string {
	t.Helper()
	dir := t.TempDir()
	fs, err := blob.NewFS(dir, blob.TTL{})
	require.NoError(t, err)
	if store != nil {
		store.Blobs = fs
	}
	return "EASEL_STORAGE_BLOBS_DIR=" + dir
}
