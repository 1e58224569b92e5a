#!/bin/bash
# The image of an app made by `knit new` (its `make demo` runs this), built as knit's own images are
# (images.sh): the app's wheels and its dependencies' (knit's constraints.txt) built on the host
# into APP/build/wheels, installed in the image with --no-index from the same base; then loaded onto
# the kind cluster's node. Cached: an image whose inputs have not changed is not built again.
# Usage: platform/kube/app-image.sh APP_DIR IMAGE
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=${KIND_CLUSTER_NAME:-knit}
started=$SECONDS
say() { echo "knit: app-image: [$((SECONDS - started)) s] $*"; }
die() { echo "knit: app-image: $*" >&2; exit 1; }
# shellcheck source=image-lib.sh
. "$HERE/image-lib.sh"

[ $# = 2 ] || die "usage: $0 APP_DIR IMAGE (e.g. . my-app:dev)"
APP=$(cd "$1" && pwd) IMAGE=$2
{ [ -f "$APP/Dockerfile" ] && [ -f "$APP/pyproject.toml" ]; } || die "$APP has no Dockerfile and pyproject.toml: not an app from knit new"
docker info >/dev/null 2>&1 || die "docker isn't answering; run: make -C $ROOT docker-engine (as root)"
PIP=${PIP:-$APP/.venv/bin/pip}
choose_base

# What the image is made of: the content of the app's files (those git does not ignore), knit's
# pinned versions and the base.
cd "$APP"
files() { git ls-files -z -co --exclude-standard 2>/dev/null || find . -path ./.venv -prune -o -path ./build -prune -o -type f -print0; }
inputs=$( { files | xargs -0 sha256sum; cat "$ROOT/constraints.txt"; echo "$base"; } | sha256sum | cut -c1-16)
if current "$IMAGE" "$inputs"; then
  say "$IMAGE is current (inputs unchanged since it was built)"
else
  say "wheels of the app and its dependencies into build/wheels"
  rm -rf build/wheels && mkdir -p build/wheels
  "$PIP" wheel --quiet -c "$ROOT/constraints.txt" -w build/wheels .
  say "building $IMAGE"
  docker build -q --build-arg "BASE_IMAGE=$base" --label "knit.inputs=$inputs" -t "$IMAGE" . >/dev/null
fi
load "$IMAGE"
