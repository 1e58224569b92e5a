#!/bin/bash
# The images of knit and the danmaku app, the same Dockerfiles online and offline: the Python
# packages are wheels built here on the host (pip and PyPI, constraints.txt) and installed in the
# image with --no-index, so no image build reaches the network. The base: $BASE_IMAGE when set;
# python:3.11-slim when a registry answers; else knit/python:3.11-bookworm, made here from the
# debootstrapped local/debian:bookworm (platform/kube/node-image.sh makes it) and Debian's Python 3.11.
# Then each image goes onto the kind cluster's node (kind load; a no-op when the node has it).
# Cached: an image whose sources have not changed is not built again. Usage: platform/kube/images.sh
#
#   knit/platform:dev       knit controller (platform/Dockerfile); also runs knit.testing.sample_app
#   danmaku-web:dev         apps/danmaku-web/Dockerfile
#   danmaku-processor:dev   apps/danmaku-processor/Dockerfile
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=${KIND_CLUSTER_NAME:-knit}
PIP=${PIP:-$ROOT/.venv/bin/pip}
WHEELS=$ROOT/build/wheels
OFFLINE_BASE=knit/python:3.11-bookworm
started=$SECONDS

say() { echo "knit: images: [$((SECONDS - started)) s] $*"; }
die() { echo "knit: images: $*" >&2; exit 1; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

docker info >/dev/null 2>&1 || die "docker isn't answering; run: make docker-engine (as root)"
KIND=$("$HERE/build.sh" kind | tail -n 1)/kind
cd "$ROOT"

if [ -n "${BASE_IMAGE:-}" ]; then
  base=$BASE_IMAGE
elif curl -s -o /dev/null --max-time 3 https://registry-1.docker.io/v2/; then
  base=python:3.11-slim
else
  base=$OFFLINE_BASE
  if ! have "$base"; then
    have local/debian:bookworm || "$HERE/node-image.sh"
    say "no registry answers: building $base from local/debian:bookworm"
    docker build -q -t "$base" -f "$HERE/python-base.Dockerfile" "$HERE" >/dev/null
  fi
fi
say "base image $base"

# What the images are made of: the sources (committed, and any change not committed yet), the
# pinned versions, the Dockerfiles and the base. An image labelled with the same digest is current.
INPUTS=(platform/src platform/pyproject.toml platform/Dockerfile apps constraints.txt)
inputs=$( { git ls-files -s -- "${INPUTS[@]}"; git diff HEAD -- "${INPUTS[@]}"; echo "$base"; } | sha256sum | cut -c1-16)
current() { [ "$(docker image inspect -f '{{index .Config.Labels "knit.inputs"}}' "$1" 2>/dev/null)" = "$inputs" ]; }
IMAGES=(knit/platform:dev=platform/Dockerfile danmaku-web:dev=apps/danmaku-web/Dockerfile
        danmaku-processor:dev=apps/danmaku-processor/Dockerfile)

stale=0
for spec in "${IMAGES[@]}"; do current "${spec%%=*}" || stale=1; done
if [ $stale = 1 ]; then
  say "wheels of knit, the app and their dependencies (constraints.txt) into build/wheels"
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  "$PIP" wheel --quiet -c constraints.txt -w "$WHEELS" ./platform ./apps/danmaku-events ./apps/danmaku-web \
    ./apps/danmaku-processor gunicorn
fi

for spec in "${IMAGES[@]}"; do
  image=${spec%%=*} dockerfile=${spec#*=}
  if current "$image"; then
    say "$image is current (sources unchanged since it was built)"
  else
    say "building $image ($dockerfile)"
    docker build -q --build-arg "BASE_IMAGE=$base" --label "knit.inputs=$inputs" -t "$image" -f "$dockerfile" . >/dev/null
  fi
  if "$KIND" get clusters 2>/dev/null | grep -qx "$NAME"; then
    # kind load cannot tell the node has it (its containerd names it by another digest): a note
    # kept on the node says which image ID it was last given.
    node=$NAME-control-plane id=$(docker image inspect -f '{{.Id}}' "$image") note=/var/lib/knit/images/${image//[:\/]/_}
    if [ "$(docker exec "$node" cat "$note" 2>/dev/null)" = "$id" ]; then
      say "$image is on the cluster $NAME already"
    else
      say "loading $image onto the cluster $NAME"
      "$KIND" load docker-image --name "$NAME" "$image" >/dev/null
      docker exec "$node" sh -c "mkdir -p /var/lib/knit/images && echo $id > $note"
    fi
  fi
done
say "done"
