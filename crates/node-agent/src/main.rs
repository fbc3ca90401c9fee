//! `node-agent`: parses flags and environment, sets up logging, runs the agent until SIGTERM.

homelab_store::daemon_main!(
    "node-agent",
    "Runs a node's health checks and reports them as events to the homelab control plane.",
    node_agent::Config,
    node_agent::run
);
