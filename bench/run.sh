#!/usr/bin/env bash
# bench/run.sh — Strand's end-to-end benchmark matrix against peer Go
# WebSocket servers. See bench/README.md for what each cell means.
#
#   bench/run.sh                      # full matrix, 3 repeats x 5 s per cell
#   QUICK=1 bench/run.sh              # fewer cells, 1 repeat x 2 s: a few minutes
#   SERVERS="strand gws" bench/run.sh # only these servers
#   CELLS='^z' SERVERS=strand REPEAT=1 DURATION=3s bench/run.sh
#                                     # the compression cells (Strand only,
#                                     # never in the default matrix)
#
#   CELLS='^iso' SERVERS=strand REPEAT=2 DURATION=3s REPORT=0 bench/run.sh
#                                     # only the isolation cell (slow
#                                     # handlers; Strand only)
#
# Settings (environment): QUICK REPEAT DURATION WARMUP SERVERS CELLS PORT
# SRC_IPS SERVER_CPU LOADGEN_CPU RESULTS DOCS KEEP_RESULTS REPORT.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	REPEAT=${REPEAT:-1}
	DURATION=${DURATION:-2s}
	WARMUP=${WARMUP:-500ms}
else
	REPEAT=${REPEAT:-3}
	DURATION=${DURATION:-5s}
	WARMUP=${WARMUP:-1s}
fi
ALL_SERVERS="strand strand-oop gobwas gorilla coder gws melody nbio epoll"
SERVERS=${SERVERS:-$ALL_SERVERS}
CELLS=${CELLS:-}                          # optional regex: run only matching cell names
PORT=${PORT:-18080}
SRC_IPS=${SRC_IPS:-127.0.0.1-127.0.0.50} # spread client source addresses: no ephemeral-port exhaustion
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
RESULTS=${RESULTS:-$BENCH_DIR/results}
DOCS=${DOCS:-$ROOT/docs}
KEEP_RESULTS=${KEEP_RESULTS:-0} # 1: keep earlier raw results (rerun only some servers)
REPORT=${REPORT:-1}             # 0: skip regenerating docs/benchmarks.md

