#!/bin/bash
# The kind cluster "knit" (one node, manifests/kind/cluster.yaml; NodePort 30080 on
# http://127.0.0.1:8080/). Usage: platform/kube/cluster.sh up|down
#
#   up    needs a running dockerd (make docker-engine). The node image: $KIND_NODE_IMAGE when set;
#         else kind's default when a registry answers; else the offline one node-image.sh builds
#         (cached). Creates the cluster unless kind already has it (a stopped node container is
#         started), points the kubeconfig (~/.kube/config or $KUBECONFIG) at it as context kind-knit,
#         and waits until the node is Ready and CoreDNS runs, saying what it waits for.
#   down  deletes the cluster.
#
# kind and a kubectl of the cluster's version come from build.sh (Go builds, cached).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=${KIND_CLUSTER_NAME:-knit}
CONFIG=$ROOT/manifests/kind/cluster.yaml
KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
OFFLINE_IMAGE=knit/kind-node:$KUBE_VERSION
WAIT=${KIND_WAIT:-300}  # seconds for the node and CoreDNS once the cluster exists
started=$SECONDS

say() { echo "knit: kind: [$((SECONDS - started)) s] $*"; }
die() { echo "knit: kind: $*" >&2; exit 1; }

case ${1:-} in up|down) ;; *) die "usage: $0 up|down" ;; esac

docker info >/dev/null 2>&1 || die "docker isn't answering; run: make docker-engine (as root)"
BIN=$(nice -n 10 "$HERE/build.sh" kind kubectl | tail -n 1)
KIND=$BIN/kind
k() { "$BIN/kubectl" --context "kind-$NAME" --request-timeout=5s "$@"; }

if [ "$1" = down ]; then
  "$KIND" delete cluster --name "$NAME"
  exit 0
fi

if "$KIND" get clusters 2>/dev/null | grep -qx "$NAME"; then
  node=$NAME-control-plane
  if [ "$(docker inspect -f '{{.State.Running}}' "$node" 2>/dev/null)" = true ]; then
    say "cluster $NAME exists"
  else
    say "cluster $NAME exists; starting its stopped node container $node"
    docker start "$node" >/dev/null
  fi
else
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then
    image=$KIND_NODE_IMAGE
    say "node image $image (KIND_NODE_IMAGE)"
  elif curl -s -o /dev/null --max-time 3 https://registry-1.docker.io/v2/; then
    image=
    say "a registry answers: kind's default node image (set KIND_NODE_IMAGE=$OFFLINE_IMAGE for the offline one)"
  else
    image=$OFFLINE_IMAGE
    say "no registry answers: the offline node image $image (platform/kube/node-image.sh, cached)"
    "$HERE/node-image.sh" "$image"
  fi
  config=$CONFIG
  # The offline image carries its own CNI config (label knit.cni); any other needs kind's kindnetd.
  if [ -z "$image" ] || [ -z "$(docker image inspect -f '{{index .Config.Labels "knit.cni"}}' "$image" 2>/dev/null)" ]; then
    config=$(mktemp "${TMPDIR:-/tmp}/knit-kind-config.XXXXXX")
    trap 'rm -f "$config"' EXIT
    sed 's/disableDefaultCNI: true/disableDefaultCNI: false/' "$CONFIG" > "$config"
    say "the node image has no CNI config of its own: kind's default CNI (kindnetd) instead"
  fi
  say "kind create cluster --name $NAME ${image:+--image $image }--config ${CONFIG#"$ROOT"/} --wait 120s"
  "$KIND" create cluster --name "$NAME" ${image:+--image "$image"} --config "$config" --wait 120s
fi
"$KIND" export kubeconfig --name "$NAME" >/dev/null 2>&1

deadline=$((SECONDS + WAIT))
wait_for() {  # WHAT CHECK: run CHECK every 2 s until it succeeds; it prints the state it saw
  local what=$1 check=$2 t=$SECONDS next=$((SECONDS + 10)) state
  say "waiting for $what"
  until state=$($check 2>&1); do
    [ $SECONDS -lt $deadline ] || die "gave up after $((SECONDS - started)) s waiting for $what (last seen: ${state:-nothing})"
    if [ $SECONDS -ge $next ]; then say "still waiting for $what: ${state:-nothing yet}"; next=$((SECONDS + 10)); fi
    sleep 2
  done
  say "$what: $state (waited $((SECONDS - t)) s)"
}
all_of() {  # WANTED: the words on stdin ("name=state"), printed; true when there are some and all are WANTED
  local seen; seen=$(tr -s ' ' '\n' | sed '/^$/d')
  echo "$seen" | paste -sd ' '
  [ -n "$seen" ] && ! echo "$seen" | grep -qv "=$1\$"
}
node_ready() {
  k get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}' |
    all_of True
}
coredns_running() {
  k -n kube-system get pods -l k8s-app=kube-dns \
    -o jsonpath='{range .items[*]}{.metadata.name}={.status.phase}/{.status.conditions[?(@.type=="Ready")].status} {end}' |
    all_of Running/True
}
wait_for "the node to be Ready" node_ready
wait_for "the CoreDNS pods to run" coredns_running
say "cluster $NAME is up: kubectl --context kind-$NAME ($BIN/kubectl is $KUBE_VERSION); NodePort 30080 answers on http://127.0.0.1:8080/"
