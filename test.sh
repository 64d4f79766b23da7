#!/usr/bin/env bash
# The test command from the README: gofmt, vet, staticcheck, golangci-lint, race tests
# against a real redis-server (tests start their own on free loopback
# ports), and the scheduler suite once more on the embedded Redis and once on
# a three-master Redis Cluster.
# redis-server is installed when missing (apt-get, dnf or brew; through
# sudo when not root); staticcheck is a tool of go.mod (`go tool
# staticcheck`), built once and cached with the modules.
set -euo pipefail
cd "$(dirname "$0")"

install_redis() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
  echo "redis-server not found: installing it" >&2
  if command -v apt-get >/dev/null 2>&1; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  elif command -v dnf >/dev/null 2>&1; then
    $sudo dnf install -y -q redis
  elif command -v brew >/dev/null 2>&1; then
    brew install redis
  fi
}

if ! command -v redis-server >/dev/null 2>&1; then
  install_redis || true
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server is needed on PATH and could not be installed; install it by hand (Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install redis; macOS: brew install redis)" >&2
  exit 1
fi

# Chromium drives the browser tests (adapters/httpapi); they fail, saying
# so, without it.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
  echo "chromium not found: installing it" >&2
  if command -v apt-get >/dev/null 2>&1; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ||
      echo "warning: could not install chromium; the browser tests will fail" >&2
  elif command -v dnf >/dev/null 2>&1; then
    $sudo dnf install -y -q chromium || echo "warning: could not install chromium; the browser tests will fail" >&2
  else
    echo "warning: install Chromium by hand (Debian/Ubuntu: apt-get install chromium); the browser tests will fail without it" >&2
  fi
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted"; exit 1; fi
go vet ./...
go tool staticcheck ./...
# golangci-lint v2 (errcheck, gosec, bodyclose, contextcheck, errorlint,
# revive, misspell; .golangci.yml says why each exclusion is there), pinned
# in tools/go.mod so its dependencies stay out of Easel's module.
go tool -modfile=tools/go.mod golangci-lint run ./...
go test -race -count=1 -timeout 10m ./...
EASEL_TEST_REDIS=embedded go test -count=1 -timeout 5m ./scheduler/
# ... and on a three-master Redis Cluster on loopback (issue 10: every script
# keeps to its shard's slot).
EASEL_TEST_REDIS=cluster go test -count=1 -timeout 5m ./scheduler/
