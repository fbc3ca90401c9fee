//! `control-plane-observer`: folds event files into world state.

homelab_store::daemon_main!(
    "control-plane-observer",
    "Folds event files into world state (world/services.json, world/nodes.json).",
    control_plane_observer::Config,
    control_plane_observer::run
);
