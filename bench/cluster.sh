#!/usr/bin/env bash
# bench/cluster.sh — cross-node fan-out through Redis next to one node, in
# the same run: what clustering a room costs.
#
#   bench/cluster.sh                      # 3 repeats x 5 s per cell
#   REPEAT=1 DURATION=3s bench/cluster.sh
#
# Cells (examples/echo's /broadcast room, 64-byte binary messages; the load
# generator's broadcast mode checks every sender's order at every member):
#   one-node-c300      one node (no Redis), 300 clients, as fast as each
#                      client's one message in flight allows
#   cluster3-c300      three nodes (examples/echo -redis) sharing the room
#                      through one local redis-server, 100 clients each
#   cluster3-r1000     three nodes, 30 clients (10 each) sending 33.3
#                      messages/s each: 1,000 publishes/s across the nodes,
#                      30,000 deliveries/s; for its delivery latency
#   one-node-r1000     the same load on one node: the latency baseline
# Every run starts a fresh redis-server (persistence off, a free loopback
# port, a temporary directory) and fresh nodes. Redis and every node are
# pinned to SERVER_CPU (GOMAXPROCS=1 each), the load generator to
# LOADGEN_CPU, as in bench/run.sh: the cluster gets the same one core as
# the single node. It prints every run and a table of medians with the
# cluster's ratio to one node.
#
# Settings (environment): REPEAT DURATION WARMUP CONNS RATE_CONNS RATE
# PORT SRC_IPS SERVER_CPU LOADGEN_CPU. Needs redis-server (scripts/deps.sh).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

REPEAT=${REPEAT:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONNS=${CONNS:-300}          # clients of the fan-out cells (spread over 3 nodes)
RATE_CONNS=${RATE_CONNS:-30} # clients of the fixed-rate cell
RATE=${RATE:-33.333}         # messages/s per client there: RATE_CONNS x RATE publishes/s
PORT=${PORT:-18100}          # nodes listen on PORT, PORT+1, PORT+2
SRC_IPS=${SRC_IPS:-127.0.0.1-127.0.0.50}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
CELLS=(one-node-c$CONNS cluster3-c$CONNS one-node-r1000 cluster3-r1000)

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT=$REPEAT: want a positive integer"
((CONNS % 3 == 0)) || die "CONNS=$CONNS: want a multiple of 3"
command -v go >/dev/null || die "go is not on PATH"
REDIS=$(command -v redis-server) || die "redis-server not found: install it with scripts/deps.sh (Debian/Ubuntu: apt-get install redis-server)"

OUT=$(mktemp -d "${TMPDIR:-/tmp}/strand-cluster.XXXXXX")
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$OUT"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

SRV_PIN=()
LG_PIN=()
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
	SRV_PIN=(taskset -c "$SERVER_CPU")
	LG_PIN=(taskset -c "$LOADGEN_CPU")
else
	log "warning: taskset or a second CPU is missing: servers and load generator are NOT pinned"
fi

log "building into $OUT"
(cd "$BENCH_DIR" && go build -o "$OUT/loadgen" ./cmd/loadgen) || die "building the load generator failed"
(cd "$ROOT" && go build -o "$OUT/echo" ./examples/echo) || die "building examples/echo failed"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT" $((PORT + 1)) $((PORT + 2)); do
	port_open "$p" && die "something already listens on 127.0.0.1:$p; set PORT"
done

free_port() { # the first loopback port from PORT+10 on that nothing listens on
	local p
	for ((p = PORT + 10; p < PORT + 200; p++)); do
		port_open "$p" || {
			echo "$p"
			return 0
		}
	done
	die "no free port in $((PORT + 10))..$((PORT + 199))"
}

wait_port() { # port pid logfile
	for _ in $(seq 100); do
		port_open "$1" && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	log "nothing listens on 127.0.0.1:$1 (log: $3)"
	cat "$3" >&2
	return 1
}

start() { # logfile command...: start a process pinned to the server core
	local logf=$1
	shift
	GOMAXPROCS=1 "${SRV_PIN[@]}" "$@" >"$logf" 2>&1 &
	PIDS+=($!)
}

stop_all() {
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
}

# run_cell cell repeat: starts the servers, runs the load generator, stops
# everything; prints one line and records the figures.
declare -A TPUT P50 P99 P999
run_cell() {
	local cell=$1 i=$2 urls="" nodes=1 args
	local dir="$OUT/$cell.$i"
	mkdir -p "$dir"
	case $cell in
	one-node-c*) args=(-conns "$CONNS") ;;
	one-node-r*) args=(-conns "$RATE_CONNS" -rate "$RATE" -depth 16) ;;
	cluster3-c*) args=(-conns "$CONNS") nodes=3 ;;
	cluster3-r*) args=(-conns "$RATE_CONNS" -rate "$RATE" -depth 16) nodes=3 ;;
	esac
	local redis=()
	if ((nodes > 1)); then
		local rport
		rport=$(free_port)
		start "$dir/redis.log" "$REDIS" --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
			--dir "$dir" --daemonize no --protected-mode yes
		wait_port "$rport" "${PIDS[-1]}" "$dir/redis.log" || return 1
		redis=(-redis "redis://127.0.0.1:$rport")
	fi
	for ((n = 0; n < nodes; n++)); do
		start "$dir/node$n.log" "$OUT/echo" -addr "127.0.0.1:$((PORT + n))" -log-level warn "${redis[@]}"
		wait_port $((PORT + n)) "${PIDS[-1]}" "$dir/node$n.log" || return 1
		urls+="${urls:+,}ws://127.0.0.1:$((PORT + n))/broadcast"
	done
	local rc=0
	GOMAXPROCS=1 "${LG_PIN[@]}" "$OUT/loadgen" -url "$urls" -mode broadcast -size 64 "${args[@]}" \
		-duration "$DURATION" -warmup "$WARMUP" -src-ips "$SRC_IPS" -server strand -cell "$cell" \
		-quiet >"$dir/loadgen.log" 2>&1 || rc=$?
	stop_all
	local tput lat
	tput=$(sed -nE 's/^  throughput: ([0-9]+) msgs\/s.*/\1/p' "$dir/loadgen.log")
	lat=$(grep -m1 'latency us:' "$dir/loadgen.log" || true)
	printf '%-18s #%d rc=%d  %s deliveries/s; %s\n' "$cell" "$i" "$rc" "${tput:-?}" "$(sed -E 's/^ +//' <<<"$lat")"
	if ((rc != 0)) || [[ -z $tput ]]; then
		grep -E '^  (errors|     )' "$dir/loadgen.log" | head -5 >&2 || true
		for f in "$dir"/node*.log; do tail -5 "$f" >&2; done
		die "run $cell #$i failed"
	fi
	TPUT[$cell]="${TPUT[$cell]:-} $tput"
	P50[$cell]="${P50[$cell]:-} $(sed -nE 's/.* p50=([0-9.]+) .*/\1/p' <<<"$lat")"
	P99[$cell]="${P99[$cell]:-} $(sed -nE 's/.* p99=([0-9.]+) .*/\1/p' <<<"$lat")"
	P999[$cell]="${P999[$cell]:-} $(sed -nE 's/.* p99\.9=([0-9.]+) .*/\1/p' <<<"$lat")"
}

