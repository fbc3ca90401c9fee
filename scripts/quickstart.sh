#!/usr/bin/env bash
# The quickstart: builds hcp and runs the whole control plane in one process (`hcp up`) on the
# bundled example in examples/quickstart/: a healthy service, a failing one ("web") with a
# pending redeploy to approve, and a node that never reports. Approve the redeploy and the
# executor starts the example's compose project; the check turns healthy and the action shows
# "verified". No registry is needed: the example's image is built here with `docker import`
# of the host's busybox (as the tests do), unless QUICKSTART_IMAGE names one.
#
#   scripts/quickstart.sh            run it (Ctrl-C stops the control plane)
#   scripts/quickstart.sh --clean    remove the example's container, network, image and data
#
# Environment: QUICKSTART_AUTO_APPROVE=1 approves the redeploy by itself (for a demo or a test),
# QUICKSTART_EXIT_WHEN_VERIFIED=1 stops once it is verified, QUICKSTART_IMAGE (an image with
# busybox's sh and httpd), QUICKSTART_DIR (default var/quickstart), QUICKSTART_WEB_PORT (18190),
# QUICKSTART_NAME (quickstart: the container is <name>-web, the compose project homelab-<name>),
# QUICKSTART_HCP (an hcp binary to use instead of building one), LISTEN (127.0.0.1:18180),
# LISTEN_PORT (the agent's readiness port, 25001).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

