#!/usr/bin/env bash
# Installs the homelab node agent on this node as a systemd service. Run as root on the node:
#
#   sudo scripts/node-agent/install-node-agent.sh [path/to/node-agent]
#
# Without a path it uses target/release/node-agent (building it with cargo when missing).
# Safe to run again: it replaces the binary and the unit, keeps an existing env file and token,
# and restarts the service. To install on another machine, copy the binary and this folder there
# (e.g. with scp) and run it on that machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${1:-}

if [ "$(id -u)" -ne 0 ]; then
  echo "install-node-agent: run as root (it installs /usr/local/bin/node-agent and a systemd unit)" >&2
  exit 1
fi
if [ -z "$bin" ]; then
  bin="$repo/target/release/node-agent"
  if [ ! -x "$bin" ]; then
    echo "install-node-agent: building the agent (cargo build --release -p node-agent)"
    (cd "$repo" && cargo build --release -p node-agent)
  fi
fi
[ -x "$bin" ] || { echo "install-node-agent: $bin is not an executable" >&2; exit 1; }

# A system user for the agent, in the docker group for the container checks.
if ! id homelab-agent >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin homelab-agent
fi
getent group docker >/dev/null && usermod -aG docker homelab-agent

install -m 0755 "$bin" /usr/local/bin/node-agent
install -d -m 0750 -o root -g homelab-agent /etc/homelab
if [ ! -f /etc/homelab/node-agent.env ]; then
  install -m 0640 -o root -g homelab-agent "$here/node-agent.env.example" /etc/homelab/node-agent.env
  echo "install-node-agent: wrote /etc/homelab/node-agent.env: set NODE_NAME, HOSTS_DIR and CONTROL_PLANE_URL there"
fi
if [ ! -f /etc/homelab/agent-token ]; then
  install -m 0640 -o root -g homelab-agent /dev/null /etc/homelab/agent-token
  echo "install-node-agent: put this node's ingest token into /etc/homelab/agent-token"
fi
install -d -m 0755 /usr/local/share/doc/homelab
[ -f "$repo/docs/node-agent.md" ] && install -m 0644 "$repo/docs/node-agent.md" /usr/local/share/doc/homelab/node-agent.md
install -m 0644 "$here/node-agent.service" /etc/systemd/system/node-agent.service

systemctl daemon-reload
systemctl enable node-agent.service >/dev/null
if [ -s /etc/homelab/agent-token ] || grep -q '^HOMELAB_ROOT=' /etc/homelab/node-agent.env; then
  systemctl restart node-agent.service
  echo "install-node-agent: started; follow it with: journalctl -u node-agent -f"
  echo "install-node-agent: readiness: curl -s http://127.0.0.1:25001/health (or your LISTEN_PORT)"
else
  echo "install-node-agent: installed but not started: add the token, then: systemctl start node-agent"
fi