load1=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
log "cells: ${CELLS[*]}; $REPEAT repeat(s) x $DURATION (warmup $WARMUP); load average $load1 at the start"
for ((i = 0; i < REPEAT; i++)); do
	for ((k = 0; k < ${#CELLS[@]}; k++)); do
		run_cell "${CELLS[$(((i + k) % ${#CELLS[@]}))]}" $((i + 1))
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
base=$(median <<<"${TPUT[${CELLS[0]}]}")
echo
echo "Broadcast in one room, 64 B, median of $REPEAT x $DURATION ($(go env GOVERSION), $(nproc) cores, servers and Redis on core $SERVER_CPU, load generator on core $LOADGEN_CPU, load average $load1 at the start):"
echo
echo "| cell | deliveries/s (runs) | median | ÷ one node | latency p50 / p99 / p99.9 (ms, medians) |"
echo "|---|---|--:|--:|---|"
for c in "${CELLS[@]}"; do
	m=$(median <<<"${TPUT[$c]}")
	awk -v c="$c" -v runs="${TPUT[$c]# }" -v m="$m" -v b="$base" \
		-v p50="$(median <<<"${P50[$c]}")" -v p99="$(median <<<"${P99[$c]}")" -v p999="$(median <<<"${P999[$c]}")" \
		'BEGIN { r = sprintf("%.2f×", m/b); if (c ~ /-r[0-9]/) r = "(fixed rate)";
			printf "| %s | %s | %d | %s | %.2f / %.2f / %.2f |\n", c, runs, m, r, p50/1000, p99/1000, p999/1000 }'
done
