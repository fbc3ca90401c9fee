#!/usr/bin/env bash
# One benchmark command: runs every measure on this machine, each repeated, and writes
# docs/benchmarks.md (table with the target beside every figure, and the machine) and
# docs/benchmarks.json.
#
#   scripts/bench.sh            full run (3 repeats, full sizes; 20-40 min on 2 busy cores)
#   scripts/bench.sh --quick    smoke run (1 repeat, small sizes, no 1M replay)
#   options: --repeats N, --seed N (workloads are generated from it), --out DIR (default docs)
#
# Needs: a Rust toolchain, jq, a Docker engine with the test image (scripts/test-image.sh),
# root for the crash measures (SIGKILL of a container's process from the host) and monit
# (installed with apt-get when missing). All load goes to 127.0.0.1; every run is bounded.
# Each example prints `BENCH {"name","label","value","unit","target","cmp"}` lines; this script
# collects them (one per repeat) and reports the median with min and max.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
REPEATS=""
SEED="${BENCH_SEED:-42}"
OUT=docs
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --repeats) REPEATS="$2"; shift ;;
    --seed) SEED="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then REPEATS="${REPEATS:-1}"; MODE=quick; else REPEATS="${REPEATS:-3}"; MODE=full; fi
TEST_IMAGE="${TEST_IMAGE:-homelab-test/busybox:latest}"
export TEST_IMAGE

WORK="$(mktemp -d /tmp/hcp-bench.XXXXXX)"
RAW="$WORK/raw.jsonl"
: > "$RAW"
LOGS="$WORK/logs"
mkdir -p "$LOGS" "$OUT"
cleanup() {
  # Containers of the crash benchmarks (label) and of the agent benchmarks (name prefix).
  ids="$(docker ps -aq --filter label=hl-crash-bench=1 2>/dev/null || true)"
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
  ids="$(docker ps -aq --filter name=hl-agent- 2>/dev/null || true)"
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
}
trap cleanup EXIT
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
T0=$(date +%s)

command -v jq >/dev/null || { echo "jq is needed (apt-get install -y jq)" >&2; exit 1; }
HAVE_DOCKER=0
if docker info >/dev/null 2>&1; then
  HAVE_DOCKER=1
  docker image inspect "$TEST_IMAGE" >/dev/null 2>&1 || scripts/test-image.sh >&2 || HAVE_DOCKER=0
