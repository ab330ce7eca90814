#!/usr/bin/env bash
# `npm run bench`: runs every benchmark under bench/ one after another, then prints one
# table of their headline figures and ratios (bench/summary.ts), also written to
# bench/results/summary.json. Each bench's own table and JSON result are kept too.
#
#   npm run bench                      full runs (long: tens of minutes)
#   npm run bench -- --quick           a short pass (small data, short runs)
#   npm run bench -- --only a,b        just these benches (names as under bench/)
#
# A bench that needs what this machine lacks (root and network namespaces, a package)
# is skipped with the reason; one that fails does not stop the others. Exits non-zero
# when a bench failed. Benchmarks are not tests: nothing here asserts a speed.
set -uo pipefail
cd "$(dirname "$0")/.."

quick=()
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick) ;;
    --only) only="${2:-}"; shift ;;
    --only=*) only="${1#--only=}" ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# In the order they run: the in-process ones first, the namespace ones after.
benches=(napi-provision svp-lookup fw-compile convergence dataplane cni docker distributed scale)
if [ -n "$only" ]; then
  IFS=',' read -r -a wanted <<<"$only"
  for w in "${wanted[@]}"; do
    [ -f "bench/$w/run.ts" ] || { echo "bench: no bench/$w/run.ts" >&2; exit 2; }
  done
  benches=("${wanted[@]}")
fi

echo "rhumb bench: setup (packages, native addon, build)"
bash scripts/setup.sh >/dev/null || { echo "bench: scripts/setup.sh failed" >&2; exit 1; }
mkdir -p bench/results

have() { command -v "$1" >/dev/null 2>&1; }
netns_reason=$(node --import tsx -e "import('./test/helpers/netns.ts').then((m) => process.stdout.write(m.netnsSkipReason() || ''))" 2>/dev/null || echo "cannot check network namespace support")

# Why a bench cannot run here (empty: it can).
skip_reason() {
  case "$1" in
    svp-lookup)
      have cc || { echo "needs a C compiler (cc) for its load generator"; return; }
      have redis-server && have redis-benchmark || echo "needs redis-server and redis-benchmark (Debian redis-server, redis-tools)" ;;
    convergence) [ -n "$netns_reason" ] && echo "$netns_reason" ;;
    dataplane)
      [ -n "$netns_reason" ] && { echo "$netns_reason"; return; }
      have iperf3 || echo "needs iperf3" ;;
    cni)
      [ -n "$netns_reason" ] && { echo "$netns_reason"; return; }
      [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || echo "needs the reference CNI plugins (Debian containernetworking-plugins)" ;;
    docker)
      [ -n "$netns_reason" ] && { echo "$netns_reason"; return; }
      [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] && [ -x /bin/busybox ] || echo "needs docker.io and busybox-static" ;;
    distributed)
      have etcd || [ -x /usr/bin/etcd ] || [ -n "${RHUMB_ETCD_BIN:-}" ] || echo "needs etcd (Debian etcd-server, or RHUMB_ETCD_BIN)" ;;
    scale)
      have etcd || [ -x /usr/bin/etcd ] || [ -n "${RHUMB_ETCD_BIN:-}" ] || echo "needs etcd (Debian etcd-server, or RHUMB_ETCD_BIN)" ;;
  esac
}

# A bench that hangs must not hold up the rest.
if [ ${#quick[@]} -gt 0 ]; then limit=900; else limit=3600; fi
runs=bench/results/runs${quick:+.quick}.tsv
: >"$runs"
failed=0
for b in "${benches[@]}"; do
  reason=$(skip_reason "$b")
  if [ -n "$reason" ]; then
    echo "=== $b: skipped ($reason)"
    printf '%s\tskipped\t\t\t%s\n' "$b" "$reason" >>"$runs"
    continue
  fi
  echo "=== $b${quick:+ (quick)}"
  start=$(date +%s)
  # The two request paths TLS protects are also measured over TLS, next to plaintext.
  extra=()
  case "$b" in napi-provision | svp-lookup) have openssl && extra=(--tls) ;; esac
  timeout --kill-after=30 "$limit" node --import tsx "bench/$b/run.ts" "${quick[@]}" "${extra[@]}"
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then
    printf '%s\tok\t%s\t%s\t\n' "$b" "$secs" "$start" >>"$runs"
  else
    failed=1
    why="exit status $rc"
    [ $rc -eq 124 ] && why="timed out after ${limit} s"
    printf '%s\tfailed\t%s\t%s\t%s\n' "$b" "$secs" "$start" "$why" >>"$runs"
    echo "=== $b failed ($why)"
  fi
done

node --import tsx bench/summary.ts "${quick[@]}" --runs "$runs"
exit $failed
