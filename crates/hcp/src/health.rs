//! `hcp health --daemon NAME` / `hcp health --url URL`: container healthchecks without curl.
//! The first reads the daemon's heartbeat file and exits non-zero when it is missing or old;
//! the second asks an HTTP endpoint (the UI's `/healthz`) and exits non-zero unless it answers 2xx.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use homelab_core::Heartbeat;

use crate::RootArg;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["daemon", "url"])))]
pub struct HealthArgs {
    #[arg(skip)]
    pub root: RootArg,
    /// The daemon whose heartbeat to read: `state/heartbeat/<NAME>.json`.
    #[arg(long, value_name = "NAME")]
    pub daemon: Option<String>,
    /// Instead of a heartbeat, GET this URL (5 s timeout) and expect a 2xx answer.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Call the heartbeat old past this age; default: three of the daemon's own intervals.
    #[arg(long, value_parser = homelab_core::duration::parse_duration)]
    pub max_age: Option<Duration>,
}

/// The verdict on one heartbeat at `now`: `Ok(description)` when fresh, `Err(why)` when not.
pub fn judge(hb: &Heartbeat, now: homelab_core::Timestamp, max_age: Option<Duration>) -> Result<String, String> {
    let age = now.signed_duration_since(hb.last_loop_at).to_std().unwrap_or_default();
    let old = match max_age {
        Some(max) => age > max,
        None => hb.is_stopped(now),
    };
    let when = homelab_core::words::ago(hb.last_loop_at, now);
    if old {
        Err(format!("{} heartbeat is old: last loop {when} (pid {})", hb.daemon, hb.pid))
    } else {
        Ok(format!("{} is alive: last loop {when} (pid {})", hb.daemon, hb.pid))
    }
}

pub async fn run(args: &HealthArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.url {
        return probe(url).await;
    }
    let daemon = args.daemon.as_deref().unwrap_or_default();
    homelab_core::validate_name(daemon).map_err(|e| anyhow::anyhow!("--daemon: {e}"))?;
    let root = homelab_store::DataRoot::at(&args.root.root);
    let path = root.heartbeat_display_path(daemon);
    let hb: Option<Heartbeat> = root.read_heartbeat(daemon).with_context(|| format!("cannot read {}", path.display()))?;
    let Some(hb) = hb else {
        println!("{daemon}: no heartbeat at {} (not started yet, or a different --root)", path.display());
        return Ok(ExitCode::FAILURE);
    };
    match judge(&hb, chrono::Utc::now(), args.max_age) {
        Ok(msg) => {
            println!("{msg}");
            Ok(ExitCode::SUCCESS)
        }
        Err(msg) => {
            println!("{msg}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn probe(url: &str) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    match client.get(url).send().await {
        Ok(resp) if resp.status().is_success() => {
            println!("{url}: {}", resp.status());
            Ok(ExitCode::SUCCESS)
        }
        Ok(resp) => {
            println!("{url}: {}", resp.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            println!("{url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(last_loop_secs_ago: i64, interval_secs: u64, now: homelab_core::Timestamp) -> Heartbeat {
        Heartbeat {
            daemon: "control-plane-observer".into(),
            pid: 7,
            version: "0".into(),
            started_at: now - chrono::Duration::hours(1),
            last_loop_at: now - chrono::Duration::seconds(last_loop_secs_ago),
            interval_secs,
            counters: Default::default(),
            config_errors: vec![],
            extra: serde_json::Value::Null,
        }
    }

    #[test]
    fn heartbeat_age_table() {
        let now = chrono::Utc::now();
        // (seconds since the last loop, the daemon's interval, --max-age, fresh?)
        let cases = [
            (5, 30, None, true),
            (90, 30, None, true),   // three intervals plus slack
            (120, 30, None, false), // four intervals: stopped
            (20, 30, Some(10), false),
            (20, 30, Some(60), true),
        ];
        for (ago, interval, max, fresh) in cases {
            let got = judge(&hb(ago, interval, now), now, max.map(Duration::from_secs));
            assert_eq!(got.is_ok(), fresh, "{ago}s ago, interval {interval}s, max {max:?}: {got:?}");
        }
    }
}
