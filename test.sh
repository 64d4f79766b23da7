#!/usr/bin/env bash
# The test command from the README: gofmt, vet, staticcheck, race tests
# against a real redis-server (tests start their own on free loopback
# ports), and the scheduler suite once more on the embedded Redis.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:$(go env GOPATH)/bin"
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server is needed on PATH (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)" >&2
  exit 1
fi
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted"; exit 1; fi
go vet ./...
if command -v staticcheck >/dev/null 2>&1; then
  staticcheck ./...
else
  go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
fi
go test -race -count=1 -timeout 10m ./...
EASEL_TEST_REDIS=embedded go test -count=1 -timeout 5m ./scheduler/
