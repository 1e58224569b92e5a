#!/bin/bash
# knit onto the kind cluster: the images (images.sh: built, loaded onto the node), the CRDs and
# manifests/platform/controller.yaml; then waits until the controller's new pod is ready.
# Usage: platform/kube/install.sh   (the cluster must be up: make kind-up)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=${KIND_CLUSTER_NAME:-knit}
started=$SECONDS
say() { echo "knit: install: [$((SECONDS - started)) s] $*"; }

BIN=$("$HERE/build.sh" kubectl | tail -n 1)
k() { "$BIN/kubectl" --context "kind-$NAME" "$@"; }
k get nodes >/dev/null 2>&1 || { echo "knit: install: no cluster kind-$NAME answers; run: make kind-up" >&2; exit 1; }

"$HERE/images.sh"
say "applying the CRDs and the controller (manifests/platform/)"
k apply --server-side --force-conflicts -f "$ROOT/manifests/platform/crds.yaml" >/dev/null
k wait --for condition=established --timeout=60s -f "$ROOT/manifests/platform/crds.yaml" >/dev/null
k apply -f "$ROOT/manifests/platform/controller.yaml" >/dev/null
# The image's tag stays :dev: its ID in the pod template makes a rebuilt image roll out, and an
# unchanged one change nothing.
image=$(docker image inspect -f '{{.Id}}' knit/platform:dev | cut -d: -f2 | cut -c1-16)
k -n knit-system patch deployment knit-controller --type merge \
  -p "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"knit.dev/image\":\"$image\"}}}}}" >/dev/null
say "waiting for the controller"
k -n knit-system rollout status deployment/knit-controller --timeout=180s
say "knit is installed: Services' URLs are http://SERVICE.NAMESPACE.localhost:8080/"
