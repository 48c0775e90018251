#!/usr/bin/env bash
# Compares BenchmarkEventPath with metrics off and on (docs/benchmarks.md,
# "Metrics"): ROUNDS (default 8) interleaved rounds, each one run of the
# test binary per variant, alternating which goes first so that a change in
# the machine's load hits both alike; then benchstat, if installed. OUT
# keeps the raw results in a file of that name.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-8}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/wsframework.test" ./wsframework/
out="${OUT:-$dir/eventpath.txt}"
: > "$out"
for i in $(seq "$rounds"); do
  if (( i % 2 )); then order="off on"; else order="on off"; fi
  for v in $order; do
    "$dir/wsframework.test" -test.run '^$' -test.bench "^BenchmarkEventPath/metrics=$v\$" \
      -test.benchmem -test.count 1 | grep '^Benchmark' | tee -a "$out"
  done
done
bs=$(command -v benchstat || echo "$(go env GOPATH)/bin/benchstat")
if [ -x "$bs" ]; then "$bs" -col /metrics "$out"; fi
