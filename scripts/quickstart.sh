#!/usr/bin/env bash
# The quickstart: builds hcp and runs the whole control plane in one process (`hcp up`) on the
# bundled example in examples/quickstart/, so the dashboard shows a healthy service, a failing
# one with a pending action to approve, and a node that never reports.
#
#   scripts/quickstart.sh            then open http://127.0.0.1:18180/ and log in with the token
#
# Everything it writes goes under var/quickstart/ (delete it to start over).
# Without a reachable Docker engine the approved action fails, and its result says why.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

command -v cargo >/dev/null || { echo "quickstart: cargo is not installed (https://rustup.rs)" >&2; exit 1; }
echo "quickstart: building hcp (first build takes a few minutes)"
cargo build -q -p hcp

work=$repo/var/quickstart
mkdir -p "$work"
rm -rf "$work/hosts"
cp -r examples/quickstart/hosts "$work/hosts"
# The redeploy runs in the example's compose folder, wherever this checkout lives.
sed -i "s|compose_dir: examples/quickstart/web|compose_dir: $repo/examples/quickstart/web|" "$work/hosts/laptop/services.yaml"
if ! docker compose version >/dev/null 2>&1 && command -v docker-compose >/dev/null 2>&1; then
  sed -i 's|^compose_command: docker compose|compose_command: docker-compose|' "$work/hosts/laptop/services.yaml"
fi
if ! docker info >/dev/null 2>&1; then
  echo "quickstart: note: no Docker engine answers here; approving the action will show the executor failing it, saying so"
fi

target/debug/hcp check --hosts "$work/hosts"

export NODE_NAME=laptop
export LISTEN=${LISTEN:-127.0.0.1:18180}
export CHECK_INTERVAL=${CHECK_INTERVAL:-10s}
export VERIFY_TIMEOUT=${VERIFY_TIMEOUT:-60s}
export RUST_LOG=${RUST_LOG:-info}
cat <<MSG

quickstart: in a minute the dashboard shows drift; then approve the pending action:
  in the UI (Actions page), or here:  target/debug/hcp actions --root $work/root approve redeploy-laptop-web
  watch it:                            target/debug/hcp actions --root $work/root list

MSG
exec target/debug/hcp up --root "$work/root" --hosts "$work/hosts"
