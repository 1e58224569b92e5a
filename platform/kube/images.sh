#!/bin/bash
# The images of knit and the danmaku app, the same Dockerfiles online and offline: the Python
# packages are wheels built here on the host (pip and PyPI, constraints.txt) and installed in the
# image with --no-index, so no image build reaches the network. The base: see choose_base in
# image-lib.sh. Then each image goes onto the kind cluster's node (kind load; a no-op when the node has it).
# Cached: an image whose sources have not changed is not built again. Usage: platform/kube/images.sh
#
#   knit/platform:dev       knit controller (platform/Dockerfile); also runs knit.testing.sample_app
#   danmaku-web:dev         apps/danmaku-web/Dockerfile
#   danmaku-processor:dev   apps/danmaku-processor/Dockerfile
#   knit/kafka:dev          Apache Kafka (platform/kube/kafka.Dockerfile): Debian's Java 17, the jars
#                           `make kafka-broker` put in .kafka/lib, platform/apache-kafka/apache_kafka.py
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=${KIND_CLUSTER_NAME:-knit}
PIP=${PIP:-$ROOT/.venv/bin/pip}
WHEELS=$ROOT/build/wheels
KAFKA_LIB=$ROOT/.kafka/lib
started=$SECONDS

say() { echo "knit: images: [$((SECONDS - started)) s] $*"; }
die() { echo "knit: images: $*" >&2; exit 1; }
# shellcheck source=image-lib.sh
. "$HERE/image-lib.sh"

docker info >/dev/null 2>&1 || die "docker isn't answering; run: make docker-engine (as root)"
[ -f "$KAFKA_LIB/.assembled" ] || die "no Apache Kafka jars in .kafka/lib; run: make kafka-broker"
cd "$ROOT"
choose_base

# What the images are made of: the sources (committed, and any change not committed yet), the
# pinned versions, the Dockerfiles and the base. An image labelled with the same digest is current.
INPUTS=(platform/src platform/pyproject.toml platform/Dockerfile apps constraints.txt)
inputs=$( { git ls-files -s -- "${INPUTS[@]}"; git diff HEAD -- "${INPUTS[@]}"; echo "$base"; } | sha256sum | cut -c1-16)
IMAGES=(knit/platform:dev=platform/Dockerfile danmaku-web:dev=apps/danmaku-web/Dockerfile
        danmaku-processor:dev=apps/danmaku-processor/Dockerfile)

stale=0
for spec in "${IMAGES[@]}"; do current "${spec%%=*}" "$inputs" || stale=1; done
if [ $stale = 1 ]; then
  say "wheels of knit, the app and their dependencies (constraints.txt) into build/wheels"
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  "$PIP" wheel --quiet -c constraints.txt -w "$WHEELS" ./platform ./apps/danmaku-events ./apps/danmaku-web \
    ./apps/danmaku-processor gunicorn
fi


for spec in "${IMAGES[@]}"; do
  image=${spec%%=*} dockerfile=${spec#*=}
  if current "$image" "$inputs"; then
    say "$image is current (sources unchanged since it was built)"
  else
    say "building $image ($dockerfile)"
    docker build -q --build-arg "BASE_IMAGE=$base" --label "knit.inputs=$inputs" -t "$image" -f "$dockerfile" . >/dev/null
  fi
  load "$image"
done

# Apache Kafka: its own inputs (the Dockerfile, the script and its log config, the jars, the base),
# hashed by content, so neither a change to knit's sources rebuilds it nor a new file goes unseen.
# Debian's Java 17 needs bookworm: python:3.11-slim now means trixie.
KAFKA_IMAGE=knit/kafka:dev
kafka_base=$base
[ "$base" = python:3.11-slim ] && kafka_base=python:3.11-slim-bookworm
KAFKA_INPUTS=(platform/kube/kafka.Dockerfile platform/apache-kafka/apache_kafka.py platform/apache-kafka/log4j2.xml)
kafka_inputs=$( { sha256sum "${KAFKA_INPUTS[@]}"; (cd "$KAFKA_LIB" && sha256sum -- *.jar); echo "$kafka_base"; } \
  | sha256sum | cut -c1-16)
if current "$KAFKA_IMAGE" "$kafka_inputs"; then
  say "$KAFKA_IMAGE is current (inputs unchanged since it was built)"
else
  say "building $KAFKA_IMAGE (platform/kube/kafka.Dockerfile; Debian's Java 17 and the jars in .kafka/lib)"
  context=$(mktemp -d "${TMPDIR:-/tmp}/knit-kafka-image.XXXXXX")
  trap 'rm -rf "$context"' EXIT
  cp -al "$KAFKA_LIB" "$context/lib" 2>/dev/null || cp -a "$KAFKA_LIB" "$context/lib"
  cp platform/apache-kafka/apache_kafka.py platform/apache-kafka/log4j2.xml "$context/"
  cp platform/kube/kafka.Dockerfile "$context/Dockerfile"
  docker build -q --build-arg "BASE_IMAGE=$kafka_base" --label "knit.inputs=$kafka_inputs" -t "$KAFKA_IMAGE" \
    "$context" >/dev/null
  rm -rf "$context"
fi
load "$KAFKA_IMAGE"
say "done"
