//! `hcp audit`: prints the audit log (`audit/YYYY-MM-DD.jsonl`), newest day last.

use std::process::ExitCode;

use anyhow::Context;
use homelab_store::DataRoot;
use homelab_store::audit::AuditFilter;

use crate::RootArg;
use crate::table::render;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[arg(skip)]
    pub root: RootArg,
    /// One day (`2025-06-01`); default: the last `--days` days.
    #[arg(long)]
    pub day: Option<chrono::NaiveDate>,
    /// How many days back from today when no --day is given.
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    /// Only records of this user.
    #[arg(long)]
    pub who: Option<String>,
    /// Only this kind: login, approve, reject, retry, user_add, token_create, …
    #[arg(long)]
    pub what: Option<String>,
    /// Only this outcome: ok, refused, rate_limited, conflict, failed.
    #[arg(long)]
    pub outcome: Option<String>,
    /// One JSON record per line, as stored.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let root = DataRoot::open_existing(&args.root.root).with_context(|| format!("cannot open the data root {}", args.root.root.display()))?;
    let today = chrono::Utc::now().date_naive();
    let days: Vec<chrono::NaiveDate> = match args.day {
        Some(d) => vec![d],
        None => (0..args.days.max(1)).rev().map(|i| today - chrono::Duration::days(i64::from(i))).collect(),
    };
    let filter = AuditFilter { who: args.who.clone(), what: args.what.clone(), outcome: args.outcome.clone(), target: None };
    let (mut rows, mut skipped) = (Vec::new(), 0);
    for d in days {
        let read = root.read_audit(d, &filter).with_context(|| format!("cannot read the audit log of {d}"))?;
        skipped += read.skipped;
        for r in read.records {
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                rows.push(vec![homelab_core::rfc3339(r.time), r.who, r.role, r.channel, r.source, r.what, r.target, r.outcome, r.detail.unwrap_or_default()]);
            }
        }
    }
    if !args.json {
        print!("{}", render(&["TIME", "WHO", "ROLE", "CHANNEL", "SOURCE", "WHAT", "TARGET", "OUTCOME", "DETAIL"], &rows));
    }
    if skipped > 0 {
        eprintln!("hcp: {skipped} unreadable line(s) skipped (a torn last line after a crash, or a damaged file)");
    }
    Ok(ExitCode::SUCCESS)
}
