#!/usr/bin/env bash
# README's test command: installs what the tests need when it is missing, then
# runs every test of every module under the race detector, and the tests that
# measure allocations once more without it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
command -v go >/dev/null 2>&1 || { echo "test: Go is not installed (need Go 1.26: https://go.dev/dl/)" >&2; exit 1; }

go test -race -shuffle=on -count=1 ./...
# The broadcast allocation bounds (TestBroadcastAllocsConstant,
# TestBroadcastCompressedAllocsConstant) are asserted only without the race
# detector, which makes sync.Pool drop entries at random: run them once more
# without it, so that this command enforces them.
go test -count=1 -run 'AllocsConstant$' ./wsframework/
if [ -f bench/go.mod ]; then
  (cd bench && go test -race -shuffle=on -count=1 ./...)
fi
