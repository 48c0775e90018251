#!/usr/bin/env bash
# bench/tls-idle.sh — what an idle TLS connection costs Strand: server RSS
# per idle wss:// connection next to plain ws:// ones, in the same run.
#
#   bench/tls-idle.sh                  # 5,000 connections, 3 repeats
#   CONNS=2000 REPEAT=1 bench/tls-idle.sh
#
# For each repeat it runs examples/echo three times, in a rotating order:
#   ws-poll       plain TCP, -reader poll (the default on Linux)
#   ws-goroutine  plain TCP, -reader goroutine
#   wss           TLS (-tls-cert/-tls-key, a certificate made by cmd/certgen);
#                 TLS connections are read by goroutines in every mode
# and holds CONNS idle connections from the load generator's idle mode
# (loadgen -mode idle: server RSS growth / connections), as bench/run.sh's
# idle cell does. Server and load generator each get one core
# (GOMAXPROCS=1, taskset) as in bench/run.sh. It prints every run and a
# table of medians with the ratios to the plain variants of the same run.
#
# Settings (environment): CONNS REPEAT HOLD PORT SRC_IPS SERVER_CPU
# LOADGEN_CPU.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

CONNS=${CONNS:-5000}
REPEAT=${REPEAT:-3}
HOLD=${HOLD:-10s}
PORT=${PORT:-18090}
SRC_IPS=${SRC_IPS:-127.0.0.1-127.0.0.50}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
VARIANTS=(ws-poll ws-goroutine wss)

log() { printf 'tls-idle.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT=$REPEAT: want a positive integer"
[[ $CONNS =~ ^[1-9][0-9]*$ ]] || die "CONNS=$CONNS: want a positive integer"
command -v go >/dev/null || die "go is not on PATH"

OUT=$(mktemp -d "${TMPDIR:-/tmp}/strand-tls-idle.XXXXXX")
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

SRV_PIN=()
LG_PIN=()
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
	SRV_PIN=(taskset -c "$SERVER_CPU")
	LG_PIN=(taskset -c "$LOADGEN_CPU")
else
	log "warning: taskset or a second CPU is missing: server and load generator are NOT pinned"
fi

log "building into $OUT"
(cd "$BENCH_DIR" && go build -o "$OUT/loadgen" ./cmd/loadgen && go build -o "$OUT/certgen" ./cmd/certgen) ||
	die "building the load generator failed"
(cd "$ROOT" && go build -o "$OUT/echo" ./examples/echo) || die "building examples/echo failed"
"$OUT/certgen" -dir "$OUT" || die "certgen failed"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
port_open && die "something already listens on 127.0.0.1:$PORT; set PORT"

start_server() { # variant logfile
	local args=(-addr "127.0.0.1:$PORT" -log-level warn)
	case $1 in
	ws-poll) args+=(-reader poll) ;;
	ws-goroutine) args+=(-reader goroutine) ;;
	wss) args+=(-tls-cert "$OUT/cert.pem" -tls-key "$OUT/key.pem") ;;
	esac
	GOMAXPROCS=1 "${SRV_PIN[@]}" "$OUT/echo" "${args[@]}" >"$2" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 100); do
		port_open && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	log "examples/echo ($1) did not start listening (log: $2)"
	cat "$2" >&2
	return 1
}

stop_server() {
	[[ -n $SERVER_PID ]] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

load1=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
log "$CONNS idle connections, hold $HOLD, $REPEAT repeat(s); load average $load1 at the start"

declare -A RSS # variant -> space-separated bytes per connection
for ((i = 0; i < REPEAT; i++)); do
	for ((k = 0; k < ${#VARIANTS[@]}; k++)); do
		v=${VARIANTS[$(((i + k) % ${#VARIANTS[@]}))]}
		scheme=ws
		lgargs=()
		if [[ $v == wss ]]; then
			scheme=wss
			lgargs=(-ca "$OUT/cert.pem")
		fi
		start_server "$v" "$OUT/$v.$i.server.log" || die "server did not start"
		rc=0
		GOMAXPROCS=1 "${LG_PIN[@]}" "$OUT/loadgen" -url "$scheme://127.0.0.1:$PORT/echo" "${lgargs[@]}" \
			-mode idle -conns "$CONNS" -hold "$HOLD" -src-ips "$SRC_IPS" -server-pid "$SERVER_PID" \
			-server "$v" -cell "idle-c$CONNS" -quiet >"$OUT/$v.$i.log" 2>&1 || rc=$?
		stop_server
		line=$(grep -m1 'server rss:' "$OUT/$v.$i.log" || true)
		per=$(sed -nE 's/.*, ([0-9.]+) bytes per connection.*/\1/p' <<<"$line")
		printf '%-13s #%d rc=%d  %s\n' "$v" "$((i + 1))" "$rc" "$(sed -E 's/^ +//' <<<"$line")"
		if ((rc != 0)) || [[ -z $per ]]; then
			grep -E '^  (errors|     )' "$OUT/$v.$i.log" | head -5 >&2 || true
			die "run $v #$((i + 1)) failed"
		fi
		RSS[$v]="${RSS[$v]:-} $per"
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A MED
for v in "${VARIANTS[@]}"; do
	MED[$v]=$(median <<<"${RSS[$v]}")
done
echo
echo "Server RSS per idle connection, $CONNS connections, median of $REPEAT ($(go env GOVERSION), $(nproc) cores, load average $load1 at the start):"
echo
echo "| variant | bytes per connection (runs) | median | ÷ ws-poll | ÷ ws-goroutine |"
echo "|---|---|--:|--:|--:|"
for v in "${VARIANTS[@]}"; do
	awk -v v="$v" -v runs="${RSS[$v]# }" -v m="${MED[$v]}" -v p="${MED[ws-poll]}" -v g="${MED[ws-goroutine]}" \
		'BEGIN { printf "| %s | %s | %.1f KiB | %.2f× | %.2f× |\n", v, runs, m/1024, m/p, m/g }'
done
