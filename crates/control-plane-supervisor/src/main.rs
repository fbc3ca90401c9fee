//! `control-plane-supervisor`: parse flags and env, set up logging, run, map to an exit code.

homelab_store::daemon_main!(
    "control-plane-supervisor",
    "Diffs world state against desired state, writes pending actions, auto-cancels.",
    control_plane_supervisor::Config,
    control_plane_supervisor::run
);
