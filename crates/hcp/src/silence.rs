//! `hcp silence add|list|expire`: mute a node, a service (`node/service`) or an action type for
//! a while, with a reason (`state/silences/<id>.json`, the same files the UI and Telegram write).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use homelab_core::duration::parse_duration;
use homelab_core::silence::Silence;
use homelab_ops::{NewSilence, SilenceError};
use homelab_store::DataRoot;

use crate::RootArg;
use crate::table::render;

#[derive(Debug, clap::Args)]
pub struct SilenceArgs {
    #[arg(skip)]
    pub root: RootArg,
    #[command(subcommand)]
    pub command: SilenceCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SilenceCommand {
    /// Mute a node (`edge-1`), a service (`edge-1/web`) and/or an action type for a while.
    Add {
        /// `node` or `node/service`; omit with --type to mute a type everywhere.
        target: Option<String>,
        /// Only proposals of this type: container_restart, redeploy, disk_cleanup.
        #[arg(long = "type")]
        action_type: Option<String>,
        /// How long: 30m, 1h, 2d (at most 30 days).
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Duration,
        /// Why (shown in the UI, drift.json and the notifications).
        #[arg(long)]
        reason: String,
    },
    /// Active silences and those ended within the last week.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Expire {
        /// The silence's id, as `hcp silence list` shows it.
        id: String,
    },
}

pub fn run(args: &SilenceArgs) -> anyhow::Result<ExitCode> {
    let root = DataRoot::open_existing(&args.root.root).with_context(|| format!("cannot open the data root {}", args.root.root.display()))?;
    let now = chrono::Utc::now();
    let (ops, actor) = crate::actions::local_operator(&root);
    match &args.command {
        SilenceCommand::Add { target, action_type, duration, reason } => {
            let req = NewSilence { target: target.clone(), action_type: action_type.clone(), duration: *duration, reason: reason.clone() };
            let s = ops.add_silence(&actor, req).map_err(|e| match e {
                SilenceError::BadInput(why) => anyhow::anyhow!("{why}"),
                other => anyhow::Error::new(other),
            })?;
            println!("{} muted until {} ({})", s.target(), homelab_core::rfc3339(s.ends_at), s.id);
            Ok(ExitCode::SUCCESS)
        }
        SilenceCommand::List { json } => {
            let list: Vec<Silence> = root.list_silences()?.into_iter().filter(|s| s.is_kept(now)).collect();
            if *json {
                for s in &list {
                    println!("{}", serde_json::to_string(s)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    let state = if s.is_active(now) { "active" } else { "ended" };
                    vec![s.id.clone(), state.to_owned(), s.target(), homelab_core::rfc3339(s.end()), s.created_by.clone(), s.reason.clone()]
                })
                .collect();
            if rows.is_empty() {
                println!("no silences");
            } else {
                print!("{}", render(&["ID", "STATE", "MUTES", "UNTIL", "BY", "REASON"], &rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        SilenceCommand::Expire { id } => {
            let e = ops.expire_silence(&actor, id).map_err(|e| match e {
                SilenceError::NotFound(_) => anyhow::anyhow!("no silence {id}: see hcp silence list"),
                SilenceError::Ended(why) => anyhow::anyhow!("{why}"),
                other => anyhow::Error::new(other),
            })?;
            println!("{} ({}) ended", e.id, e.target());
            Ok(ExitCode::SUCCESS)
        }
    }
}
