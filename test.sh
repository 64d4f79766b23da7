#!/usr/bin/env bash
# The test command from the README: vet, staticcheck, race tests against a
# real redis-server, and the scheduler suite once more on the embedded Redis.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:$(go env GOPATH)/bin"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted"; exit 1; fi
go vet ./...
staticcheck ./...
go test -race -count=1 -timeout 10m ./...
EASEL_TEST_REDIS=embedded go test -count=1 -timeout 5m ./scheduler/
