#!/usr/bin/env bash
# Runs the micro-benchmarks named in docs/benchmarks.md, each next to its
# baseline in the same run. COUNT (default 3) repeats each one.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${COUNT:-3}"
go test -run '^$' -benchmem -count "$count" \
  -bench 'ShardedSubmit|PoolSubmit|BaselineGoSpawn|BaselineChanPerKey' ./dispatcher/
go test -run '^$' -benchmem -count "$count" -bench 'BufferPool|BaselineMake' ./sdk/bufpool/
go test -run '^$' -benchmem -count "$count" \
  -bench 'FrameEncode$|FrameDecode$|HeaderEncode$|HeaderCacheHit$' ./sdk/frame/
go test -run '^$' -benchmem -count "$count" \
  -bench 'EventPath|GoroutinePerEvent|PhasePassThrough|PhaseAllFour|BareHandler|ChannelCall|ChannelRoundTrip|Broadcast/' ./wsframework/
