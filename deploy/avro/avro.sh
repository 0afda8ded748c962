#!/usr/bin/env bash
# Apache Avro's own command-line tools (avro-tools, the Java implementation), from the jar
# Maven fetches into deploy/avro/lib/. The tests read stampflow's published schemas and output
# files with them (tests/results/test_avro_java.py); anyone can do the same by hand.
#
#   avro.sh fetch             fetch the jar (cached; one shaded jar, ~70 MB)
#   avro.sh jar               print the jar's path (exit 1 when not fetched)
#   avro.sh tools ARGS...     run avro-tools, e.g.
#       avro.sh tools getschema out/annotated-full-x.avro
#       avro.sh tools tojson --pretty out/annotated-full-x.avro
#       avro.sh tools random --schema-file schemas/slim-1.1.avsc --count 3 /tmp/slim.avro
# The heap is AVRO_TOOLS_HEAP_OPTS (default -Xmx256m).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/lib"

die() { echo "avro.sh: $*" >&2; exit 1; }

jar() {
    local found=("$LIB"/avro-tools-*.jar)
    [[ -f ${found[0]} ]] && echo "${found[0]}"
    return 0
}

fetch() {
    # Cached: nothing to do while the jar is newer than the pom that names it.
    if [[ -f "$LIB/.fetched" && "$LIB/.fetched" -nt "$HERE/pom.xml" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "Maven (mvn) is not installed; it fetches avro-tools"
    # Start from an empty lib/: a previous version's jar must not be the one found.
    # A private local repository (the gitignored deploy/avro/.m2) makes a re-fetch cheap.
    rm -rf "$LIB"
    mkdir -p "$HERE/.m2"
    mvn -B -f "$HERE/pom.xml" -Dmaven.repo.local="$HERE/.m2" dependency:copy-dependencies \
        >"$HERE/.m2/fetch.log" 2>&1 ||
        { tail -n 40 "$HERE/.m2/fetch.log" >&2; die "Maven could not fetch avro-tools"; }
    [[ -n "$(jar)" ]] || die "Maven finished but no avro-tools jar in $LIB"
    touch "$LIB/.fetched"
}

need_jar() {
    [[ -n "$(jar)" ]] ||
        die "avro-tools missing in $LIB: run \`make avro-jars\` (or \`$0 fetch\`) first"
    command -v java >/dev/null || die "java not found: avro-tools needs Java 11 or newer"
}

command="${1:-}"
[[ $# -gt 0 ]] && shift
case "$command" in
    fetch) fetch ;;
    jar) [[ -n "$(jar)" ]] || die "avro-tools not fetched: run \`$0 fetch\`"; jar ;;
    tools)
        need_jar
        # shellcheck disable=SC2086  # AVRO_TOOLS_HEAP_OPTS is a list of JVM flags
        exec java ${AVRO_TOOLS_HEAP_OPTS:--Xmx256m} -jar "$(jar)" "$@"
        ;;
    *) die "usage: avro.sh {fetch|jar|tools ARGS...} (see the header of $0)" ;;
esac
