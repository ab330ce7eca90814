#!/usr/bin/env bash
# Installs and builds everything rhumb needs, idempotently: Debian packages (only the
# missing ones), npm packages (when package.json or the lock changed), the native addon
# and the TypeScript build. `npm start` and `npm test` both call this first.
#   RHUMB_SETUP_PROFILE=runtime  only what the controller needs to run
#   RHUMB_SETUP_PROFILE=test     also the tools the test suite drives (default)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${RHUMB_SETUP_PROFILE:-test}
runtime_pkgs=(libpcap-dev libnftables-dev iproute2 python3 make g++ openssl)
test_pkgs=(nftables iperf3 etcd-server tcpdump procps iputils-ping iputils-arping redis-server redis-tools chromium)
# The CNI tests: the reference plugins rhumb chains with, and a real runtime (Podman with
# runc: crun refuses this kind of host's cgroups) running busybox images built offline.
test_pkgs+=(containernetworking-plugins iptables podman runc busybox-static)
# wireguard-tools (wg) and wireguard-go: the encrypted underlay's tests (this kernel has no
# WireGuard module). A compute node running an agent of a deployment that encrypts needs
# wireguard-tools, and wireguard-go where its kernel lacks the module.
test_pkgs+=(wireguard-tools wireguard-go)
# The Docker tests: a real Docker Engine per node namespace (busybox images built offline).
test_pkgs+=(docker.io)

want=("${runtime_pkgs[@]}")
[ "$profile" = test ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "rhumb setup: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "rhumb setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # docker.io's package would start a host dockerd (and its iptables rules); tests start their own.
  if printf '%s\n' "${missing[@]}" | grep -qx docker.io && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && rhumb_policy_rc=1
  fi
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "${rhumb_policy_rc:-0}" = 1 ] && rm -f /usr/sbin/policy-rc.d
  # etcd-server's package starts a system etcd on the default ports; tests run their own.
  if printf '%s\n' "${missing[@]}" | grep -qx etcd-server; then
    (systemctl disable --now etcd 2>/dev/null || service etcd stop 2>/dev/null || pkill -x etcd) >/dev/null 2>&1 || true
  fi
  if printf '%s\n' "${missing[@]}" | grep -qx docker.io; then
    (systemctl disable --now docker.service docker.socket 2>/dev/null) >/dev/null 2>&1 || true
  fi
fi

# npm packages: reinstall when the manifest or lock changed since the last install.
stamp=node_modules/.rhumb-install-stamp
sum=$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
  echo "rhumb setup: installing npm packages"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
  echo "$sum" > "$stamp"
fi

# Native addon: rebuild when its sources changed since the last build.
nsum=$(cat binding.gyp native/src/* native/include/* 2>/dev/null | sha256sum | cut -d' ' -f1)
nstamp=build/.rhumb-native-stamp
if [ ! -f build/Release/rhumb_native.node ] || [ ! -f "$nstamp" ] || [ "$(cat "$nstamp")" != "$nsum" ]; then
  echo "rhumb setup: building the native addon"
  npm run --silent build:native -- --loglevel=error >/dev/null
  echo "$nsum" > "$nstamp"
fi

# TypeScript (incremental).
npx --no-install tsc -p tsconfig.json
