#!/bin/bash
# The danmaku app on the kind cluster (make demo): manifests/app, the same files `make dev` runs,
# applied with `knit apply --context kind-knit`; then waits until danmaku-web answers through
# knit's gateway, and prints where to open it. knit must be installed (make kind-platform).
# Usage: platform/kube/demo.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=${KIND_CLUSTER_NAME:-knit}
KNIT=${KNIT:-$ROOT/.venv/bin/knit}
HOST=danmaku-web.default.localhost:8080
WAIT_SECONDS=${DEMO_WAIT_SECONDS:-300}
started=$SECONDS
say() { echo "knit: demo: [$((SECONDS - started)) s] $*"; }

say "applying manifests/app to the cluster kind-$NAME"
"$KNIT" apply -f "$ROOT/manifests/app" --context "kind-$NAME"
say "waiting for danmaku-web (its pod ready and Kafka reachable from it)"
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Host: $HOST" http://127.0.0.1:8080/readyz)" = 200 ]; do
  if [ $((SECONDS - started)) -ge "$WAIT_SECONDS" ]; then
    echo "knit: demo: danmaku-web is not ready after ${WAIT_SECONDS} s; look at:" \
      "$KNIT eventing list --context kind-$NAME; kubectl --context kind-$NAME get pods -A" >&2
    exit 1
  fi
  sleep 1
done
say "the danmaku app runs on kind: open http://$HOST/ (the processor scales from zero with the first comment)"
