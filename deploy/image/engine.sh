#!/usr/bin/env bash
# A Docker engine for building and running stampflow's image, on a machine with none running.
#
#   deploy/image/engine.sh start   # answer, or install (Debian's docker.io) and start dockerd
#   deploy/image/engine.sh stop    # stop dockerd, only if `start` started it
#   deploy/image/engine.sh status  # exit 0 when an engine answers
#
# `start` exits 0 once `docker info` answers. Where no engine can be had it exits with
#   10  no engine: dockerd missing and not installable here (not root, or no apt-get)
#   11  dockerd installed but it does not start or answer (its log tail is printed)
# and says why on stderr; callers (tests/deploy/test_image.py) report that reason.
#
# The daemon is started with overlay2 and a bridge first; where that fails, again with
# vfs storage and no bridge/iptables (the image build and runs use --network host anyway).
# Its log and pid live in $STAMPFLOW_ENGINE_STATE (default /tmp/stampflow-dockerd).
set -euo pipefail

STATE=${STAMPFLOW_ENGINE_STATE:-/tmp/stampflow-dockerd}
SOCKET=${STAMPFLOW_DOCKER_SOCKET:-/var/run/docker.sock}
WAIT_S=${STAMPFLOW_ENGINE_WAIT_S:-60}

say() { echo "engine.sh: $*" >&2; }

answers() { timeout 10 docker info >/dev/null 2>&1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

install_packages() {  # install_packages PKG...: Debian packages, as root, or return 1
    if ! command -v apt-get >/dev/null || { [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; }; then
        return 1
    fi
    say "installing $* (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

ensure_client_and_daemon() {
    if command -v dockerd >/dev/null && command -v docker >/dev/null; then
        return 0
    fi
    if ! install_packages docker.io; then
        say "no Docker engine: dockerd is not installed and cannot be installed here" \
            "(needs root or password-less sudo, and apt-get)"
        exit 10
    fi
    if ! command -v dockerd >/dev/null; then
        say "no Docker engine: docker.io installed but no dockerd on PATH"
        exit 10
    fi
}

wait_for_engine() {  # wait_for_engine PID: 0 once it answers, 1 if it died or timed out
    local pid=$1 i
    for ((i = 0; i < WAIT_S * 2; i++)); do
        answers && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.5
    done
    return 1
}

launch() {  # launch ATTEMPT [dockerd options...]
    local attempt=$1
    shift
    local log="$STATE/dockerd.$attempt.log"
    say "starting dockerd${*:+ $*} (log: $log)"
    rm -f "$STATE/pid"
    # setsid: the daemon outlives this script and is not hit by the caller's Ctrl-C. Its own
    # --pidfile names the daemon itself (not a shell or sudo in front of it) for `stop`.
    local command=(setsid dockerd --host "unix://$SOCKET" --pidfile "$STATE/pid" "$@")
    if [ "$(id -u)" = 0 ]; then
        "${command[@]}" >"$log" 2>&1 </dev/null &
    else
        # shellcheck disable=SC2024  # the log belongs to the caller, not root
        sudo -n "${command[@]}" >"$log" 2>&1 </dev/null &
    fi
    local pid=$!
    if wait_for_engine "$pid"; then
        ln -sf "$log" "$STATE/dockerd.log"
        return 0
    fi
    [ -s "$STATE/pid" ] && pid=$(cat "$STATE/pid")
    say "dockerd${*:+ $*} did not answer within ${WAIT_S}s; its log ends with:"
    tail -n 25 "$log" >&2 || true
    stop_pid "$pid"
    rm -f "$STATE/pid"
    return 1
}

stop_pid() {
    local pid=$1 i
    as_root kill -0 "$pid" 2>/dev/null || return 0
    as_root kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        as_root kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    as_root kill -KILL "$pid" 2>/dev/null || true
}

start() {
    if answers; then
        say "a Docker engine already answers; using it"
        return 0
    fi
    ensure_client_and_daemon
    if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then
        say "dockerd is installed but cannot be started: it needs root (or password-less sudo)"
        exit 11
    fi
    mkdir -p "$STATE"
    if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
        say "dockerd from an earlier start (pid $(cat "$STATE/pid")) is running but not answering"
        stop_pid "$(cat "$STATE/pid")"
    fi
    rm -f "$STATE/pid" "$STATE/started"
    if launch default || launch vfs --storage-driver=vfs --iptables=false --bridge=none; then
        touch "$STATE/started"
        say "dockerd $(dockerd --version | sed 's/^Docker version //') answers (pid $(cat "$STATE/pid"))"
        return 0
    fi
    say "dockerd is installed but does not start here (see the log tails above)"
    exit 11
}

stop() {
    if [ ! -f "$STATE/started" ]; then
        return 0  # not ours: leave it running
    fi
    local pid
    pid=$(cat "$STATE/pid" 2>/dev/null || true)
    [ -n "$pid" ] && stop_pid "$pid"
    rm -f "$STATE/started" "$STATE/pid"
    say "stopped the dockerd it had started"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) answers ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
