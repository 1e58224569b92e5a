#!/bin/bash
# Build Kubernetes, etcd and kind binaries from Go modules, for machines with no container registry
# and no Kubernetes release downloads (only the Go module proxy). Cached: a binary that exists is
# not built again. Usage: platform/kube/build.sh NAME...  (names below); prints where they are.
#
#   kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl
#   etcd etcdctl coredns kind pause
#
# `go install k8s.io/kubernetes/cmd/...` is refused (its go.mod replaces its staging modules), so a
# wrapper module requires k8s.io/kubernetes and replaces every staging module with the same release;
# the version ldflags make the binaries report it (kubeadm checks version skew).
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.1}
KIND_VERSION=${KIND_VERSION:-v0.33.0}
CACHE=${KNIT_KUBE_CACHE:-$HOME/.cache/knit/kube}
BIN=$CACHE/$KUBE_VERSION/bin
HERE=$(cd "$(dirname "$0")" && pwd)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export CGO_ENABLED=0 GOFLAGS=-mod=mod

mkdir -p "$BIN"
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
staging_version=v0.${KUBE_VERSION#v1.}

kube_module() {  # the wrapper module for k8s.io/kubernetes
  local dir=$CACHE/$KUBE_VERSION/module
  if [ ! -f "$dir/go.sum" ]; then
    mkdir -p "$dir"
    {
      echo "module knit.local/kubebuild"; echo; echo "go 1.24"; echo
      echo "require k8s.io/kubernetes $KUBE_VERSION"; echo
      echo "replace ("
      for m in $(cat "$HERE/staging-modules"); do echo "	$m => $m $staging_version"; done
      echo ")"
    } > "$dir/go.mod"
    echo 'package tools' > "$dir/tools.go"
    (cd "$dir" && "$GO" mod download k8s.io/kubernetes >/dev/null)
    touch "$dir/go.sum"
  fi
  echo "$dir"
}

etcd_module() {
  local dir=$CACHE/etcd-$ETCD_VERSION/module
  if [ ! -f "$dir/go.sum" ]; then
    mkdir -p "$dir"
    {
      echo "module knit.local/etcdbuild"; echo; echo "go 1.24"; echo
      echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
      echo "require go.etcd.io/etcd/etcdctl/v3 $ETCD_VERSION"; echo
      echo "replace ("
      for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do echo "	go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $ETCD_VERSION"; done
      echo ")"
    } > "$dir/go.mod"
    echo 'package tools' > "$dir/tools.go"
    touch "$dir/go.sum"
  fi
  echo "$dir"
}

kube_ldflags() {
  local f="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f="$f -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  done
  echo "$f -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.gitCommit=0000000000000000000000000000000000000000 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
}

build() {  # NAME
  local name=$1 out=$BIN/$1 started=$SECONDS
  [ -x "$out" ] && return 0
  # Another build.sh may be building the same binary (they share $out.tmp): wait for it.
  exec 9>"$BIN/.$name.lock"
  flock 9
  if [ -x "$out" ]; then exec 9>&-; return 0; fi
  echo "knit: building $name (Go, cached in $BIN; minutes the first time)" >&2
  case $name in
    kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy|kubelet|kubeadm|kubectl)
      (cd "$(kube_module)" && nice -n 10 "$GO" build -trimpath -ldflags "$(kube_ldflags)" -o "$out.tmp" "k8s.io/kubernetes/cmd/$name") ;;
    etcd)
      (cd "$(etcd_module)" && nice -n 10 "$GO" build -trimpath -ldflags "-s -w" -o "$out.tmp" go.etcd.io/etcd/server/v3) ;;
    etcdctl)
      (cd "$(etcd_module)" && nice -n 10 "$GO" build -trimpath -ldflags "-s -w" -o "$out.tmp" go.etcd.io/etcd/etcdctl/v3) ;;
    coredns)
      GOBIN=$BIN.tmp-$name nice -n 10 "$GO" install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
      mv "$BIN.tmp-$name/coredns" "$out.tmp"; rmdir "$BIN.tmp-$name" ;;
    kind)
      GOBIN=$BIN.tmp-$name nice -n 10 "$GO" install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
      mv "$BIN.tmp-$name/kind" "$out.tmp"; rmdir "$BIN.tmp-$name" ;;
    pause)
      (cd "$HERE/pause" && nice -n 10 "$GO" build -trimpath -ldflags "-s -w" -o "$out.tmp" .) ;;
    *) echo "knit: no such binary to build: '$name' (see the list at the top of $0)" >&2; return 2 ;;
  esac
  mv "$out.tmp" "$out"
  exec 9>&-
  echo "knit: built $name in $((SECONDS - started)) s" >&2
}

for name in "$@"; do build "$name"; done
echo "$BIN"
