# shellcheck shell=bash
# Shared by images.sh (knit's images) and app-image.sh (an app's from `knit new`); sourced, after
# `say`, `die`, HERE and NAME are set. Needs docker answering.

have() { docker image inspect "$1" >/dev/null 2>&1; }

# The base every Python image starts from, in $base: $BASE_IMAGE when set; python:3.11-slim when a
# registry answers; else knit/python:3.11-bookworm, made here from the debootstrapped
# local/debian:bookworm (platform/kube/node-image.sh makes it) and Debian's Python 3.11.
choose_base() {
  local offline=knit/python:3.11-bookworm
  if [ -n "${BASE_IMAGE:-}" ]; then
    base=$BASE_IMAGE
  elif curl -s -o /dev/null --max-time 3 https://registry-1.docker.io/v2/; then
    base=python:3.11-slim
  else
    base=$offline
    if ! have "$base"; then
      have local/debian:bookworm || "$HERE/node-image.sh"
      say "no registry answers: building $base from local/debian:bookworm"
      docker build -q -t "$base" -f "$HERE/python-base.Dockerfile" "$HERE" >/dev/null
    fi
  fi
  say "base image $base"
}

# IMAGE onto the kind cluster's node, unless it has this very image already (or there is no cluster).
load() {
  KIND=${KIND:-$("$HERE/build.sh" kind | tail -n 1)/kind}  # found once, for every image
  "$KIND" get clusters 2>/dev/null | grep -qx "$NAME" || return 0
  # kind load cannot tell the node has it (its containerd names it by another digest): a note
  # kept on the node says which image ID it was last given.
  local image=$1 node=$NAME-control-plane id note=/var/lib/knit/images/${1//[:\/]/_}
  id=$(docker image inspect -f '{{.Id}}' "$image")
  if [ "$(docker exec "$node" cat "$note" 2>/dev/null)" = "$id" ]; then
    say "$image is on the cluster $NAME already"
  else
    say "loading $image onto the cluster $NAME"
    "$KIND" load docker-image --name "$NAME" "$image" >/dev/null
    docker exec "$node" sh -c "mkdir -p /var/lib/knit/images && echo $id > $note"
  fi
}

# Is IMAGE labelled with these inputs (a digest of what it is built from)?
current() { [ "$(docker image inspect -f '{{index .Config.Labels "knit.inputs"}}' "$1" 2>/dev/null)" = "$2" ]; }
