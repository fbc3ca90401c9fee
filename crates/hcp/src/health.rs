//! `hcp health --daemon NAME` / `hcp health --url URL` / `hcp health --ui`: container
//! healthchecks without curl. The first reads the daemon's heartbeat file and exits non-zero when
//! it is missing or old; the second asks an HTTP endpoint and exits non-zero unless it answers
//! 2xx; the third asks the UI of this environment (`LISTEN`, `BASE_PATH`) for its `/healthz`, so
//! a healthcheck follows the UI's own settings wherever they were set.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use homelab_core::Heartbeat;

use crate::RootArg;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["daemon", "url", "ui"])))]
pub struct HealthArgs {
    #[arg(skip)]
    pub root: RootArg,
    /// The daemon whose heartbeat to read: `state/heartbeat/<NAME>.json`.
    #[arg(long, value_name = "NAME")]
    pub daemon: Option<String>,
    /// Instead of a heartbeat, GET this URL (5 s timeout) and expect a 2xx answer.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// GET the `/healthz` of the UI this environment configures: `LISTEN` (default
    /// 0.0.0.0:18180; an unspecified address is asked on loopback) and `BASE_PATH`.
    #[arg(long)]
    pub ui: bool,
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

/// The UI's `/healthz` for `LISTEN` and `BASE_PATH` as the UI reads them.
pub fn ui_healthz(listen: Option<&str>, base_path: Option<&str>) -> anyhow::Result<String> {
    let listen = listen.map(str::trim).filter(|l| !l.is_empty()).unwrap_or("0.0.0.0:18180");
    let addr: std::net::SocketAddr = listen.parse().map_err(|_| anyhow::anyhow!("LISTEN {listen:?} is not an address:port"))?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let base = base_path.unwrap_or("").trim().trim_end_matches('/');
    let base = if base.is_empty() || base.starts_with('/') { base.to_owned() } else { format!("/{base}") };
    Ok(format!("http://{}{base}/healthz", std::net::SocketAddr::new(ip, addr.port())))
}

pub async fn run(args: &HealthArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.url {
        return probe(url).await;
    }
    if args.ui {
        let url = ui_healthz(std::env::var("LISTEN").ok().as_deref(), std::env::var("BASE_PATH").ok().as_deref())?;
        return probe(&url).await;
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

    #[test]
    fn the_ui_healthz_follows_listen_and_base_path() {
        let cases: &[(Option<&str>, Option<&str>, &str)] = &[
            (None, None, "http://127.0.0.1:18180/healthz"),
            (Some("0.0.0.0:18180"), Some(""), "http://127.0.0.1:18180/healthz"),
            (Some("0.0.0.0:18180"), Some("/homelab"), "http://127.0.0.1:18180/homelab/healthz"),
            (Some("127.0.0.1:9000"), Some("homelab/"), "http://127.0.0.1:9000/homelab/healthz"),
            (Some("[::]:18180"), None, "http://[::1]:18180/healthz"),
            (Some("192.0.2.7:80"), Some("/a/b"), "http://192.0.2.7:80/a/b/healthz"),
        ];
        for (listen, base, want) in cases {
            assert_eq!(ui_healthz(*listen, *base).unwrap(), *want, "{listen:?} {base:?}");
        }
        assert!(ui_healthz(Some("ui.lan:18180"), None).is_err());
    }

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
