#!/usr/bin/env bash
# Installs the tools the deploy tests need, when missing (idempotent; quick when all present):
#   - Debian's `prometheus` package: `promtool` (checks and unit-tests the alert rules) and the
#     Prometheus server (the real scrape test);
#   - a kustomize renderer: `kubectl kustomize` (kubectl embeds kustomize) or `kustomize`.
# Needs root (or sudo) only when something must be installed. CI runs it before the tests.
set -euo pipefail

say() { echo "install-tools: $*"; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "install-tools: need root to run: $*" >&2
        exit 1
    fi
}

install_prometheus() {
    if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
        say "prometheus + promtool present ($(promtool --version 2>&1 | head -n 1))"
        return 0
    fi
    command -v apt-get >/dev/null || {
        echo "install-tools: no apt-get; install Prometheus (server + promtool) by hand" >&2
        exit 1
    }
    say "installing Debian's prometheus package (server + promtool)"
    # The package would start a Prometheus service on :9090 at install time; the tests start
    # their own server. A policy-rc.d answering 101 ("action forbidden") stops that, and is
    # removed again unless one was there before.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
        added_policy=1
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if ((added_policy)); then
        as_root rm -f "$policy"
    fi
    say "installed $(promtool --version 2>&1 | head -n 1)"
}

check_renderer() {
    # Rendering must work offline: kustomize resolves only the local files.
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    if command -v kubectl >/dev/null && kubectl kustomize "$here/k8s/base" >/dev/null 2>&1; then
        say "renderer: kubectl kustomize ($(kubectl version --client 2>/dev/null | tail -n 1))"
    elif command -v kustomize >/dev/null; then
        say "renderer: kustomize ($(kustomize version 2>/dev/null))"
    elif command -v go >/dev/null; then
        say "installing kustomize with go install (Go module proxy)"
        as_root env GOBIN=/usr/local/bin go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0
    else
        echo "install-tools: no kustomize renderer (kubectl or kustomize) and no Go to build" \
            "one: install kubectl (it embeds kustomize)" >&2
        exit 1
    fi
}

install_prometheus
check_renderer
