#!/usr/bin/env bash
# Deploys the control plane to a remote host (the VPS) over SSH: copies the sources, compose/
# and hosts/ there, and runs scripts/deploy-local.sh on it, which builds the image, prepares
# /opt/homelab and starts the daemons with Docker Compose.
#
#   scripts/deploy-control-plane.sh --ssh user@host [--dir /srv/homelab-control-plane]
#                                   [--port 22] [--ship-image IMAGE]
#
# --ship-image sends an image built here (docker save | ssh docker load) instead of building on
# the remote host. The remote user needs Docker access and sudo (for /opt/homelab).
set -euo pipefail
cd "$(dirname "$0")/.."

target=
dir=/srv/homelab-control-plane
port=22
ship=
while [ $# -gt 0 ]; do
  case "$1" in
    --ssh) target=$2; shift ;;
    --dir) dir=$2; shift ;;
    --port) port=$2; shift ;;
    --ship-image) ship=$2; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "deploy-control-plane: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$target" ] || { echo "deploy-control-plane: --ssh user@host is required" >&2; exit 2; }

ssh_opts=(-p "$port" -o BatchMode=yes -o ConnectTimeout=10)
echo "deploy-control-plane: checking hosts/ here first"
if command -v cargo >/dev/null 2>&1; then cargo run -q -p hcp -- check --hosts hosts; fi

echo "deploy-control-plane: copying to $target:$dir"
ssh "${ssh_opts[@]}" "$target" "mkdir -p '$dir'"
# Secrets and the SSH key in compose/ stay where they are on the remote host (never overwritten).
rsync -az --delete -e "ssh ${ssh_opts[*]}" \
  --exclude target/ --exclude var/ --exclude .git/ \
  --exclude compose/secrets.env --exclude compose/.env --exclude compose/ssh/ \
  ./ "$target:$dir/"

args=()
if [ -n "$ship" ]; then
  echo "deploy-control-plane: shipping image $ship"
  docker save "$ship" | gzip -1 | ssh "${ssh_opts[@]}" "$target" "gunzip | docker load"
  args=(--no-build --image "$ship")
fi
echo "deploy-control-plane: deploying on $target"
ssh "${ssh_opts[@]}" -t "$target" "cd '$dir' && scripts/deploy-local.sh ${args[*]}"
