#!/bin/bash
# knit onto the kind cluster: the images (images.sh: built, loaded onto the node), Apache Kafka
# (manifests/platform/kafka.yaml), the CRDs and manifests/platform/controller.yaml; then waits until
# the controller's and Kafka's new pods are ready.
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
# The images' tags stay :dev: the image's ID in a pod template (this patch) makes a rebuilt image
# roll out, and an unchanged one change nothing.
image_annotation() {
  local id; id=$(docker image inspect -f '{{.Id}}' "$1" | cut -d: -f2 | cut -c1-16)
  echo "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"knit.dev/image\":\"$id\"}}}}}"
}
say "applying Apache Kafka (manifests/platform/kafka.yaml): kafka.kafka.svc.cluster.local:9092"
k apply -f "$ROOT/manifests/platform/kafka.yaml" >/dev/null
k -n kafka patch deployment kafka --type merge -p "$(image_annotation knit/kafka:dev)" >/dev/null
say "applying the CRDs and the controller (manifests/platform/)"
k apply --server-side --force-conflicts -f "$ROOT/manifests/platform/crds.yaml" >/dev/null
k wait --for condition=established --timeout=60s -f "$ROOT/manifests/platform/crds.yaml" >/dev/null
k apply -f "$ROOT/manifests/platform/controller.yaml" >/dev/null
k -n knit-system patch deployment knit-controller --type merge -p "$(image_annotation knit/platform:dev)" >/dev/null
say "waiting for the controller"
k -n knit-system rollout status deployment/knit-controller --timeout=180s
say "waiting for Kafka (ready once its broker serves clients)"
k -n kafka rollout status deployment/kafka --timeout=180s
say "knit is installed: Services' URLs are http://SERVICE.NAMESPACE.localhost:8080/"
