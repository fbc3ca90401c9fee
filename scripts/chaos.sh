#!/usr/bin/env bash
# The chaos suite: scripted fleets through the control plane, one table line per scenario
# (scenario → actions proposed → notifications → withdrawn → executed → expected → pass).
#
# Parts (each prints its own table and exits non-zero on a failed scenario):
#   sim   the pure scenarios on a simulated clock (homelab_core::chaos): agents silent at
#         start, a healthy fleet starting, a host down, a database with 8 dependents, an hour
#         of crash loop, an hour of flapping. Fast; also part of `cargo test -p homelab-core`.
#   docker 8 containers of one node crashing at once on the real Docker engine (SIGKILL of
#         their processes from the host): the executor's integration test asserts all 8 are
#         restarted, concurrently; then the full stack (AUTO_APPROVE=low) against Docker's own
#         restart policy, same faults, same run (crash-bench --quick: a few minutes). Needs
#         Docker and the test image (scripts/test-image.sh). Also part of the test command
#         (the integration test, not the bench).
# Add a part: write a function `part_<name>` below and add <name> to PARTS.
#
# Usage: scripts/chaos.sh [part...]      (default: all parts)
set -euo pipefail
cd "$(dirname "$0")/.."

PARTS=(sim docker)

part_sim() {
    cargo run -q -p control-plane-supervisor --example chaos
}

part_docker() {
    TEST_IMAGE=${TEST_IMAGE:-homelab-test/busybox:latest} cargo test -q -p control-plane-executor --test it parallel::eight_crashed_containers_of_one_node_are_restarted_concurrently
    cargo run -q --release -p control-plane-executor --example crash-bench -- --quick
}

selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=("${PARTS[@]}")
status=0
for p in "${selected[@]}"; do
    if ! declare -F "part_$p" >/dev/null; then
        echo "chaos.sh: no part '$p' (parts: ${PARTS[*]})" >&2
        exit 2
    fi
    echo "== chaos: $p"
    if ! "part_$p"; then
        status=1
    fi
done
exit $status
