#!/usr/bin/env bash
# natter on a three-node NATS cluster on this machine, in the background.
#
#   scripts/cluster.sh up     build, configure, start 3 nats-servers and 2 natters, wait until ready
#   scripts/cluster.sh down   stop them all (SIGINT, then wait); the data stays
#
# Everything lives in .cluster/: bin/ (nats-server built from the version in
# go.mod, natter), nats/ (what "natter nats init -cluster 3" writes, the
# nodes' stores included), natter-<i>/ (each natter's working and data dir),
# log/ and run/ (pid files). The ports can be moved with CLUSTER_NATS_PORT,
# CLUSTER_ROUTE_PORT, CLUSTER_WS_PORT and CLUSTER_HTTP_PORT: each is the
# first of successive ports, one per node or natter.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
c=$PWD/.cluster
nats_port=${CLUSTER_NATS_PORT:-4222}
route_port=${CLUSTER_ROUTE_PORT:-6222}
ws_port=${CLUSTER_WS_PORT:-8443}
http_port=${CLUSTER_HTTP_PORT:-8080}
nodes=(0 1 2)
natters=(0 1)

# running NAME: the pid in run/NAME.pid, if that process is still one of ours.
running() {
	local pidfile=$c/run/$1.pid pid
	[[ -f $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $(ps -o args= -p "$pid" 2>/dev/null) == "$c/bin/"* ]] || return 1
	echo "$pid"
}

# alive NAME: whether the process in run/NAME.pid has not exited. Unlike
# running, it holds from the moment start returns.
alive() {
	[[ -f $c/run/$1.pid ]] && kill -0 "$(<"$c/run/$1.pid")" 2>/dev/null
}

# start NAME DIR COMMAND...: runs COMMAND in DIR in a session of its own (so
# a Ctrl-C in this terminal does not reach it), logging to log/NAME.log.
start() {
	local name=$1 dir=$2
	shift 2
	(cd "$dir" && exec setsid "$@" >"$c/log/$name.log" 2>&1 </dev/null) &
	echo $! >"$c/run/$name.pid"
}

# http_ok URL: whether GET URL answers 200.
http_ok() {
	[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1") == 200 ]]
}

nodes_listening() {
	local i
	for i in "${nodes[@]}"; do
		(exec 3<>"/dev/tcp/127.0.0.1/$((nats_port + i))") 2>/dev/null || return 1
	done
}

natters_ready() {
	local i
	for i in "${natters[@]}"; do
		http_ok "http://127.0.0.1:$((http_port + i))/readyz" || return 1
	done
}

# wait_for WHAT CHECK NAME...: polls CHECK for up to 60s, failing as soon as
# one of the named processes has exited.
wait_for() {
	local what=$1 check=$2 deadline=$((SECONDS + 60)) name
	shift 2
	until $check; do
		for name in "$@"; do
			if ! alive "$name"; then
				echo "$name exited while waiting for $what; the end of $c/log/$name.log:" >&2
				tail -n 20 "$c/log/$name.log" >&2
				echo "stop the others with: scripts/cluster.sh down" >&2
				exit 1
			fi
		done
		if ((SECONDS > deadline)); then
			echo "still waiting for $what after 60s; see the logs in $c/log/ and stop everything with: scripts/cluster.sh down" >&2
			exit 1
		fi
		sleep 0.2
	done
}

up() {
	for name in "${nodes[@]/#/nats-}" "${natters[@]/#/natter-}"; do
		if pid=$(running "$name"); then
			echo "$name is running already (pid $pid): scripts/cluster.sh down first" >&2
			exit 1
		fi
	done
	mkdir -p "$c/bin" "$c/log" "$c/run"
	echo "building nats-server (the version in go.mod) and natter into $c/bin"
	go build -o "$c/bin/nats-server" github.com/nats-io/nats-server/v2
	go build -o "$c/bin/natter" ./cmd/natter

	# Again at every start: it keeps the keys and the stores, and rewrites
	# the configurations for the ports asked for.
	"$c/bin/natter" nats init -cluster "${#nodes[@]}" -dir "$c/nats" \
		-listen "127.0.0.1:$nats_port" -cluster-listen "127.0.0.1:$route_port" -ws "127.0.0.1:$ws_port" >/dev/null

	for i in "${nodes[@]}"; do
		start "nats-$i" "$c/nats" "$c/bin/nats-server" -c "$c/nats/nats-server-$i.conf"
	done
	# natter needs a node to connect to at start; it waits for the
	# cluster's JetStream itself.
	wait_for "the NATS nodes to accept connections" nodes_listening "${nodes[@]/#/nats-}"
	# Each natter runs in a folder of its own, so that no .env but
	# natter.env applies.
	for i in "${natters[@]}"; do
		mkdir -p "$c/natter-$i"
		(
			set -a
			. "$c/nats/natter.env"
			set +a
			export NATTER_HTTP_ADDR=127.0.0.1:$((http_port + i)) NATTER_DATA_DIR=$c/natter-$i/data
			start "natter-$i" "$c/natter-$i" "$c/bin/natter"
		)
	done

	wait_for "both natters to answer /readyz" natters_ready "${nodes[@]/#/nats-}" "${natters[@]/#/natter-}"

	local nats_urls
	nats_urls=$(sed -n 's/^NATTER_NATS_URL=//p' "$c/nats/natter.env")
	echo
	echo "natter on a ${#nodes[@]}-node NATS cluster:"
	for i in "${natters[@]}"; do
		echo "  natter-$i   http://127.0.0.1:$((http_port + i))"
	done
	echo "  NATS       $nats_urls"
	echo "  WebSocket  $(sed -n 's/^NATTER_WS_URLS=//p' "$c/nats/natter.env")"
	echo "  logs       $c/log/"
	echo "  nats CLI   $c/bin/natter creds admin -data-dir $c/nats -o admin.creds && nats --creds admin.creds -s $nats_urls stream ls"
	echo "  stop       task cluster:down (or scripts/cluster.sh down)"
}

# stop NAME: SIGINT, then wait for the process to exit; SIGKILL after 20s.
stop() {
	local pid
	if ! pid=$(running "$1"); then
		rm -f "$c/run/$1.pid"
		return
	fi
	kill -INT "$pid"
	local deadline=$((SECONDS + 20))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS > deadline)); then
			echo "$1 (pid $pid) still runs 20s after SIGINT; killing it" >&2
			kill -KILL "$pid"
		fi
		sleep 0.1
	done
	rm -f "$c/run/$1.pid"
	echo "stopped $1"
}

down() {
	# The natters first, so that they drain while the cluster still serves.
	for i in "${natters[@]}"; do stop "natter-$i"; done
	for i in "${nodes[@]}"; do stop "nats-$i"; done
	echo "the data stays in $c"
}

case ${1:-} in
up) up ;;
down) down ;;
*)
	echo "usage: scripts/cluster.sh up|down" >&2
	exit 2
	;;
esac
