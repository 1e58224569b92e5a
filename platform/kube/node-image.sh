#!/bin/bash
# The kind node image for machines with no container registry (nothing can be pulled), assembled from
# Debian packages and Go builds only. Cached: an image that `docker image inspect` finds is not built
# again (`docker image rm` it to rebuild). Needs a running dockerd (platform/kube/docker-engine.sh,
# whose runc wrapper lets `--privileged` containers start here) and, for the first image, root with
# debootstrap. Prints each step with the seconds elapsed. Usage: platform/kube/node-image.sh [IMAGE]
#
#   local/debian:bookworm     debootstrap --variant=minbase from the mirror in the machine's apt sources
#   local/static-base:1       CA bundle, /tmp, /etc/passwd: the base of the static control-plane images
#   local/kind-base:bookworm  kind's own images/base/files (sigs.k8s.io/kind in the Go module cache)
#                             on local/debian with Debian's systemd and containerd (node-base.Dockerfile)
#   the control-plane images  named exactly as `kubeadm config images list` prints them, plus the pause
#                             tag kind's containerd config names; binaries from build.sh
#   IMAGE                     knit/kind-node:$KUBE_VERSION by default: kind-base + kubeadm, kubelet,
#                             kubectl, the CNI config 10-ptp.conflist (no kindnetd: single node only),
#                             with the images above imported into its containerd
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
KIND_VERSION=${KIND_VERSION:-v0.33.0}
NODE_IMAGE=${1:-knit/kind-node:$KUBE_VERSION}
DEBIAN_IMAGE=local/debian:bookworm
STATIC_BASE=local/static-base:1
KIND_BASE=local/kind-base:bookworm
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
PATH_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
BUILD_CONTAINER=knit-node-image-build
export KUBE_VERSION KIND_VERSION GO
started=$SECONDS

