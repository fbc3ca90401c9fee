//! `hcp deploys NODE/SERVICE`: a service's deploy history and its held generations;
//! `hcp rollback NODE/SERVICE GENERATION`: propose rolling back to one (a person approves it).

use std::process::ExitCode;

use anyhow::Context;
use homelab_core::words::ago;
use homelab_core::{NodeName, ServiceName};
use homelab_ops::ProposeError;
use homelab_store::DataRoot;

use crate::RootArg;
use crate::table::render;

#[derive(Debug, clap::Args)]
pub struct DeploysArgs {
    #[arg(skip)]
    pub root: RootArg,
    /// The service, as `node/service`.
    #[arg(value_name = "NODE/SERVICE")]
    pub target: String,
    /// Print the history and the generations as JSON instead.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    #[arg(skip)]
    pub root: RootArg,
    /// The service, as `node/service`.
    #[arg(value_name = "NODE/SERVICE")]
    pub target: String,
    /// The held generation to return to (see `hcp deploys NODE/SERVICE`).
    #[arg(value_name = "GENERATION")]
    pub generation: String,
    /// Why, in a few words: kept in the action's history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// `node/service`, parsed once here.
fn target(text: &str) -> anyhow::Result<(NodeName, ServiceName)> {
    let (node, service) = text.split_once('/').ok_or_else(|| anyhow::anyhow!("{text:?}: write the service as NODE/SERVICE, e.g. edge-1/web"))?;
    let node = NodeName::parse(node).map_err(|e| anyhow::anyhow!("node {node:?}: {e}"))?;
    let service = ServiceName::parse(service).map_err(|e| anyhow::anyhow!("service {service:?}: {e}"))?;
    Ok((node, service))
}

fn open(root: &RootArg) -> anyhow::Result<DataRoot> {
    DataRoot::open_existing(&root.root).with_context(|| format!("cannot open the data root {}", root.root.display()))
}

pub fn run_deploys(args: &DeploysArgs) -> anyhow::Result<ExitCode> {
    let (node, service) = target(&args.target)?;
    let root = open(&args.root)?;
    let history = root.read_deploy_history(&node, &service).with_context(|| format!("cannot read the deploy history of {node}/{service}"))?;
    let (generations, unreadable) = root.list_generations(&node, &service).with_context(|| format!("cannot list the generations of {node}/{service}"))?;
    if args.json {
        let v = serde_json::json!({ "history": history, "generations": generations });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", text(&history, &generations, chrono::Utc::now()));
    for u in unreadable {
        eprintln!("unreadable generation record {}: {}", u.file, u.reason);
    }
    Ok(ExitCode::SUCCESS)
}

/// The history (newest first) and the held generations, as tables.
pub fn text(history: &homelab_core::deploy::DeployHistory, generations: &[homelab_core::deploy::Generation], now: homelab_core::Timestamp) -> String {
    let mut out = String::new();
    if history.records.is_empty() {
        out.push_str("no deploys recorded yet\n");
    } else {
        let rows: Vec<Vec<String>> = history
            .records
            .iter()
            .rev()
            .map(|r| {
                vec![
                    ago(r.started_at, now),
                    r.kind.to_string(),
                    r.outcome.to_string(),
                    r.approved_by.clone().unwrap_or_else(|| "-".into()),
                    r.held.clone(),
                    r.images_after.clone().unwrap_or_else(|| r.images_before.clone()),
                    r.detail.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&render(&["WHEN", "TYPE", "OUTCOME", "APPROVED BY", "FROM GENERATION", "IMAGES", "DETAIL"], &rows));
    }
    out.push('\n');
    if generations.is_empty() {
        out.push_str("no generation held\n");
    } else {
        let rows: Vec<Vec<String>> =
            generations.iter().rev().map(|g| vec![g.id.clone(), ago(g.taken_at, now), g.images_in_words(), g.files.len().to_string()]).collect();
        out.push_str(&render(&["HELD GENERATION", "TAKEN", "IMAGES", "FILES"], &rows));
    }
    out
}

pub fn run_rollback(args: &RollbackArgs) -> anyhow::Result<ExitCode> {
    let (node, service) = target(&args.target)?;
    let root = open(&args.root)?;
    let (ops, actor) = crate::actions::local_operator(&root);
    match ops.propose_rollback(&actor, &node, &service, &args.generation, args.reason.as_deref()) {
        Ok(a) => {
            println!("{} proposed by {}: pending (approve with: hcp actions approve {})", a.id, actor.by, a.id);
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (ProposeError::NoSuchGeneration { .. } | ProposeError::Active { .. })) => {
            println!("{e}: nothing proposed");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot propose a rollback of {node}/{service}"))),
    }
}