work=${QUICKSTART_DIR:-$repo/var/quickstart}
case $work in /*) ;; *) work=$repo/$work ;; esac
name=${QUICKSTART_NAME:-quickstart}
project=homelab-$name
container=$name-web
built_image=homelab-quickstart/busybox:latest
web_port=${QUICKSTART_WEB_PORT:-18190}
export LISTEN=${LISTEN:-127.0.0.1:18180}
export LISTEN_PORT=${LISTEN_PORT:-25001}
ui_port=${LISTEN##*:}
id=redeploy-laptop-web

say() { echo "quickstart: $*"; }
have_docker() { docker info >/dev/null 2>&1; }
compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}

clean() {
  local running
  running=$(pgrep -f -- "up --root $work/root " 2>/dev/null || true)
  if [ -n "$running" ]; then
    say "the quickstart is still running (pid $(echo $running)): stop it with Ctrl-C first, then run --clean" >&2
    exit 1
  fi
  say "removing the example's container, network, image and data"
  if have_docker; then
    if [ -f "$work/web/docker-compose.yml" ]; then
      (cd "$work/web" && compose -p "$project" down --remove-orphans >/dev/null 2>&1) || true
    fi
    docker rm -f "$container" >/dev/null 2>&1 && say "  removed container $container" || true
    docker network rm "${project}_default" >/dev/null 2>&1 && say "  removed network ${project}_default" || true
    if [ -z "${QUICKSTART_IMAGE:-}" ] && [ "${QUICKSTART_KEEP_IMAGE:-}" != 1 ]; then
      docker image rm "$built_image" >/dev/null 2>&1 && say "  removed image $built_image" || true
    fi
  else
    say "  no Docker engine answers here: no container to remove"
  fi
  rm -rf "$work" && say "  removed $work"
  say "clean. Start again with: scripts/quickstart.sh"
}

case ${1:-} in
  --clean) clean; exit 0 ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "quickstart: unknown argument $1 (use --clean or --help)" >&2; exit 2 ;;
esac

# The image of the example's "web" service, built locally: no registry pull.
image=${QUICKSTART_IMAGE:-}
build_image() {
  local bb
  bb=$(command -v busybox || true)
  if [ -z "$bb" ]; then
    say "no busybox on this machine to build the example's image from."
    say "  install it (Debian/Ubuntu: apt-get install busybox-static) or set QUICKSTART_IMAGE to an image with sh and httpd"
    return 1
  fi
  say "building the example's image $built_image from $bb (docker import, no registry)"
  local tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/tmp" "$tmp/rootfs/etc"
  cp "$bb" "$tmp/rootfs/bin/busybox"
  # A dynamically linked busybox takes its libraries along.
  if ldd "$bb" >/dev/null 2>&1; then
    for lib in $(ldd "$bb" | grep -o '/[^ ]*'); do
      mkdir -p "$tmp/rootfs$(dirname "$lib")" && cp -L "$lib" "$tmp/rootfs$lib"
    done
  fi
  for applet in sh mkdir echo httpd; do ln -sf /bin/busybox "$tmp/rootfs/bin/$applet"; done
  echo "root:x:0:0:root:/root:/bin/sh" > "$tmp/rootfs/etc/passwd"
  tar -C "$tmp/rootfs" -c . | docker import - "$built_image" >/dev/null
  rm -rf "$tmp"
}

hcp=${QUICKSTART_HCP:-}
if [ -z "$hcp" ]; then
  command -v cargo >/dev/null || { say "cargo is not installed (https://rustup.rs)" >&2; exit 1; }
  say "building hcp (the first build takes a few minutes)"
  cargo build -q -p hcp
  hcp=${CARGO_TARGET_DIR:-$repo/target}/debug/hcp
fi

docker_ok=0
if have_docker; then
  docker_ok=1
  if [ -z "$image" ]; then
    image=$built_image
    docker image inspect "$image" >/dev/null 2>&1 || build_image || docker_ok=0
  fi
else
  say "note: no Docker engine answers here (is dockerd running, may you use it?); approving the action will show the executor failing it, saying so"
fi

# The example, copied into the work folder: hosts/ and the compose project of "web".
mkdir -p "$work"
rm -rf "$work/hosts" "$work/web"
cp -r examples/quickstart/hosts "$work/hosts"
cp -r examples/quickstart/web "$work/web"
cat > "$work/web/.env" <<ENV
COMPOSE_PROJECT_NAME=$project
QUICKSTART_IMAGE=${image:-$built_image}
QUICKSTART_CONTAINER=$container
QUICKSTART_WEB_PORT=$web_port
ENV
laptop=$work/hosts/laptop/services.yaml
sed -i -e "s|compose_dir: .*|compose_dir: $work/web|" \
  -e "s|port: 18180|port: $ui_port|" \
  -e "s|127.0.0.1:18190|127.0.0.1:$web_port|" "$laptop"
if ! docker compose version >/dev/null 2>&1 && command -v docker-compose >/dev/null 2>&1; then
  sed -i 's|^compose_command: docker compose|compose_command: docker-compose|' "$laptop"
fi

"$hcp" check --hosts "$work/hosts"

export NODE_NAME=laptop
export CHECK_INTERVAL=${CHECK_INTERVAL:-5s}
export VERIFY_TIMEOUT=${VERIFY_TIMEOUT:-60s}
export RUST_LOG=${RUST_LOG:-info}
root=$work/root
token_file=$root/state/ui_token

# Follows the example's action and says what happens, in the terminal the person is looking at.
watch_action() {
  local seen=""
  while sleep 1; do
    local out state
    out=$("$hcp" actions show "$id" --root "$root" 2>/dev/null) || continue
    state=$(printf '%s\n' "$out" | awk '$1 == "state" { print $2; exit }')
    [ "$state" = "$seen" ] && [ "$state" != completed ] && continue
    case $state in
      pending)
        [ "$seen" = pending ] && continue
        cat <<MSG

quickstart: the check of "web" fails, so the supervisor proposes: $id
  approve it in the UI: http://$LISTEN/ (log in with the token in $token_file)
  or here:              $hcp actions approve $id --root $root
MSG
        if [ "${QUICKSTART_AUTO_APPROVE:-}" = 1 ]; then
          say "QUICKSTART_AUTO_APPROVE=1: approving it"
          "$hcp" actions approve "$id" --root "$root" || true
        fi
        ;;
      approved|running) [ "$seen" != "$state" ] && say "$id is $state" ;;
      completed)
        local verified
        verified=$(printf '%s\n' "$out" | awk '$1 == "verified" { $1 = ""; print substr($0, 2); exit }')
        [ "$seen" != completed ] && say "$id completed: the executor started the example's container ($container); waiting for the check to pass"
        case $verified in
          yes:*)
            say "$id completed and verified: web answers on http://127.0.0.1:$web_port/"
            say "done. Look around in the UI; Ctrl-C stops; scripts/quickstart.sh --clean removes everything"
            if [ "${QUICKSTART_EXIT_WHEN_VERIFIED:-}" = 1 ]; then kill -TERM "$$" 2>/dev/null; fi
            return 0 ;;
          no:*) say "$id completed but was not verified: $verified (see: $hcp actions show $id --root $root)"; return 0 ;;
        esac
        ;;
      failed|rejected|cancelled)
        say "$id is $state. Why: $hcp actions show $id --root $root"
        return 0 ;;
    esac
    seen=$state
  done
}

hcp_pid=""
watcher=""
stop() {
  [ -n "$hcp_pid" ] && kill -TERM "$hcp_pid" 2>/dev/null || true
}
finish() {
  local code=$?
  [ -n "$watcher" ] && kill "$watcher" 2>/dev/null || true
  cat <<MSG

quickstart: stopped. What it started is still here:
  the example's container $container (if the redeploy ran) and its data in $work.
  Start again with scripts/quickstart.sh (the data stays), or remove everything with:
    scripts/quickstart.sh --clean
MSG
  exit "$code"
}
trap stop INT TERM
trap finish EXIT

if [ "$docker_ok" = 1 ] && docker ps -a --format '{{.Names}}' | grep -qx "$container"; then
  say "the example's container $container already exists from an earlier run; the redeploy will recreate it"
fi

watch_action &
watcher=$!
"$hcp" up --root "$root" --hosts "$work/hosts" &
hcp_pid=$!
# `wait` returns early when a signal arrives (the trap forwards it); wait until hcp up is done.
status=0
wait "$hcp_pid" || status=$?
while kill -0 "$hcp_pid" 2>/dev/null; do
  status=0
  wait "$hcp_pid" || status=$?
done
exit "$status"
