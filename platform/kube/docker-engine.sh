#!/bin/bash
# A Docker engine for kind on a Debian machine that has none running (no systemd needed): installs
# Debian's docker.io (dockerd 20.10, containerd, runc), jq and debootstrap with apt when missing, and starts
# dockerd in the background (log: /var/log/dockerd.log). Idempotent: when all is in place it says so
# in one line. As root. Usage: platform/kube/docker-engine.sh
#
# Where root lacks CAP_SYS_RESOURCE in its bounding set (as in these sandboxes), runc cannot start
# `--privileged` containers ("unable to apply caps: operation not permitted"), and a kind node is
# one: the runc wrapper beside this file, which drops that capability from each container's OCI
# config, is then installed to /usr/local/bin and made dockerd's default runtime in
# /etc/docker/daemon.json (other keys there are kept), and dockerd is restarted when that changes.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WRAPPER=/usr/local/bin/runc-drop-sys-resource
DAEMON_JSON=/etc/docker/daemon.json
LOG=/var/log/dockerd.log
PIDFILE=/var/run/docker.pid
WAIT=${DOCKERD_WAIT:-60}
started=$SECONDS

say() { echo "knit: docker-engine: $*"; }
die() { echo "knit: docker-engine: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts dockerd); run: sudo $0"
{ [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; } ||
  die "Debian (apt-get) only; elsewhere install and start Docker yourself"

changed=()

apt_install() {  # PACKAGE...; no service is started by the packages' scripts
  local policy=/usr/sbin/policy-rc.d own_policy=
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy && own_policy=1
  fi
  local log; log=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1 ||
    { apt-get update -q >>"$log" 2>&1 && apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1; } ||
    { [ -z "$own_policy" ] || rm -f $policy; tail -n 20 "$log" >&2; rm -f "$log"; die "apt-get install $* failed"; }
  [ -z "$own_policy" ] || rm -f $policy
  rm -f "$log"
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)  # node-image.sh's Debian image
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} with apt"
  apt_install "${missing[@]}"
  changed+=("installed ${missing[*]}")
fi

# CAP_SYS_RESOURCE is capability 24.
cap_bounding=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
want_json=$( [ -s $DAEMON_JSON ] && cat $DAEMON_JSON || echo '{}')
if (( (16#$cap_bounding >> 24 & 1) == 0 )); then
  if ! cmp -s "$HERE/runc-drop-sys-resource" $WRAPPER; then
    install -m 755 "$HERE/runc-drop-sys-resource" $WRAPPER
    changed+=("installed $WRAPPER")
  fi
  want_json=$(echo "$want_json" | jq --arg p $WRAPPER \
    '.runtimes["runc-drop-sys-resource"] = {path: $p} | ."default-runtime" = "runc-drop-sys-resource"')
fi
restart=
if [ "$want_json" != "$( [ -s $DAEMON_JSON ] && cat $DAEMON_JSON || echo '{}')" ]; then
  mkdir -p "$(dirname $DAEMON_JSON)"
  echo "$want_json" > $DAEMON_JSON
  changed+=("wrote $DAEMON_JSON")
  restart=1
fi

dockerd_pid() {  # the running dockerd's pid, or nothing
  local pid
  pid=$(cat $PIDFILE 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = dockerd ] && echo "$pid"
  return 0
}

if [ -n "$restart" ] && pid=$(dockerd_pid) && [ -n "$pid" ]; then
  say "restarting dockerd (pid $pid) for the new $DAEMON_JSON"
  kill "$pid"
  for _ in $(seq 1 $((WAIT * 5))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && die "dockerd (pid $pid) did not stop within $WAIT s"
  changed+=("restarted dockerd")
fi

if ! docker info >/dev/null 2>&1; then
  if pid=$(dockerd_pid) && [ -n "$pid" ]; then
    say "dockerd (pid $pid) is running but not answering yet; waiting"
  else
    say "starting dockerd in the background (log: $LOG)"
    setsid nohup dockerd >>$LOG 2>&1 </dev/null &
    changed+=("started dockerd")
  fi
  for _ in $(seq 1 $((WAIT * 5))); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within $WAIT s; see the end of $LOG"
fi

server=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
runtime=$(docker info --format '{{.DefaultRuntime}}' 2>/dev/null || echo '?')
if [ ${#changed[@]} -eq 0 ]; then
  say "ready (dockerd $server, default runtime $runtime); nothing to do"
else
  done_list=$(printf '%s; ' "${changed[@]}")
  say "ready in $((SECONDS - started)) s (dockerd $server, default runtime $runtime): ${done_list%; }"
fi