fi
HAVE_MONIT=0
if command -v monit >/dev/null; then HAVE_MONIT=1
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing monit (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y monit >"$LOGS/apt-monit.log" 2>&1 && HAVE_MONIT=1 || true
fi

# The machine.
NPROC="$(nproc)"
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
KERNEL="$(uname -r)"
DOCKER_VERSION="$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo none)"
MONIT_VERSION="$(monit -V 2>/dev/null | head -1 | sed 's/.*version //' || echo none)"
MEM="$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
RUSTC="$(rustc --version 2>/dev/null || echo unknown)"

log "building release binaries and examples ($MODE, $REPEATS repeat(s), seed $SEED)"
cargo build --release -p control-plane-observer -p control-plane-supervisor -p control-plane-executor \
  -p control-plane-ui -p node-agent -p hcp --bins >"$LOGS/build.log" 2>&1 || { tail -30 "$LOGS/build.log" >&2; exit 1; }
EX=target/release/examples
SKIPPED=()
build_example() { # crate example
  if cargo build --release -p "$1" --example "$2" >>"$LOGS/build.log" 2>&1; then return 0; fi
  log "example $2 of $1 does not build: skipped"; SKIPPED+=("$2 (does not build)"); return 1
}

SEQ=0
# measure NAME REPEAT CMD...: runs CMD (bounded by BENCH_TIMEOUT), keeps its BENCH lines.
measure() {
  local name="$1" rep="$2"; shift 2
  local logf="$LOGS/$name.$rep.log"
  log "$name (repeat $rep/$REPEATS): $*"
  if ! timeout "${BENCH_TIMEOUT:-1800}" "$@" >"$logf" 2>&1; then
    log "$name failed (see below); its figures of this repeat are missing"; tail -5 "$logf" >&2
    SKIPPED+=("$name repeat $rep (failed: $(tail -1 "$logf" | cut -c1-160))")
  fi
  grep '^BENCH ' "$logf" | sed 's/^BENCH //' | while read -r line; do
    SEQ=$((SEQ + 1))
    jq -c --argjson run "$rep" --arg m "$name" '. + {run: $run, measure: $m}' <<<"$line" >>"$RAW" || true
  done
  grep -v '^BENCH ' "$logf" | sed 's/^/    /' >&2 || true
}

if [ "$QUICK" = 1 ]; then
  OBS_ARGS=(20000 40); SUP_ARGS=(200 50 40 4); EXE_ARGS=(100); UI_REQ=40
  AGENT_PASSES=3; FOOT_ARGS=(10 200 10000); CRASH_ROUNDS=1
else
  OBS_ARGS=(100000 200 1000000); SUP_ARGS=(200 50 200 4); EXE_ARGS=(300); UI_REQ=200
  AGENT_PASSES=20; FOOT_ARGS=(20 200 10000); CRASH_ROUNDS=3
fi

if build_example control-plane-observer observer-bench; then
  for r in $(seq "$REPEATS"); do measure observer-bench "$r" "$EX/observer-bench" "${OBS_ARGS[@]}"; done
fi
if build_example control-plane-supervisor supervisor-bench; then
  for r in $(seq "$REPEATS"); do measure supervisor-bench "$r" "$EX/supervisor-bench" "${SUP_ARGS[@]}"; done
fi
if build_example control-plane-executor executor-bench; then
  for r in $(seq "$REPEATS"); do
    # executor-bench prints a human line only: turned into BENCH lines here.
    measure executor-bench "$r" bash -c '
      out="$("$0" "$@")"; echo "$out"
      p50=$(sed -n "s/.*approve -> claimed.*p50 \([0-9.]*\) ms.*/\1/p" <<<"$out" | head -1)
      p99=$(sed -n "s/.*approve -> claimed.*p99 \([0-9.]*\) ms.*/\1/p" <<<"$out" | head -1)
      [ -n "$p99" ] || exit 1
      echo "BENCH {\"name\":\"executor.approve_to_claimed.p50\",\"label\":\"approve -> claimed by the executor, p50\",\"value\":$p50,\"unit\":\"ms\",\"target\":null,\"cmp\":null}"
      echo "BENCH {\"name\":\"executor.approve_to_claimed.p99\",\"label\":\"approve -> claimed by the executor, p99\",\"value\":$p99,\"unit\":\"ms\",\"target\":5,\"cmp\":\"<=\"}"
    ' "$EX/executor-bench" "${EXE_ARGS[@]}"
  done
fi
if build_example control-plane-ui ui-bench; then
  for r in $(seq "$REPEATS"); do
    measure ui-bench-1k "$r" "$EX/ui-bench" 10 100 "$UI_REQ"
    measure ui-bench-10k "$r" "$EX/ui-bench" 100 100 "$UI_REQ"
  done
fi
if build_example hcp footprint-bench; then
  for r in $(seq "$REPEATS"); do measure footprint-bench "$r" "$EX/footprint-bench" "${FOOT_ARGS[@]}"; done
fi
if [ "$HAVE_DOCKER" = 1 ]; then
  if build_example node-agent agent-pass-bench; then
    for r in $(seq "$REPEATS"); do
      measure agent-pass-bench "$r" "$EX/agent-pass-bench" 500 "$AGENT_PASSES" "$SEED"
      measure agent-pass-bench-noexec "$r" "$EX/agent-pass-bench" 500 "$AGENT_PASSES" "$SEED" 0
    done
  fi
  if [ "$(id -u)" = 0 ]; then
    PEERS=ours,docker; [ "$HAVE_MONIT" = 1 ] && PEERS=ours,docker,monit || SKIPPED+=("Monit peer (monit missing)")
    if build_example hcp crash-peers-bench; then
      for r in $(seq "$REPEATS"); do measure crash-peers "$r" "$EX/crash-peers-bench" "$CRASH_ROUNDS" "$PEERS"; done
    fi
    # The executor's own crash benchmark (ours vs Docker's policy), when it exists.
    if [ -f crates/control-plane-executor/examples/crash-bench.rs ] && build_example control-plane-executor crash-bench; then
      for r in $(seq "$REPEATS"); do measure executor-crash-bench "$r" "$EX/crash-bench"; done
    fi
  else
    SKIPPED+=("crash measures (need root)")
  fi
else
  SKIPPED+=("agent pass and crash measures (no Docker engine)")
fi

ELAPSED=$(( $(date +%s) - T0 ))
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
SKIPPED_JSON="$(printf '%s\n' "${SKIPPED[@]+"${SKIPPED[@]}"}" | jq -R . | jq -s 'map(select(. != ""))')"

# Aggregate: per figure, the median over the repeats with min and max; met = median vs target.
jq -s \
  --arg started "$STARTED" --arg mode "$MODE" --argjson repeats "$REPEATS" --argjson seed "$SEED" \
  --arg nproc "$NPROC" --arg cpu "$CPU" --arg kernel "$KERNEL" --arg docker "$DOCKER_VERSION" \
  --arg monit "$MONIT_VERSION" --arg mem "$MEM" --arg rustc "$RUSTC" \
  --arg load_before "$LOAD_BEFORE" --arg load_after "$LOAD_AFTER" --argjson elapsed "$ELAPSED" \
  --argjson skipped "$SKIPPED_JSON" '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[(length - 1) / 2] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  {
    started: $started, mode: $mode, repeats: $repeats, seed: $seed, elapsed_secs: $elapsed,
    machine: {nproc: ($nproc | tonumber), cpu: $cpu, memory: $mem, kernel: $kernel, docker: $docker, monit: $monit, rustc: $rustc,
              loadavg_before: $load_before, loadavg_after: $load_after},
    skipped: $skipped,
    results: (to_entries | map(.value + {seq: .key}) | group_by(.name) | map({
        name: .[0].name, label: .[0].label, measure: .[0].measure, unit: .[0].unit, target: .[0].target, cmp: .[0].cmp,
        seq: (map(.seq) | min), runs: length, values: map(.value),
        median: (map(.value) | median), min: (map(.value) | min), max: (map(.value) | max)
      } | . + {met: (if .target == null or .median == null then null elif .cmp == "<=" then .median <= .target else .median >= .target end)})
      | sort_by(.seq) | map(del(.seq)))
  }' "$RAW" >"$OUT/benchmarks.json"

