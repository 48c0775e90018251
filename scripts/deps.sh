#!/usr/bin/env bash
# Installs, when missing, the system tools Strand's tests need:
#   flatc        (flatbuffers-compiler) regenerates sdk/frame's generated code
#   chromium     drives the chat example in a real browser
#   python3-websockets
#                an independent WebSocket client (Python's websockets, for
#                /usr/bin/python3) for the permessage-deflate interop test
#   redis-server the Redis room adapter's tests and the cluster chat tests
#                start their own (loopback, persistence off)
# Go modules come through the module proxy when `go test` needs them.
set -euo pipefail

need=()
command -v flatc >/dev/null 2>&1 || need+=(flatbuffers-compiler)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1 || need+=(python3-websockets)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0

echo "deps: installing ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: need root or sudo to apt-get install ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
