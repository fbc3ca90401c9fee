#!/usr/bin/env bash
# Deploys the control plane on this host with Docker Compose: builds the image (unless told not
# to), prepares the data root owned by UID 1000, validates hosts/, and starts the four daemons.
#
#   scripts/deploy-local.sh [--no-build] [--image NAME] [--data DIR] [--hosts DIR]
#
# Safe to run again: it only creates what is missing and `up -d` recreates changed containers.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

image=${HOMELAB_IMAGE:-homelab-control-plane:latest}
data=${HOMELAB_DATA:-/opt/homelab}
hosts=${HOMELAB_HOSTS:-$repo/hosts}
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --image) image=$2; shift ;;
    --data) data=$2; shift ;;
    --hosts) hosts=$2; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "deploy-local: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
hosts=$(cd "$hosts" && pwd) || { echo "deploy-local: hosts folder $hosts does not exist" >&2; exit 1; }

if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose)
else echo "deploy-local: neither 'docker compose' nor 'docker-compose' is installed" >&2; exit 1; fi

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

if [ "$build" -eq 1 ]; then
  echo "deploy-local: building $image"
  docker build -t "$image" "$repo"
elif ! docker image inspect "$image" >/dev/null 2>&1; then
  echo "deploy-local: image $image is not here; build it or drop --no-build" >&2; exit 1
fi

echo "deploy-local: checking $hosts"
docker run --rm --network none -v "$hosts:/etc/homelab/hosts:ro" "$image" hcp check --hosts /etc/homelab/hosts

echo "deploy-local: preparing the data root $data (owner 1000:1000)"
"${sudo[@]}" mkdir -p "$data"
"${sudo[@]}" chown 1000:1000 "$data"
"${sudo[@]}" chmod 0750 "$data"
docker run --rm --network none -u 1000:1000 -v "$data:/opt/homelab" "$image" hcp init --root /opt/homelab >/dev/null

# Per-deployment files next to the compose file: secrets (0600) and the executor's SSH folder.
[ -f compose/secrets.env ] || install -m 0600 /dev/null compose/secrets.env
mkdir -p compose/ssh
chmod 0700 compose/ssh
if [ ! -f compose/ssh/id_ed25519 ]; then
  echo "deploy-local: note: no compose/ssh/id_ed25519; the executor can reach only this host's Docker"
fi

docker_gid=$(stat -c %g /var/run/docker.sock 2>/dev/null || echo 999)
# The tokens file made above is the one the daemons read (compose falls back to defaults.env).
export HOMELAB_SECRETS_ENV=${HOMELAB_SECRETS_ENV:-secrets.env}
export HOMELAB_IMAGE=$image HOMELAB_DATA=$data HOMELAB_HOSTS=$hosts DOCKER_GID=$docker_gid
"${compose[@]}" -f compose/docker-compose.yml up -d

echo
echo "deploy-local: the control plane is starting"
echo "  UI:        http://$(hostname -f 2>/dev/null || hostname):18180/  (port 18180 on this host)"
echo "  token:     UI_TOKEN in compose/secrets.env, or generated into $data/state/ui_token"
echo "  status:    ${compose[*]} -f compose/docker-compose.yml ps"
echo "  logs:      ${compose[*]} -f compose/docker-compose.yml logs -f"