say() { echo "knit: node-image: [$((SECONDS - started)) s] $*"; }
die() { echo "knit: node-image: $*" >&2; exit 1; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

# local/debian:bookworm is also the base of other images (images.sh): made even when the node is there.
if have "$NODE_IMAGE" && have $DEBIAN_IMAGE; then
  say "$NODE_IMAGE is there (cached; docker image rm it to rebuild)"
  exit 0
fi
docker info >/dev/null 2>&1 || die "docker isn't answering; run: make docker-engine"

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/knit-node-image.XXXXXX")
cleanup() {
  docker rm -f $BUILD_CONTAINER >/dev/null 2>&1 || true
  # debootstrap mounts /proc and /sys in its target: never remove through a mount
  awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

logged() {  # NAME CMD...: output to a log; its end is shown when CMD fails
  local log=$WORK/$1.log; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "failed: $*"
  fi
}

build_image() {  # IMAGE CONTEXT-DIR: docker build (the legacy builder on a docker 20.10 daemon)
  local t=$SECONDS
  logged "build-${1//[\/:]/_}" docker build -t "$1" "$2"
  say "built $1 in $((SECONDS - t)) s"
}

mirror() {  # the Debian mirror of the machine's apt sources (one-line and deb822 formats)
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
         if ($(i + 1) ~ /^[a-z]+$/) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      { types = uris = suites = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^#/) continue
          split($i, kv, /:[ \t]*/); key = tolower(kv[1]); val = substr($i, index($i, ":") + 1); sub(/^[ \t]+/, "", val)
          if (key == "types") types = val; else if (key == "uris") uris = val
          else if (key == "suites") suites = val; else if (key == "enabled") enabled = tolower(val)
        }
        if (enabled == "no" || types !~ /(^| )deb( |$)/) next
        n = split(suites, s, /[ \t]+/)
        for (j = 1; j <= n; j++) if (s[j] ~ /^[a-z]+$/) { split(uris, u, /[ \t]+/); print u[1]; exit }
      }' "$f"
  done
}

KIND_DIR=$(cd "$WORK" && GOFLAGS='' "$GO" mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
[ -d "$KIND_DIR/images/base/files" ] || die "no images/base/files in sigs.k8s.io/kind@$KIND_VERSION ($KIND_DIR)"

# 1. Debian, from the apt mirror.
if have $DEBIAN_IMAGE; then say "$DEBIAN_IMAGE is there"; else
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing; run: make docker-engine (as root)"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  MIRROR=${DEBIAN_MIRROR:-$(mirror | head -n 1)}
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
  t=$SECONDS
  say "$DEBIAN_IMAGE: debootstrap --variant=minbase bookworm from $MIRROR (about a minute)"
  logged debootstrap debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR"
  [ -z "$(awk -v w="$WORK/rootfs/" 'index($2, w) == 1' /proc/mounts)" ] || die "debootstrap left mounts in $WORK/rootfs"
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" -c . | docker import --change "ENV $PATH_ENV" --change 'CMD ["bash"]' - $DEBIAN_IMAGE >/dev/null
  rm -rf --one-file-system "$WORK/rootfs"
  say "built $DEBIAN_IMAGE in $((SECONDS - t)) s"
fi

if have "$NODE_IMAGE"; then
  say "$NODE_IMAGE is there (cached; docker image rm it to rebuild)"
  exit 0
fi

# 2. The base of the static images: CA bundle, /tmp, /etc/passwd.
if have $STATIC_BASE; then say "$STATIC_BASE is there"; else
  t=$SECONDS d=$WORK/static-base
  [ -f /etc/ssl/certs/ca-certificates.crt ] || die "no /etc/ssl/certs/ca-certificates.crt; run: apt-get install ca-certificates"
  mkdir -p $d/etc/ssl/certs $d/tmp && chmod 1777 $d/tmp
  cp /etc/ssl/certs/ca-certificates.crt $d/etc/ssl/certs/
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > $d/etc/passwd
  printf 'root:x:0:\nnogroup:x:65534:\n' > $d/etc/group
  tar -C $d -c . | docker import --change "ENV $PATH_ENV" - $STATIC_BASE >/dev/null
  say "built $STATIC_BASE in $((SECONDS - t)) s"
fi

# 3. kind's node base.
if have $KIND_BASE; then say "$KIND_BASE is there"; else
  d=$WORK/kind-base; mkdir -p $d
  cp -r "$KIND_DIR/images/base/files" $d/ && chmod -R u+w $d
  cp "$HERE/node-base.Dockerfile" $d/Dockerfile
  say "$KIND_BASE: kind $KIND_VERSION's images/base/files + Debian's systemd, containerd, runc (apt in docker build)"
  build_image $KIND_BASE $d
fi

# 4. The Go binaries (cached by build.sh; minutes each the first time).
say "Go binaries: platform/kube/build.sh (cached in ${KNIT_KUBE_CACHE:-$HOME/.cache/knit/kube})"
BIN=$(nice -n 10 "$HERE/build.sh" kube-apiserver kube-controller-manager kube-scheduler kube-proxy \
  kubelet kubeadm kubectl etcd etcdctl coredns pause | tail -n 1)

# 5. The images kubeadm (and kind's containerd config) name, from the static binaries.
KUBEADM_IMAGES=$("$BIN/kubeadm" config images list --kubernetes-version "$KUBE_VERSION" 2>/dev/null)
image_named() { echo "$KUBEADM_IMAGES" | grep -m1 "/$1:" || die "kubeadm lists no $1 image"; }
SANDBOX=$(sed -n 's/^ *sandbox_image *= *"\(.*\)".*/\1/p' "$KIND_DIR/images/base/files/etc/containerd/config.toml")
PAUSE=$(image_named pause) ETCD=$(image_named etcd) COREDNS=$(image_named coredns) PROXY=$(image_named kube-proxy)

static_image() {  # IMAGE ENTRYPOINT BINARY...
  local img=$1 entrypoint=$2 d; shift 2
  if have "$img"; then say "$img is there"; return 0; fi
  d=$WORK/ctx-${img//[\/:]/_}; mkdir -p "$d"; cp "$@" "$d/"
  { echo "FROM $STATIC_BASE"
    for b; do echo "COPY $(basename "$b") /usr/local/bin/"; done
    [ -z "$entrypoint" ] || echo "ENTRYPOINT [\"$entrypoint\"]"; } > "$d/Dockerfile"
  build_image "$img" "$d"
}
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  static_image "$(image_named $c)" "" "$BIN/$c"
done
static_image "$ETCD" "" "$BIN/etcd" "$BIN/etcdctl"
static_image "$COREDNS" /usr/local/bin/coredns "$BIN/coredns"
static_image "$PAUSE" /usr/local/bin/pause "$BIN/pause"
if [ -n "$SANDBOX" ] && [ "$SANDBOX" != "$PAUSE" ] && ! have "$SANDBOX"; then
  docker tag "$PAUSE" "$SANDBOX"; say "tagged $PAUSE as $SANDBOX (kind's containerd sandbox_image)"
fi
if have "$PROXY"; then say "$PROXY is there"; else
  d=$WORK/kube-proxy; mkdir -p $d
  cp "$HERE/kube-proxy.Dockerfile" $d/Dockerfile; cp "$BIN/kube-proxy" $d/
  say "$PROXY: on $DEBIAN_IMAGE with iptables, conntrack (apt in docker build)"
  build_image "$PROXY" $d
fi

# 6. The node: kind-base + kubeadm, kubelet, kubectl, CNI config; the images above in its containerd.
t=$SECONDS
STAGE=local/kind-node-stage1:$KUBE_VERSION d=$WORK/node
mkdir -p $d; cp "$BIN/kubeadm" "$BIN/kubelet" "$BIN/kubectl" "$HERE/10-ptp.conflist" $d/
# restrict_oom_score_adj: root here cannot lower oom_score_adj (no CAP_SYS_RESOURCE), so pods' runc
# would fail with "can't get final child's PID from pipe: EOF".
cat > $d/Dockerfile <<EOD
FROM $KIND_BASE
COPY kubeadm kubelet kubectl /usr/bin/
COPY 10-ptp.conflist /etc/cni/net.d/
RUN sed -i "s/restrict_oom_score_adj = false/restrict_oom_score_adj = true/" /etc/containerd/config.toml \\
 && systemctl enable kubelet.service && echo $KUBE_VERSION > /kind/version && mkdir -p /kind/manifests
EOD
build_image $STAGE $d
IMAGES=$(printf '%s\n' $KUBEADM_IMAGES $SANDBOX | sort -u | tr '\n' ' ')
say "$NODE_IMAGE: importing into the node's containerd: $IMAGES"
docker rm -f $BUILD_CONTAINER >/dev/null 2>&1 || true
logged node-run docker run -d --name $BUILD_CONTAINER --privileged --security-opt seccomp=unconfined \
  --entrypoint sleep $STAGE infinity
docker exec -d $BUILD_CONTAINER sh -c 'containerd > /var/log/containerd-build.log 2>&1'
for _ in $(seq 1 100); do docker exec $BUILD_CONTAINER ctr version >/dev/null 2>&1 && break; sleep 0.2; done
# shellcheck disable=SC2086
docker save $IMAGES | docker exec -i $BUILD_CONTAINER ctr --namespace=k8s.io images import \
  --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >"$WORK/import.log" 2>&1 ||
  { tail -n 20 "$WORK/import.log" >&2; docker exec $BUILD_CONTAINER tail -n 20 /var/log/containerd-build.log >&2; die "ctr images import failed"; }
docker exec $BUILD_CONTAINER sh -c 'kill $(pidof containerd); while pidof containerd >/dev/null; do sleep 0.2; done; rm -f /var/log/containerd-build.log'
# label knit.cni: cluster.sh keeps kind's default CNI (kindnetd) off for this image
docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' --change 'CMD []' \
  --change 'LABEL knit.cni=10-ptp.conflist' \
  $BUILD_CONTAINER "$NODE_IMAGE" >/dev/null
docker rm -f $BUILD_CONTAINER >/dev/null
docker image rm $STAGE >/dev/null
say "built $NODE_IMAGE in $((SECONDS - t)) s (total $((SECONDS - started)) s)"
