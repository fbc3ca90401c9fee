//! `hcp mirror --from URL --root DIR`: polls another control plane's `GET /summary` with
//! `If-None-Match`, and writes the nodes and services it reports as this data root's
//! `world/nodes.json` and `world/services.json` (atomically), so a UI or script on this host
//! reads the same world state. A heartbeat `state/heartbeat/hcp-mirror.json` says it is alive.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use homelab_core::world::{NodesFile, ServicesFile};
use homelab_core::{Heartbeat, Timestamp};
use homelab_store::DataRoot;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, ETAG, IF_NONE_MATCH};
use tokio_util::sync::CancellationToken;

/// The name of the mirror's heartbeat file.
pub const DAEMON: &str = "hcp-mirror";

/// How long one request to `/summary` may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Args)]
pub struct MirrorArgs {
    /// The control plane to mirror: its UI's base URL (`/summary` is appended).
    #[arg(long, env = "MIRROR_FROM", value_name = "URL")]
    pub from: String,
    /// The local data root to write world/ into: the global --root.
    #[arg(skip)]
    pub root: PathBuf,
    /// How often to poll.
    #[arg(long, env = "MIRROR_INTERVAL", default_value = "10s", value_parser = homelab_core::duration::parse_duration)]
    pub interval: Duration,
    /// Poll once, write, and exit (non-zero when the poll failed).
    #[arg(long)]
    pub once: bool,
    /// Bearer token for `/summary`, when the UI asks for one.
    #[arg(long, env = "SUMMARY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// New content, written; with the ETag to send next time.
    Updated { etag: Option<String>, nodes: usize, services: usize },
    /// `304 Not Modified`: nothing written.
    NotModified,
}

/// `URL/summary`, tolerating a trailing slash or a URL that already names `/summary`.
pub fn summary_url(from: &str) -> String {
    let base = from.trim_end_matches('/');
    if base.ends_with("/summary") { base.to_owned() } else { format!("{base}/summary") }
}

/// Takes world state out of a `/summary` document: `nodes` and `services` at the top level
/// (or under `world`), in the shapes of `world/nodes.json` and `world/services.json`.
///
/// The UI's summary is a view that carries every field of the files, so the files written
/// equal the source's. Four things are bridged here: its time is `world_generated_at` (or
/// `generated_at`), written as both files' `generated_at`; a node's `status` in the view is the
/// UI's own verdict of now, so the file's (`world_status`) is written when the summary has it;
/// nodes that hosts/ names but world state does not know (no `world_status`, or with a UI that
/// sends none, `last_seen: null`) are left out, as the observer's own `world/nodes.json` would;
/// and a summary from an older UI may carry no `last_event_id` (the nil UUID stands in then).
pub fn world_from_summary(doc: &serde_json::Value, now: Timestamp) -> anyhow::Result<(ServicesFile, NodesFile)> {
    let part = |key: &str| doc.get(key).or_else(|| doc.get("world").and_then(|w| w.get(key))).cloned();
    let generated_at = ["world_generated_at", "generated_at"]
        .iter()
        .filter_map(|k| doc.get(*k).and_then(|v| v.as_str()))
        .find_map(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map_or(now, |t| t.to_utc());
    let Some(mut services) = part("services") else { bail!("the summary has no \"services\"") };
    let Some(mut nodes) = part("nodes") else { bail!("the summary has no \"nodes\"") };
    if let Some(by_node) = services.as_object_mut() {
        for svc in by_node.values_mut().filter_map(|s| s.as_object_mut()).flat_map(|s| s.values_mut()).filter_map(|s| s.as_object_mut()) {
            svc.entry("last_event_id").or_insert_with(|| uuid_nil().into());
        }
    }
    if let Some(by_name) = nodes.as_object_mut() {
        by_name.retain(|_, n| n.get("world_status").is_some() || n.get("last_seen").is_some_and(|v| !v.is_null()));
        for node in by_name.values_mut().filter_map(|n| n.as_object_mut()) {
            if let Some(status) = node.remove("world_status") {
                node.insert("status".into(), status);
            }
        }
    }
    let services = serde_json::from_value(services).context("the summary's \"services\" is not in the world/services.json shape")?;
    let nodes = serde_json::from_value(nodes).context("the summary's \"nodes\" is not in the world/nodes.json shape")?;
    Ok((ServicesFile { generated_at, services }, NodesFile { generated_at, nodes }))
}

fn uuid_nil() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}

