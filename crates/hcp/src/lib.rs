//! `hcp`: the operator's command line. Every subcommand works on the data root and hosts/
//! directly (through `homelab-store`), so it needs no running daemon, except `mirror`, which
//! polls another control plane's `/summary`, and `up`, which runs the daemons itself.

pub mod actions;
pub mod alertmanager;
pub mod audit;
pub mod check;
pub mod health;
pub mod init;
pub mod mirror;
pub mod schema;
pub mod table;
pub mod up;
pub mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The default data root, as in the deployment.
pub const DEFAULT_ROOT: &str = "/opt/homelab";

#[derive(Debug, Parser)]
#[command(name = "hcp", version, about = "The homelab control plane's command line", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `--root DIR` (env `HOMELAB_ROOT`), shared by the subcommands that work on the data root.
#[derive(Debug, Clone, clap::Args)]
pub struct RootArg {
    /// The data root.
    #[arg(long, env = "HOMELAB_ROOT", default_value = DEFAULT_ROOT, value_name = "DIR")]
    pub root: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data root with every folder and safe permissions.
    Init(init::InitArgs),
    /// Validate every hosts/<node>/services.yaml: all errors with file:line:column, exit 1 on any.
    Check(check::CheckArgs),
    /// List, show, approve, reject and retry actions.
    Actions(actions::ActionsArgs),
    /// What is wrong and what happens next, as the supervisor reported it (world/drift.json).
    Drift(actions::DriftArgs),
    /// Mirror another control plane's world state by polling its /summary.
    Mirror(mirror::MirrorArgs),
    /// Exit 0 when a daemon's heartbeat is fresh (or a URL answers 2xx), else 1: for healthchecks.
    Health(health::HealthArgs),
    /// Run observer, supervisor, executor, UI and a local node agent in one process.
    Up(up::UpArgs),
    /// Receive Alertmanager webhooks and write them into the data root as events.
    Alertmanager(alertmanager::AlertmanagerArgs),
    /// Print the JSON Schemas of the data root's files (or write them with --out DIR).
    Schema(schema::SchemaArgs),
    /// Local users of the UI: add, passwd, set, remove, logout, list (state/secrets/users.json).
    User(users::UserArgs),
    /// Per-user API tokens: create (shown once), revoke, list.
    Token(users::TokenArgs),
    /// Print the audit log (logins, decisions, user and token changes).
    Audit(audit::AuditArgs),
}

/// Runs a parsed command line. Errors are for people: the caller prints them and exits 1.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init(a) => init::run(&a),
        Command::Check(a) => check::run(&a),
        Command::Actions(a) => actions::run(&a),
        Command::Drift(a) => actions::run_drift(&a),
        Command::Mirror(a) => mirror::run(a, homelab_store::daemon::shutdown_token()).await,
        Command::Health(a) => health::run(&a).await,
        Command::Up(a) => up::run(a, homelab_store::daemon::shutdown_token()).await,
        Command::Alertmanager(a) => alertmanager::run(a, homelab_store::daemon::shutdown_token()).await,
        Command::Schema(a) => schema::run(&a),
        Command::User(a) => users::run_user(&a),
        Command::Token(a) => users::run_token(&a),
        Command::Audit(a) => audit::run(&a),
    }
}
