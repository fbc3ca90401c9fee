#!/usr/bin/env bash
# The test command: installs what the tests need (see test-deps.sh), builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
export TEST_IMAGE=${TEST_IMAGE:-homelab-test/busybox:latest}
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked
cargo test --workspace --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
