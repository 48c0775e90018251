#!/usr/bin/env bash
# README's test command: installs what the tests need when it is missing, then
# runs every test of every module under the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
command -v go >/dev/null 2>&1 || { echo "test: Go is not installed (need Go 1.26: https://go.dev/dl/)" >&2; exit 1; }

go test -race -shuffle=on -count=1 ./...
if [ -f bench/go.mod ]; then
  (cd bench && go test -race -shuffle=on -count=1 ./...)
fi
