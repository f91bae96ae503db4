#!/usr/bin/env bash
# Brings up a Docker engine and a local registry for Berth's dev and CI runs.
# Idempotent: services that already answer are reused, never restarted.
#
#   BERTH_DEV_DIR        logs, registry config and storage (default /var/tmp/berth-dev)
#   BERTH_READY_TRIES    readiness polls per service, 0.5 s apart (default 120)
set -euo pipefail

DEV_DIR="${BERTH_DEV_DIR:-/var/tmp/berth-dev}"
TRIES="${BERTH_READY_TRIES:-120}"
DOCKER_SOCK=/var/run/docker.sock
REGISTRY_ADDR=127.0.0.1:5000
LOG_DIR="$DEV_DIR/logs"
DOCKERD_LOG="$LOG_DIR/dockerd.log"
REGISTRY_LOG="$LOG_DIR/registry.log"
REGISTRY_CONFIG="$DEV_DIR/registry.yml"
REGISTRY_DATA="$DEV_DIR/registry"

die() {
  echo "engine-up: $*" >&2
  exit 1
}

# Node is always present (npm drives everything), while curl may not be on a fresh machine,
# so readiness probes are tiny node programs. Exit 0 only on HTTP 200 within 2 s.
probe_unix() { # probe_unix SOCKET PATH
  node -e '
    const req = require("http").get({ socketPath: process.argv[1], path: process.argv[2], timeout: 2000 },
      (res) => { res.resume(); process.exit(res.statusCode === 200 ? 0 : 1); });
    req.on("timeout", () => process.exit(1));
    req.on("error", () => process.exit(1));
  ' "$1" "$2" 2>/dev/null
}
probe_url() { # probe_url URL
  node -e '
    const req = require("http").get(process.argv[1], { timeout: 2000 },
      (res) => { res.resume(); process.exit(res.statusCode === 200 ? 0 : 1); });
    req.on("timeout", () => process.exit(1));
    req.on("error", () => process.exit(1));
  ' "$1" 2>/dev/null
}

show_log_tail() { # show_log_tail FILE
  if [ -f "$1" ]; then
    echo "---- last 40 lines of $1 ----" >&2
    tail -n 40 "$1" >&2
    echo "----" >&2
  fi
}

install_missing() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(dockerd)
  command -v containerd >/dev/null 2>&1 || missing+=(containerd)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  [ -x /bin/busybox ] || missing+=(/bin/busybox)
  # The transport-security tests make their CA and certificates with openssl at test time.
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  # The private-registry tests make their registry's htpasswd file with htpasswd -B.
  command -v htpasswd >/dev/null 2>&1 || missing+=(htpasswd)
  # The CLI tests render its progress bars and an exec -it session under a pseudo-terminal.
  command -v tmux >/dev/null 2>&1 || missing+=(tmux)
  # The status page test drives Debian's chromium (headless) with puppeteer-core.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # The Python client example (examples/python) runs on Debian's python3-grpcio, with stubs that
  # Debian's protoc and grpc_python_plugin generate (python3-grpc-tools' bundled protoc 3.5 is too
  # old for proto3 `optional` and for python3-protobuf 4.21).
  /usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || missing+=(python3-grpcio)
  command -v protoc >/dev/null 2>&1 || missing+=(protoc)
  command -v grpc_python_plugin >/dev/null 2>&1 || missing+=(grpc_python_plugin)
  [ ${#missing[@]} -eq 0 ] && return 0

  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]} and not root (uid $(id -u)); cannot apt-get install"
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available"
  echo "engine-up: installing docker.io docker-registry busybox-static openssl apache2-utils tmux chromium python3-grpcio protobuf-compiler protobuf-compiler-grpc (missing: ${missing[*]})"

  # Package scripts would start dockerd (with a bridge and iptables) and a registry listening on
  # all interfaces through their init scripts; a policy-rc.d that denies everything prevents that.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
  fi
  local rc=0
  {
    apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io docker-registry busybox-static openssl apache2-utils tmux chromium python3-grpcio protobuf-compiler protobuf-compiler-grpc
  } >"$LOG_DIR/apt.log" 2>&1 || rc=$?
  [ "$created_policy" -eq 1 ] && rm -f "$policy"
  if [ "$rc" -ne 0 ]; then
    show_log_tail "$LOG_DIR/apt.log"
    die "apt-get install of docker.io docker-registry busybox-static openssl apache2-utils tmux chromium python3-grpcio protobuf-compiler protobuf-compiler-grpc failed with exit code $rc"
  fi
  command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after installing docker.io"
  command -v docker-registry >/dev/null 2>&1 || die "docker-registry still missing after installing docker-registry"
  [ -x /bin/busybox ] || die "/bin/busybox still missing after installing busybox-static"
  command -v openssl >/dev/null 2>&1 || die "openssl still missing after installing openssl"
  command -v htpasswd >/dev/null 2>&1 || die "htpasswd still missing after installing apache2-utils"
  command -v tmux >/dev/null 2>&1 || die "tmux still missing after installing tmux"
  /usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || die "python3 module grpc still missing after installing python3-grpcio"
  command -v grpc_python_plugin >/dev/null 2>&1 || die "grpc_python_plugin still missing after installing protobuf-compiler-grpc"
}

