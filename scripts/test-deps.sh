#!/usr/bin/env bash
# Installs and starts what the test suite needs on a fresh Debian machine: a Docker engine with
# docker-compose v1, sshd, nats-server, Chromium with its WebDriver, busybox for test images,
# Prometheus' Alertmanager (with amtool) and promtool, glewlwyd (an OpenID Connect provider),
# aiosmtpd and openssl for the e-mail tests, and a container registry (with htpasswd for its
# auth variant) for the update and rollback tests.
# Safe to run again: it only installs what is missing and only starts what is not running.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

have docker || need+=(docker.io)
have docker-compose || need+=(docker-compose)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
have nats-server || need+=(nats-server)
# The node agent's mqtt check is tested against a real broker (the test starts it; no service).
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
have chromium || need+=(chromium)
have chromedriver || need+=(chromium-driver)
pkg_installed busybox-static || need+=(busybox-static)
# A real Alertmanager sends webhooks to the UI in the Alertmanager tests (the test starts it).
{ [ -x /usr/bin/prometheus-alertmanager ] && have amtool; } || need+=(prometheus-alertmanager)
# promtool and prometheus (the prometheus package): rule files, metrics syntax, a real scrape.
{ have promtool && have prometheus; } || need+=(prometheus)
# systemd-analyze verifies (and scores) the node agent's unit in the tests.
have systemd-analyze || need+=(systemd)
# A real OpenID Connect provider for the UI's single sign-on tests (the test starts it with a
# fresh SQLite database made with sqlite3 and a key made with openssl).
have glewlwyd || need+=(glewlwyd)
have sqlite3 || need+=(sqlite3)
# The e-mail tests make a self-signed certificate for their STARTTLS server with the CLI.
have openssl || need+=(openssl)
# A real container registry on 127.0.0.1 for versioned images (testkit's Registry starts it);
# htpasswd makes the bcrypt password file of the registry that wants basic auth.
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
have htpasswd || need+=(apache2-utils)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: missing ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "test-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The Docker engine: started here when it is not answering (as on a laptop after install).
if ! docker info >/dev/null 2>&1; then
  echo "test-deps: starting dockerd"
  if have service && service docker start >/dev/null 2>&1; then :; else
    nohup dockerd >/tmp/dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "test-deps: dockerd did not start; see /tmp/dockerd.log" >&2; exit 1; }
fi

# From PyPI: the OpenAPI test validates the served document and fuzzes the real server.
py_need=()
have schemathesis || py_need+=("schemathesis==4.32.5")
have openapi-spec-validator || py_need+=("openapi-spec-validator==0.9.0")
# The e-mail tests run a real SMTP server (crates/homelab-notify/tests/smtp_sink.py).
python3 -c 'import aiosmtpd' 2>/dev/null || py_need+=("aiosmtpd==1.4.6")
if [ ${#py_need[@]} -gt 0 ]; then
  echo "test-deps: pip installing ${py_need[*]}"
  python3 -m pip install -q "${py_need[@]}"
fi

# The busybox test image: no registry here, so it is imported from a tarball.
"$(dirname "$0")/test-image.sh"