/// One poll: `GET /summary` with `If-None-Match: etag`, and on `200` the world files written.
pub async fn poll_once(client: &reqwest::Client, url: &str, token: Option<&str>, etag: Option<&str>, root: &DataRoot) -> anyhow::Result<Poll> {
    let mut req = client.get(url).timeout(REQUEST_TIMEOUT);
    if let Some(tag) = etag {
        req = req.header(IF_NONE_MATCH, tag);
    }
    if let Some(token) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let resp = req.send().await.with_context(|| format!("GET {url}"))?;
    match resp.status() {
        StatusCode::NOT_MODIFIED => return Ok(Poll::NotModified),
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            bail!("GET {url}: {} (hint: set SUMMARY_TOKEN or --token to a token the UI accepts)", resp.status())
        }
        other => bail!("GET {url}: unexpected {other}"),
    }
    let new_etag = resp.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let doc: serde_json::Value = resp.json().await.with_context(|| format!("GET {url}: the body is not JSON"))?;
    let (services, nodes) = world_from_summary(&doc, chrono::Utc::now()).with_context(|| format!("GET {url}"))?;
    let counts = (nodes.nodes.len(), services.services.values().map(|s| s.len()).sum());
    root.write_world(&services, &nodes).with_context(|| format!("cannot write world/ under {}", root.path().display()))?;
    Ok(Poll::Updated { etag: new_etag, nodes: counts.0, services: counts.1 })
}

pub async fn run(args: MirrorArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let root = DataRoot::open(&args.root).with_context(|| format!("cannot open the data root {}", args.root.display()))?;
    let url = summary_url(&args.from);
    let client = reqwest::Client::builder()
        .connect_timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("hcp-mirror/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let started_at = chrono::Utc::now();
    let mut etag: Option<String> = None;
    let mut counters = std::collections::BTreeMap::<String, u64>::new();
    tracing::info!(%url, root = %args.root.display(), interval = ?args.interval, "mirroring world state");
    loop {
        match poll_once(&client, &url, args.token.as_deref(), etag.as_deref(), &root).await {
            Ok(Poll::Updated { etag: e, nodes, services }) => {
                tracing::info!(nodes, services, etag = e.as_deref().unwrap_or("-"), "world/ updated from the summary");
                etag = e;
                *counters.entry("updated".into()).or_default() += 1;
            }
            Ok(Poll::NotModified) => {
                tracing::debug!("summary not modified");
                *counters.entry("not_modified".into()).or_default() += 1;
            }
            Err(e) if args.once => return Err(e),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "mirror poll failed; world/ keeps its last content");
                *counters.entry("errors".into()).or_default() += 1;
            }
        }
        let hb = Heartbeat {
            counters: counters.clone(),
            extra: serde_json::json!({ "from": url }),
            ..homelab_store::daemon::heartbeat(DAEMON, started_at, chrono::Utc::now(), args.interval)
        };
        if let Err(e) = root.write_heartbeat(DAEMON, &hb) {
            tracing::warn!(error = %e, "cannot write the mirror heartbeat");
        }
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = shutdown.cancelled() => return Ok(ExitCode::SUCCESS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_url_table() {
        for (from, want) in [
            ("http://cp:18180", "http://cp:18180/summary"),
            ("http://cp:18180/", "http://cp:18180/summary"),
            ("https://cp.example/homelab", "https://cp.example/homelab/summary"),
            ("http://cp:18180/summary", "http://cp:18180/summary"),
        ] {
            assert_eq!(summary_url(from), want, "{from}");
        }
    }

    #[test]
    fn summary_without_services_is_refused() {
        let now = chrono::Utc::now();
        let err = world_from_summary(&serde_json::json!({"nodes": {}}), now).unwrap_err();
        assert!(err.to_string().contains("services"), "{err}");
        let (s, n) = world_from_summary(&serde_json::json!({"world": {"nodes": {}, "services": {}}}), now).unwrap();
        assert!(s.services.is_empty() && n.nodes.is_empty());
    }

    #[test]
    fn a_node_is_written_with_the_status_of_the_world_file() {
        let doc = serde_json::json!({
            "world_generated_at": "2026-05-27T14:03:11.123Z",
            "services": {},
            "nodes": {
                "edge-1": { "status": "stale", "world_status": "up", "last_seen": "2026-05-27T14:03:10.000Z", "disk_pressure": "ok",
                    "agent_version": "1.0.0", "desired": true, "uptime_secs": 7, "disks": [{ "mount": "/", "used_pct": 1.5 }] },
                "edge-2": { "status": "stale", "world_status": "stale", "last_seen": null, "disk_pressure": null, "agent_version": null, "desired": false },
                "edge-3": { "status": "stale", "last_seen": null, "disk_pressure": null, "agent_version": null, "desired": true }
            }
        });
        let (_, n) = world_from_summary(&doc, chrono::Utc::now()).unwrap();
        assert_eq!(n.nodes.keys().collect::<Vec<_>>(), ["edge-1", "edge-2"], "edge-3 is only named by hosts/");
        let edge1 = &n.nodes["edge-1"];
        assert_eq!(edge1.status, homelab_core::NodeStatus::Up, "the file's status, not the view's");
        assert_eq!((edge1.uptime_secs, edge1.agent_version.as_deref()), (Some(7), Some("1.0.0")));
        assert_eq!(edge1.disks, Some(serde_json::json!([{ "mount": "/", "used_pct": 1.5 }])));
        assert_eq!(homelab_core::rfc3339(n.generated_at), "2026-05-27T14:03:11.123Z");
    }
}
