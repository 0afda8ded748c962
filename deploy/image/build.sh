#!/usr/bin/env bash
# Build stampflow's image from the debootstrapped base and run it (`make image`).
#
#   deploy/image/build.sh                # engine, base, image, then the smoke runs below
#   deploy/image/build.sh --build-only   # engine, base, image (tests/deploy/test_image.py)
#   deploy/image/build.sh --keep-engine  # leave a dockerd it started running
#
# 1. A Docker engine: the one that answers, or Debian's docker.io installed and dockerd
#    started (deploy/image/engine.sh; exit 10/11 with the reason where none can be had).
#    A dockerd this script started is stopped when it exits, unless --keep-engine.
# 2. stampflow-base:bookworm (deploy/image/base.sh: debootstrap + docker import, cached).
# 3. The image ($STAMPFLOW_IMAGE, default stampflow:0.1.0) from deploy/Dockerfile; the
#    context is exactly the `!` entries of deploy/Dockerfile.dockerignore, sent as a tar.
# 4. Smoke runs, as the image's non-root user: `stampflow --help`, `stampflow demo`, and
#    `stampflow run` against a local Kafka broker (deploy/kafka, on the host network):
#    packets replayed into a topic come out annotated on another.
# Prints each step's time and the image size. Extra `docker build` options: $DOCKER_BUILD_ARGS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
IMAGE=${STAMPFLOW_IMAGE:-stampflow:0.1.0}
STATE=${STAMPFLOW_ENGINE_STATE:-/tmp/stampflow-dockerd}
export STAMPFLOW_ENGINE_STATE=$STATE
# The legacy builder: no buildx plugin or BuildKit frontend image is needed.
export DOCKER_BUILDKIT=0

smoke=1
keep_engine=0
for arg in "$@"; do
    case "$arg" in
        --build-only) smoke=0 ;;
        --keep-engine) keep_engine=1 ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

say() { echo "build.sh: $*" >&2; }
t0=$SECONDS
step() { say "[$((SECONDS - t0))s] $*"; }

cleanup() {
    local code=$?
    if [ -n "${kafka_dir:-}" ]; then
        "$REPO/deploy/kafka/kafka.sh" stop --dir "$kafka_dir" >/dev/null 2>&1 || true
        rm -rf "$kafka_dir"
    fi
    [ -n "${daemon:-}" ] && docker rm -f "$daemon" >/dev/null 2>&1
    if [ "$started_engine" = 1 ] && [ "$keep_engine" = 0 ]; then
        "$HERE/engine.sh" stop || true
    fi
    exit "$code"
}
started_engine=0
trap cleanup EXIT

step "Docker engine"
if ! "$HERE/engine.sh" status; then
    "$HERE/engine.sh" start  # exits 10/11 with the reason where no engine can be had
    [ -f "$STATE/started" ] && started_engine=1
fi

step "base image"
"$HERE/base.sh"

step "image $IMAGE"
cd "$REPO"
# The context: the dockerignore's `!` entries (the legacy builder ignores that file) plus the
# Dockerfile itself, without bytecode.
mapfile -t context < <(sed -n 's|^!\(.*[^/]\)/*$|\1|p' deploy/Dockerfile.dockerignore)
build() {
    # shellcheck disable=SC2086  # DOCKER_BUILD_ARGS is a list of options
    tar -c --exclude=__pycache__ --exclude='*.pyc' "${context[@]}" deploy/Dockerfile \
        | docker build --network host --force-rm ${DOCKER_BUILD_ARGS:-} \
            -f deploy/Dockerfile "$@" -
}
build_start=$SECONDS
# The build stage is tagged (stampflow-build:cache) so that the next build reuses its layers
# while the ones it replaced, left untagged, are pruned: a CI machine's disk does not fill up
# with a 600 MB dependency layer per change of pyproject.toml.
build --target build -t stampflow-build:cache
build -t "$IMAGE"
docker image prune -f --filter label=org.stampflow.stage=build >/dev/null
build_s=$((SECONDS - build_start))
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
say "image $IMAGE built in ${build_s}s: $((size / 1000000)) MB ($size bytes)"

if [ "$smoke" = 0 ]; then
    exit 0
fi

in_image() { docker run --rm --network host --entrypoint "$1" "$IMAGE" "${@:2}"; }

step "runs as a non-root user"
uid=$(in_image id -u)
[ "$uid" != 0 ] || { say "the image runs as root"; exit 1; }
say "uid $uid"
in_image stampflow --help >/dev/null

step "stampflow demo"
demo=$(in_image stampflow demo --n 300)
echo "$demo" >&2
grep -q "against the truth table" <<<"$demo" || { say "the demo printed no scores"; exit 1; }

step "stampflow run against a local broker (host network)"
if ! ls "$REPO"/deploy/kafka/lib/kafka_2.13-*.jar >/dev/null 2>&1; then
    say "no Kafka jars in deploy/kafka/lib (make kafka-jars): broker run left out"
    exit 1
fi
kafka_dir=$(mktemp -d "${TMPDIR:-/tmp}/stampflow-image-kafka.XXXXXX")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$REPO/deploy/kafka/kafka.sh" start --dir "$kafka_dir" --port "$port" \
    --controller-port "$((port + 1))" >/dev/null
bootstrap=127.0.0.1:$port
n=40
in_image python -c "
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({'bootstrap.servers': '$bootstrap'})
for future in admin.create_topics([NewTopic(t, 1, 1) for t in ('alerts', 'annotated', 'dead')]).values():
    future.result(30)
"
daemon=stampflow-smoke-$$
docker run -d --name "$daemon" --network host "$IMAGE" --bootstrap "$bootstrap" \
    --topics alerts --output-topic annotated --dead-letter-topic dead --group-id smoke \
    --classifiers blend,morphology --metrics-port 0 >/dev/null
in_image sh -c "stampflow synth /tmp/night --n $n --broken-fraction 0 --multiband-fraction 0.25 \
    --quiet >/dev/null \
    && stampflow replay /tmp/night --to alerts --bootstrap $bootstrap --quiet"
# --quiet: only "N matching record(s)", on stderr; --classifier: annotated by blend.
consumed=$(in_image stampflow consume --bootstrap "$bootstrap" --topic annotated \
    --from-beginning --timeout 60 --max "$n" --classifier blend --quiet 2>&1)
echo "$consumed" >&2
got=$(sed -n 's/^\([0-9][0-9]*\) matching record.*/\1/p' <<<"$consumed" | tail -n 1)
docker stop -t 40 "$daemon" >/dev/null
docker logs "$daemon" 2>&1 | tail -n 20 >&2
[ "${got:-0}" -ge "$n" ] || { say "expected $n annotated alerts on the output topic, read ${got:-0}"; exit 1; }
step "done: $IMAGE, $((size / 1000000)) MB, built in ${build_s}s"
