#!/usr/bin/env bash
# The test command from the README: vet, staticcheck, race tests against a
# real redis-server, and the scheduler suite once more on the embedded Redis.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:$(go env GOPATH)/bin"
go vet ./...
staticcheck ./...
go test -race -count=1 -timeout 10m ./...
EASEL_TEST_REDIS=embedded go test -count=1 -timeout 5m ./scheduler/