# wait_ready NAME PID LOG CHECK...: polls CHECK until it succeeds, the process dies, or tries run out.
wait_ready() {
  local name=$1 pid=$2 log=$3
  shift 3
  local i
  for ((i = 1; i <= TRIES; i++)); do
    "$@" && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      show_log_tail "$log"
      die "$name (pid $pid) exited before it became ready; log: $log"
    fi
    sleep 0.5
  done
  show_log_tail "$log"
  die "$name did not become ready after $TRIES polls ($((TRIES / 2)) s); log: $log"
}

dockerd_up() {
  if probe_unix "$DOCKER_SOCK" /_ping; then
    echo "docker: reused engine at unix://$DOCKER_SOCK"
    return 0
  fi
  # A dockerd that is still starting owns the pid file; wait for it instead of starting a second one.
  local pid=""
  if [ -f /var/run/docker.pid ]; then
    local old
    old=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -n "$old" ] && kill -0 "$old" 2>/dev/null && grep -q dockerd "/proc/$old/comm" 2>/dev/null; then
      pid=$old
      echo "engine-up: dockerd pid $pid is running but not answering yet; waiting for it"
    fi
  fi
  local how=reused
  if [ -z "$pid" ]; then
    # Without systemd nobody may have mounted cgroups (v1 hierarchies or v2); dockerd needs them.
    if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ ! -d /sys/fs/cgroup/memory ] &&
      command -v cgroupfs-mount >/dev/null 2>&1; then
      echo "engine-up: cgroups are not mounted; running cgroupfs-mount"
      cgroupfs-mount || die "cgroupfs-mount failed; dockerd cannot start without cgroups"
    fi
    echo "=== $(date -u +%FT%TZ) engine-up starting dockerd ===" >>"$DOCKERD_LOG"
    setsid nohup dockerd \
      --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
      -H "unix://$DOCKER_SOCK" \
      >>"$DOCKERD_LOG" 2>&1 </dev/null &
    pid=$!
    how=started
  fi
  wait_ready dockerd "$pid" "$DOCKERD_LOG" probe_unix "$DOCKER_SOCK" /_ping
  echo "docker: $how engine at unix://$DOCKER_SOCK (pid $pid, log $DOCKERD_LOG)"
}

registry_up() {
  if probe_url "http://$REGISTRY_ADDR/v2/"; then
    echo "registry: reused registry at http://$REGISTRY_ADDR"
    return 0
  fi
  mkdir -p "$REGISTRY_DATA"
  cat >"$REGISTRY_CONFIG" <<EOF
# Written by scripts/engine-up.sh; rewritten on every start.
version: 0.1
log:
  level: info
  fields:
    service: berth-registry
storage:
  filesystem:
    rootdirectory: $REGISTRY_DATA
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  echo "=== $(date -u +%FT%TZ) engine-up starting docker-registry ===" >>"$REGISTRY_LOG"
  setsid nohup docker-registry serve "$REGISTRY_CONFIG" >>"$REGISTRY_LOG" 2>&1 </dev/null &
  local pid=$!
  wait_ready registry "$pid" "$REGISTRY_LOG" probe_url "http://$REGISTRY_ADDR/v2/"
  echo "registry: started registry at http://$REGISTRY_ADDR (pid $pid, data $REGISTRY_DATA, log $REGISTRY_LOG)"
}

command -v node >/dev/null 2>&1 || die "node is not on PATH; it is needed for readiness probes"
mkdir -p "$LOG_DIR" || die "cannot create dev dir $LOG_DIR"
install_missing
dockerd_up
registry_up