fmt() { jq -r "$1" "$OUT/benchmarks.json"; }
{
  cat <<EOF
# Benchmarks

Generated by \`scripts/bench.sh$( [ "$QUICK" = 1 ] && echo " --quick")\` on $(date -u +%Y-%m-%d) ($MODE run, $REPEATS repeat(s) of every
measure, seed $SEED, $((ELAPSED / 60)) min). The raw figures are in [benchmarks.json](benchmarks.json).

**Machine:** $NPROC cores ($CPU), $MEM RAM, kernel $KERNEL, Docker $DOCKER_VERSION, Monit $MONIT_VERSION,
$RUSTC. Load average before the run $LOAD_BEFORE, after $LOAD_AFTER: the machine is shared with
other builds, so absolute figures are noisy; compare the ratios measured in one run.

Each figure is the median over the repeats (min – max beside it); a repeat's own figure is
already a percentile over many samples where the name says so. "met" compares the median with
the target.

| measure | median | min – max | target | met |
|---|---|---|---|---|
EOF
  fmt '
    def num: if . == null then "–" elif (. | fabs) >= 1000 then (. | round | tostring) elif (. | fabs) >= 10 then ((. * 10 | round) / 10 | tostring) else ((. * 100 | round) / 100 | tostring) end;
    .results[] | "| \(.label) | \(.median | num) \(.unit) | \(.min | num) – \(.max | num) | \(if .target == null then "" else "\(.cmp) \(.target | num) \(.unit)" end) | \(if .met == null then "" elif .met then "yes" else "**no**" end) |"'
  if [ "$(fmt '.skipped | length')" != 0 ]; then
    echo
    echo "Not measured in this run:"
    echo
    fmt '.skipped[] | "- \(.)"'
  fi
  cat docs/benchmarks-notes.md.in 2>/dev/null || true
} >"$OUT/benchmarks.md"
log "wrote $OUT/benchmarks.md and $OUT/benchmarks.json in $((ELAPSED / 60)) min (logs in $LOGS)"
