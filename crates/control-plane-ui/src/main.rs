//! `control-plane-ui`: the operator UI and HTTP API. Thin: flags, logging, run.

homelab_store::daemon_main!(
    "control-plane-ui",
    "Operator UI and HTTP API: approvals, /summary, event ingest, metrics",
    control_plane_ui::Config,
    control_plane_ui::run
);