log() { printf 'run.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT=$REPEAT: want a positive integer"
command -v go >/dev/null || die "go is not on PATH"

OUT=$(mktemp -d "${TMPDIR:-/tmp}/strand-bench.XXXXXX")
SERVER_PID=""
cleanup() {
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -KILL "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$OUT"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- CPU pinning ---------------------------------------------------------
SRV_PIN=()
LG_PIN=()
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
	SRV_PIN=(taskset -c "$SERVER_CPU")
	LG_PIN=(taskset -c "$LOADGEN_CPU")
else
	log "warning: taskset or a second CPU is missing: server and load generator are NOT pinned"
fi

# ---- build -----------------------------------------------------------------
log "building into $OUT"
(
	cd "$BENCH_DIR"
	go build -o "$OUT/loadgen" ./cmd/loadgen
	go build -o "$OUT/report" ./cmd/report
	for dir in peers/*/; do
		name=$(basename "$dir")
		go build -o "$OUT/peer-$name" "./peers/$name"
	done
) || die "building the benchmark kit failed"

declare -A BIN
for name in $ALL_SERVERS; do
	[[ $name == strand || $name == strand-oop ]] || BIN[$name]="$OUT/peer-$name"
done
if [[ " $SERVERS " == *" strand "* ]]; then
	if (cd "$ROOT" && go build -o "$OUT/strand-echo" ./examples/echo) 2>"$OUT/strand-build.log"; then
		BIN[strand]="$OUT/strand-echo"
	else
		log "WARNING: Strand's server (go build ./examples/echo) did not build; continuing with the peers only."
		sed 's/^/    /' "$OUT/strand-build.log" | head -20 >&2
	fi
fi

# strand-oop: the echo example's plugin out of process. The strand program
# (cmd/strand) runs examples/echo/plugin as its child over a Unix socket;
# the child inherits the server's pinning (taskset) and GOMAXPROCS=1, so
# both processes share the server's one core. The wrapper execs strand, so
# the server pid (for RSS) is strand's; the plugin's memory is not counted.
if [[ " $SERVERS " == *" strand-oop "* ]]; then
	if (cd "$ROOT" && go build -o "$OUT/strand" ./cmd/strand && go build -o "$OUT/echo-plugin" ./examples/echo/plugin) 2>"$OUT/strand-oop-build.log"; then
		cat >"$OUT/strand-oop.yaml" <<YAML
log: {level: warn}
plugins:
  - name: echo
    command: [$OUT/echo-plugin]
routes:
  - path: /echo
    entries: [echo/echo]
  - path: /broadcast
    entries: [echo/broadcast]
YAML
		printf '#!/bin/sh\nexec "%s" -config "%s" "$@"\n' "$OUT/strand" "$OUT/strand-oop.yaml" >"$OUT/strand-oop"
		chmod +x "$OUT/strand-oop"
		BIN[strand-oop]="$OUT/strand-oop"
	else
		log "WARNING: cmd/strand or examples/echo/plugin did not build; continuing without strand-oop."
		sed 's/^/    /' "$OUT/strand-oop-build.log" | head -20 >&2
	fi
fi

RUN_SERVERS=()
for name in $SERVERS; do
	if [[ -n ${BIN[$name]:-} ]]; then
		RUN_SERVERS+=("$name")
	elif [[ $name != strand && $name != strand-oop ]]; then
		die "unknown server $name (known: $ALL_SERVERS)"
	fi
done
((${#RUN_SERVERS[@]} > 0)) || die "no server to run"

# ---- cells: name|path|loadgen arguments[|server arguments] ----------------------
# A cell with server arguments runs against Strand only (the peers do not
# take them).
CELL_LIST=()
if [[ $QUICK == 1 ]]; then
	CELL_LIST+=(
		"echo-c1-s64-d1|/echo|-mode echo -conns 1 -size 64 -depth 1"
		"echo-c100-s64-d16|/echo|-mode echo -conns 100 -size 64 -depth 16"
		"echo-c1000-s4096-d16|/echo|-mode echo -conns 1000 -size 4096 -depth 16"
	)
else
	for c in 1 100 1000; do
		for s in 64 4096; do
			for d in 1 16; do
				CELL_LIST+=("echo-c$c-s$s-d$d|/echo|-mode echo -conns $c -size $s -depth $d")
			done
		done
	done
fi
CELL_LIST+=("rate-c1000-r10-s4096|/echo|-mode echo -conns 1000 -size 4096 -rate 10 -depth 16")
[[ $QUICK == 1 ]] || CELL_LIST+=("bcast-c10-s64|/broadcast|-mode broadcast -conns 10 -size 64")
CELL_LIST+=(
	"bcast-c100-s64|/broadcast|-mode broadcast -conns 100 -size 64"
	"idle-c10000|/echo|-mode idle -conns 10000 -hold $DURATION"
)
# The compression cells (permessage-deflate, 4 KiB JSON-like messages): only
# when CELLS selects them, e.g. CELLS='^z'. The load generator always offers
# compression (as browsers do); the server has it off or on. zidle: 5000
# connections each echo one message (-prime), so a server with context
# takeover has made its per-connection compressor, then are held idle.
if [[ -n $CELLS ]]; then
	json="-size 4096 -payload json -compress"
	CELL_LIST+=(
		"zecho-c100-4k-json-off|/echo|-mode echo -conns 100 -depth 16 $json|-compress off"
		"zecho-c100-4k-json-on|/echo|-mode echo -conns 100 -depth 16 $json|-compress on"
		"zbcast-c100-4k-json-off|/broadcast|-mode broadcast -conns 100 $json|-compress off"
		"zbcast-c100-4k-json-on|/broadcast|-mode broadcast -conns 100 $json|-compress on"
		"zidle-c5k-off|/echo|-mode idle -conns 5000 -prime -hold $DURATION $json|-compress off"
		"zidle-c5k-on|/echo|-mode idle -conns 5000 -prime -hold $DURATION $json|-compress on"
		"zidle-c5k-takeover|/echo|-mode idle -conns 5000 -prime -hold $DURATION $json -compress-takeover|-compress on -compress-takeover"
	)
fi

# ---- server lifecycle ----------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

start_server() { # name logfile [server arguments]
	# shellcheck disable=SC2086 # $3 is a list of flags
	GOMAXPROCS=1 "${SRV_PIN[@]}" "${BIN[$1]}" -addr "127.0.0.1:$PORT" ${3:-} >"$2" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 100); do
		port_open && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	log "server $1 did not start listening on 127.0.0.1:$PORT (log: $2)"
	stop_server
	return 1
}

stop_server() {
	[[ -n $SERVER_PID ]] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

port_open && die "something already listens on 127.0.0.1:$PORT; set PORT"

load1=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
	log "warning: load average is $load1 before starting: other work shares these cores, so figures will be noisy"
fi

RAW="$RESULTS/raw"
if [[ $KEEP_RESULTS != 1 ]]; then
	rm -rf "$RAW"
fi
mkdir -p "$RAW"

# ---- the matrix ----------------------------------------------------------------
ncells=0
ran_e2e=0 ran_comp=0 # which reports to make
for cell in "${CELL_LIST[@]}"; do
	name=${cell%%|*}
	[[ -z $CELLS || $name =~ $CELLS ]] || continue
	ncells=$((ncells + 1))
	if [[ $name == z* ]]; then ran_comp=1; else ran_e2e=1; fi
done
log "servers: ${RUN_SERVERS[*]}; $ncells cells x $REPEAT repeats; duration $DURATION, warmup $WARMUP"

failures=0
# Cell by cell, and within a cell repeat by repeat, every server in turn
# (the first server moves one place each repeat): a cell's servers are
# measured within a minute or two of each other, so a drift of this shared
# machine's speed lands on all of them rather than on whichever server
# happened to run then.
nservers=${#RUN_SERVERS[@]}
for cell in "${CELL_LIST[@]}"; do
	IFS='|' read -r cname path args srvargs <<<"$cell"
	[[ -z $CELLS || $cname =~ $CELLS ]] || continue
	for ((i = 1; i <= REPEAT; i++)); do
		for ((j = 0; j < nservers; j++)); do
			server=${RUN_SERVERS[$(((i - 1 + j) % nservers))]}
			[[ -z $srvargs || $server == strand ]] || continue
			dir="$RAW/$server/$cname"
			mkdir -p "$dir"
			rm -f "$dir/r$i.json"
			if ! start_server "$server" "$dir/r$i.server.log" "$srvargs"; then
				failures=$((failures + 1))
				continue
			fi
			rc=0
			# shellcheck disable=SC2086 # $args is a list of flags
			GOMAXPROCS=1 "${LG_PIN[@]}" "$OUT/loadgen" -url "ws://127.0.0.1:$PORT$path" $args \
				-duration "$DURATION" -warmup "$WARMUP" -src-ips "$SRC_IPS" \
				-server-pid "$SERVER_PID" -server "$server" -cell "$cname" \
				-json "$dir/r$i.json" >"$dir/r$i.log" 2>&1 || rc=$?
			stop_server
			summary=$(grep -E '^  (throughput|server rss|wire bytes|errors)' "$dir/r$i.log" | sed -E 's/^ +//' | paste -sd ';' - || true)
			printf '%-7s %-25s #%d rc=%d  %s\n' "$server" "$cname" "$i" "$rc" "$summary"
			if ((rc != 0)); then
				failures=$((failures + 1))
				grep -E '^     ' "$dir/r$i.log" | head -3 || true
			fi
		done
	done
done

# ---- the isolation cell (Strand only) -------------------------------------------
# 900 plain echo connections (64 B, depth 16) alone, then on a fresh server
# next to 100 connections whose every message blocks its handler for 200 ms
# (examples/echo -sleep-param, /echo?sleep=200ms, depth 16). Its results go
# to $ISO, outside $RAW, so that its runs do not merge with the matrix's
# cells of the same shape.
ISO="$RESULTS/isolation"
ISO_CELL=iso-c900-d16-sleep100
ran_iso=0
if [[ -n ${BIN[strand]:-} && " ${RUN_SERVERS[*]} " == *" strand "* && (-z $CELLS || $ISO_CELL =~ $CELLS) ]]; then
	ran_iso=1
	rm -rf "$ISO"
	mkdir -p "$ISO"
	# The sleepers run through the 900's connect, warmup and measured
	# window; their drain (16 x 200 ms in flight) fits in loadgen's 5 s.
	to_secs() { case $1 in *ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;; *s) echo "${1%s}" ;; *) echo "$1" ;; esac; }
	sleep_for=$(awk -v w="$(to_secs "$WARMUP")" -v d="$(to_secs "$DURATION")" 'BEGIN { printf "%.1fs", w + d + 5 }')
	for ((i = 1; i <= REPEAT; i++)); do
		order="alone mixed"
		((i % 2 == 1)) || order="mixed alone" # alternate: a drift in the machine's load favours neither
		for part in $order; do
			rm -f "$ISO/$part-r$i.json"
			if ! start_server strand "$ISO/$part-r$i.server.log" "-sleep-param"; then
				failures=$((failures + 1))
				continue
			fi
			sleeper_pid=""
			if [[ $part == mixed ]]; then
				rm -f "$ISO/sleepers-r$i.json"
				# shellcheck disable=SC2086
				GOMAXPROCS=1 "${LG_PIN[@]}" "$OUT/loadgen" -url "ws://127.0.0.1:$PORT/echo?sleep=200ms" \
					-mode echo -conns 100 -size 64 -depth 16 -duration "$sleep_for" -warmup 0s -quiet \
					-src-ips "$SRC_IPS" -server strand -cell "$ISO_CELL-sleepers" \
					-json "$ISO/sleepers-r$i.json" >"$ISO/sleepers-r$i.log" 2>&1 &
				sleeper_pid=$!
				sleep 1 # the sleepers connect and fill their handlers first
			fi
			rc=0
			GOMAXPROCS=1 "${LG_PIN[@]}" "$OUT/loadgen" -url "ws://127.0.0.1:$PORT/echo" \
				-mode echo -conns 900 -size 64 -depth 16 \
				-duration "$DURATION" -warmup "$WARMUP" -src-ips "$SRC_IPS" \
				-server-pid "$SERVER_PID" -server strand -cell "$ISO_CELL-$part" \
				-json "$ISO/$part-r$i.json" >"$ISO/$part-r$i.log" 2>&1 || rc=$?
			src=0
			if [[ -n $sleeper_pid ]]; then
				wait "$sleeper_pid" || src=$?
			fi
			stop_server
			summary=$(grep -E '^  (throughput|latency|errors)' "$ISO/$part-r$i.log" | sed -E 's/^ +//' | paste -sd ';' - || true)
			printf '%-7s %-25s #%d rc=%d  %s\n' strand "$ISO_CELL-$part" "$i" "$rc" "$summary"
			if ((rc != 0 || src != 0)); then
				failures=$((failures + 1))
				((src == 0)) || log "the sleepers' load generator failed (rc=$src): $ISO/sleepers-r$i.log"
			fi
		done
	done
	if "$OUT/report" -isolation "$ISO" -isolation-only >"$ISO/isolation.md"; then
		log "isolation cell ($ISO/isolation.md):"
		cat "$ISO/isolation.md"
	fi
fi

# ---- report --------------------------------------------------------------------
iso_flag=()
((ran_iso == 0)) || iso_flag=(-isolation "$ISO")
if [[ $REPORT == 1 && $ran_e2e == 1 ]]; then
	cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
	note="Run $(date -u +%Y-%m-%dT%H:%MZ) on ${cpu:-unknown CPU} ($(nproc) cores), Linux $(uname -r), $(go env GOVERSION); REPEAT=$REPEAT DURATION=$DURATION WARMUP=$WARMUP QUICK=$QUICK; load average $load1 at the start."
	printf '%s\n' "$note" >"$RESULTS/note.txt"
	"$OUT/report" -results "$RAW" -docs "$DOCS" -summary "$RESULTS/summary.json" -note "$note" "${iso_flag[@]}"
	log "wrote $DOCS/benchmarks.md (e2e section), $DOCS/bench-e2e-*.svg and $RESULTS/summary.json"
fi
if [[ $ran_comp == 1 ]]; then
	# The compression cells: a table on stdout (and in $RAW), for
	# docs/benchmarks.md's Compression section by hand; docs/ is not touched.
	if "$OUT/report" -results "$RAW" -compression >"$RAW/compression.md"; then
		log "compression cells ($RAW/compression.md):"
		cat "$RAW/compression.md"
	fi
fi
if ((failures > 0)); then
	log "$failures run(s) reported errors or failed to start: see $RAW/<server>/<cell>/r<N>.log"
fi
