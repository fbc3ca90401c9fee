# One image with every binary of the control plane: the four daemons, the node agent and hcp.
# Build:  docker build -t homelab-control-plane:latest .
# The compose file (compose/docker-compose.yml) runs each daemon from it as UID 1000.

# --- build stage: the whole workspace in release mode ------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Manifests first, so a change in the sources does not refetch every dependency.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY tests tests
RUN cargo fetch --locked
RUN cargo build --release --locked --bins \
 && mkdir -p /out \
 && for b in control-plane-observer control-plane-supervisor control-plane-executor control-plane-ui node-agent hcp; do \
      install -m 0755 "target/release/$b" /out/; \
    done

# --- the Docker CLI with its compose plugin (static binaries), for the executor's redeploys ----
FROM docker:27-cli AS dockercli

# --- runtime stage ---------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates openssh-client tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=dockercli /usr/local/bin/docker /usr/local/bin/docker
COPY --from=dockercli /usr/local/libexec/docker/cli-plugins/docker-compose /usr/local/libexec/docker/cli-plugins/docker-compose
# hosts files may say `compose_command: docker-compose`: the same plugin answers to that name.
RUN printf '#!/bin/sh\nexec docker compose "$@"\n' > /usr/local/bin/docker-compose \
 && chmod 0755 /usr/local/bin/docker-compose \
 && useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin homelab \
 && mkdir -p /opt/homelab /etc/homelab/hosts \
 && chown 1000:1000 /opt/homelab
COPY --from=build /out/ /usr/local/bin/
ENV HOMELAB_ROOT=/opt/homelab \
    HOSTS_DIR=/etc/homelab/hosts \
    RUST_LOG=info
USER 1000:1000
WORKDIR /opt/homelab
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["hcp", "--help"]
