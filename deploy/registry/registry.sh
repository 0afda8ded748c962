#!/usr/bin/env bash
# A local schema registry: Apicurio Registry (in-memory storage) on loopback, run from the
# distribution Maven fetches into deploy/registry/lib/. For development and the tests; it
# serves the Confluent Schema Registry API at http://127.0.0.1:PORT/apis/ccompat/v7.
#
#   registry.sh fetch                       fetch and unpack the distribution (cached)
#   registry.sh start  [options]            start, wait until the Confluent API answers
#   registry.sh stop   [--dir DIR] [--kill] stop (SIGTERM; --kill: SIGKILL)
#   registry.sh status [--dir DIR]           print "running <url>" or "stopped" (exit 0 / 3)
#
# start options (environment variable in brackets):
#   --dir DIR       work dir: registry.log, registry.pid, registry.url [REGISTRY_DIR, deploy/registry/run]
#   --port PORT     HTTP port on 127.0.0.1                              [REGISTRY_PORT, 8081]
#   --timeout S     seconds to wait for the registry to be ready        [REGISTRY_START_TIMEOUT, 90]
# The heap is REGISTRY_HEAP_OPTS (default -Xms64m -Xmx512m). Storage is in memory: a
# restarted registry is empty.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/lib"

die() { echo "registry.sh: $*" >&2; exit 1; }

runner_jar() {
    # 3.1 and later ship Quarkus's fast-jar layout (quarkus-run.jar), 3.0 a legacy runner jar.
    ls "$LIB"/quarkus-run.jar "$LIB"/apicurio-registry-app-*-runner.jar 2>/dev/null | head -n 1
}

fetch() {
    # Cached: nothing to do while the unpacked distribution is newer than the pom naming it.
    if [[ -f "$LIB/.fetched" && "$LIB/.fetched" -nt "$HERE/pom.xml" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "Maven (mvn) is not installed; it fetches Apicurio Registry"
    # Start from an empty lib/: jars of a previous version must not stay on the classpath.
    rm -rf "$LIB"
    mkdir -p "$HERE/.m2"
    mvn -B -f "$HERE/pom.xml" -Dmaven.repo.local="$HERE/.m2" dependency:get \
        >"$HERE/.m2/fetch.log" 2>&1 ||
        { tail -n 40 "$HERE/.m2/fetch.log" >&2; die "Maven could not fetch Apicurio Registry"; }
    local version archive
    version="$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' "$HERE/pom.xml")"
    archive="$HERE/.m2/io/apicurio/apicurio-registry-app/$version/apicurio-registry-app-$version-all.tar.gz"
    [[ -f $archive ]] || die "Maven finished but $archive is missing"
    mkdir -p "$LIB"
    tar -xzf "$archive" -C "$LIB" || die "could not unpack $archive"
    [[ -n "$(runner_jar)" ]] || die "Maven finished but no Apicurio Registry runner jar in $LIB"
    touch "$LIB/.fetched"
}

need_jars() {
    [[ -n "$(runner_jar)" ]] ||
        die "Apicurio Registry missing in $LIB: run \`$0 fetch\` first"
    command -v java >/dev/null || die "java not found: Apicurio Registry 3 needs Java 17 or newer"
}

DIR="${REGISTRY_DIR:-$HERE/run}"
PORT="${REGISTRY_PORT:-8081}"
TIMEOUT="${REGISTRY_START_TIMEOUT:-90}"
KILL=0

parse_options() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --kill) ;;
            *) [[ $# -ge 2 ]] || die "$1 needs a value" ;;
        esac
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            --port) PORT="$2"; shift 2 ;;
            --timeout) TIMEOUT="$2"; shift 2 ;;
            --kill) KILL=1; shift ;;
            *) die "unknown option: $1" ;;
        esac
    done
    for value in "$PORT" "$TIMEOUT"; do
        [[ "$value" =~ ^[0-9]+$ ]] || die "not a positive integer: $value"
    done
    if [[ -d $DIR ]]; then DIR="$(cd "$DIR" && pwd)"; fi
    PIDFILE="$DIR/registry.pid"
}

running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid command_line
    pid="$(cat "$PIDFILE")"
    kill -0 "$pid" 2>/dev/null || return 1
    # A stale pid file may name a process that reused the id: only ever signal our registry.
    command_line="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ $command_line == *"-Dstampflow.registry.dir=$DIR "* ]] || return 1
    echo "$pid"
}

log_tail() {
    echo "---- last lines of $DIR/registry.log ----" >&2
    grep -v 'apicurio-registry.access' "$DIR/registry.log" 2>/dev/null | tail -n 40 >&2 || true
}

ready() {
    # The Confluent-compatible API answering is what the clients need.
    if command -v curl >/dev/null; then
        curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/apis/ccompat/v7/subjects"
    else
        (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
    fi
}

start() {
    need_jars
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
    PIDFILE="$DIR/registry.pid"
    if pid="$(running_pid)"; then
        die "already running (pid $pid) in $DIR"
    fi
    if ready; then
        die "something already answers on 127.0.0.1:$PORT"
    fi
    # setsid: its own session, so a Ctrl-C meant for a test run reaches it only through stop.
    # The working directory is DIR, so nothing the application writes lands in the checkout.
    # shellcheck disable=SC2086  # REGISTRY_HEAP_OPTS is a list of JVM flags
    (cd "$DIR" && exec setsid java ${REGISTRY_HEAP_OPTS:--Xms64m -Xmx512m} -XX:+UseSerialGC \
        -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dstampflow.registry.dir="$DIR" \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$PORT" \
        -Dquarkus.log.console.color=false \
        -jar "$(runner_jar)" >"$DIR/registry.log" 2>&1 </dev/null) &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    local deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log_tail
            rm -f "$PIDFILE"
            die "the registry exited during start-up"
        fi
        if ready; then
            echo "http://127.0.0.1:$PORT/apis/ccompat/v7" >"$DIR/registry.url"
            echo "registry running: http://127.0.0.1:$PORT/apis/ccompat/v7 (pid $pid, dir $DIR)"
            return 0
        fi
        sleep 0.2
    done
    log_tail
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    die "the registry did not become ready within ${TIMEOUT}s"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PIDFILE"
        echo "registry not running in $DIR"
        return 0
    fi
    if ((KILL)); then
        kill -KILL "$pid"
    else
        kill -TERM "$pid"
    fi
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "registry.sh: no clean shutdown within 30 s; killing pid $pid" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    echo "registry stopped (dir $DIR)"
}

status() {
    local pid
    if pid="$(running_pid)"; then
        echo "running $(cat "$DIR/registry.url" 2>/dev/null) (pid $pid)"
    else
        echo "stopped"
        return 3
    fi
}

command="${1:-}"
[[ $# -gt 0 ]] && shift
case "$command" in
    fetch) fetch ;;
    start) parse_options "$@"; start ;;
    stop) parse_options "$@"; stop ;;
    status) parse_options "$@"; status ;;
    *) die "usage: registry.sh {fetch|start|stop|status} [options] (see the header of $0)" ;;
esac
