//! The observer: folds event files into world state (`world/services.json`,
//! `world/nodes.json`) and keeps a checkpoint (`state/observer_checkpoint.json`).
//!
//! The fold is the pure `Checkpoint::apply` of the core crate; this crate decides which files
//! to read, quarantines bad ones, and writes the results through the store. The checkpoint is
//! the fold's whole state (world plus per-node cursors) in one atomic write, so a restart at
//! any instant continues where the last written checkpoint left off, and replaying after
//! deleting it gives the same world.

mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use homelab_core::duration::parse_duration;
use homelab_store::DataRoot;
use tokio_util::sync::CancellationToken;

pub use scan::{Observer, ScanStats};

/// `control-plane-observer --root DIR [--hosts DIR] [--once]`
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: homelab_store::daemon::CommonArgs,
    /// Desired state (hosts/<node>/services.yaml); needed for ghost pruning only.
    #[arg(long = "hosts", env = "HOSTS_DIR")]
    pub hosts: Option<PathBuf>,
    /// Fold everything there is now, write world state, and exit.
    #[arg(long)]
    pub once: bool,
    /// A node with no event for this long is `stale`.
    #[arg(long, env = "NODE_STALE_AFTER", default_value = "90s", value_parser = parse_duration)]
    pub node_stale_after: Duration,
    /// JSON map from event node names to canonical names, e.g. {"node-2": "edge-1"}.
    #[arg(long, env = "NODE_ALIAS_MAP", value_parser = parse_alias_map)]
    pub node_alias_map: Option<AliasMap>,
    /// A service not in desired state with no event for this long is pruned from world/.
    #[arg(long, env = "GHOST_TTL", default_value = "1h", value_parser = parse_duration)]
    pub ghost_ttl: Duration,
    /// Day folders older than this many days are deleted (after a last scan); an event dated
    /// in such a day is quarantined as `too_old`.
    #[arg(long, env = "EVENT_RETENTION_DAYS", default_value_t = 14)]
    pub event_retention_days: u32,
    /// An event dated more than this ahead of the observer's clock is quarantined (`clock_skew`):
    /// it would move its node into the future.
    #[arg(long, env = "MAX_CLOCK_SKEW", default_value = "5m", value_parser = parse_duration)]
    pub max_clock_skew: Duration,
    /// Full rescan of events/ as the safety net behind inotify.
    #[arg(long, env = "OBSERVER_RESCAN_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub rescan_interval: Duration,
    /// World files are written at most this many times per second; a change that finds the
    /// budget unspent is written at once, a burst is folded in batches.
    #[arg(long, env = "WORLD_WRITES_PER_SECOND", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub world_writes_per_second: u32,
}

/// Node name aliases: event node name → canonical name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasMap(pub BTreeMap<String, String>);

fn parse_alias_map(s: &str) -> Result<AliasMap, String> {
    if s.trim().is_empty() {
        return Ok(AliasMap::default());
    }
    let map: BTreeMap<String, String> =
        serde_json::from_str(s).map_err(|e| format!("NODE_ALIAS_MAP must be a JSON object of names, like {{\"node-2\": \"edge-1\"}}: {e}"))?;
    for (k, v) in &map {
        homelab_core::validate_name(k).map_err(|e| format!("NODE_ALIAS_MAP key: {e}"))?;
        homelab_core::validate_name(v).map_err(|e| format!("NODE_ALIAS_MAP value: {e}"))?;
    }
    Ok(AliasMap(map))
}

impl AliasMap {
    pub fn canonical<'a>(&'a self, node: &'a str) -> &'a str {
        self.0.get(node).map_or(node, String::as_str)
    }
}

/// Runs the observer until `shutdown` (or one pass with `--once`).
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let root = DataRoot::open(&config.common.root).with_context(|| format!("cannot use data root {}", config.common.root.display()))?;
    if let Some(hosts) = &config.hosts {
        anyhow::ensure!(hosts.is_dir(), "hosts folder {} does not exist (set --hosts or HOSTS_DIR)", hosts.display());
    }
    let mut observer = Observer::open(root.clone(), config.clone())?;
    if config.once {
        let stats = tokio::task::spawn_blocking(move || {
            let stats = observer.full_scan();
            observer.flush(true);
            match observer.write_error() {
                Some(e) => Err(anyhow::anyhow!("{e}")),
                None => Ok(stats),
            }
        })
        .await??;
        tracing::info!(applied = stats.applied, late = stats.late, quarantined = stats.quarantined, "one pass done");
        return Ok(());
    }

    let mut watch_paths = vec![(root.events_dir(), true)];
    if let Some(h) = &config.hosts {
        watch_paths.push((h.clone(), true));
    }
    let refs: Vec<_> = watch_paths.iter().map(|(p, r)| (p.as_path(), *r)).collect();
    let mut watcher = homelab_store::watch::Watcher::new(&refs, config.rescan_interval).context("cannot watch the events folder")?;

    // Everything already on disk first; then hints.
    observer = blocking(observer, |o| {
        let stats = o.full_scan();
        tracing::info!(applied = stats.applied, late = stats.late, quarantined = stats.quarantined, "initial scan done");
        o.flush(true);
    })
    .await?;
    tracing::info!(root = %config.common.root.display(), "observer running");

    let heartbeat_every = Duration::from_secs(scan::HEARTBEAT_SECS);
    let mut next_heartbeat = tokio::time::Instant::now() + heartbeat_every;
    loop {
        let deadline = observer.pending_write_deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            batch = watcher.next_batch(Duration::from_millis(1)) => {
                let Some(batch) = batch else { break };
                observer = blocking(observer, move |o| {
                    o.handle_batch(&batch.paths, batch.rescan, batch.overflow);
                    o.flush(false);
                }).await?;
            }
            _ = sleep_until_opt(deadline) => {
                observer = blocking(observer, |o| o.flush(false)).await?;
            }
            _ = tokio::time::sleep_until(next_heartbeat) => {
                observer = blocking(observer, |o| o.write_heartbeat()).await?;
                next_heartbeat = tokio::time::Instant::now() + heartbeat_every;
            }
        }
    }
    blocking(observer, |o| o.flush(true)).await?;
    tracing::info!("observer stopped");
    Ok(())
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs blocking file work off the async threads, handing the observer back.
async fn blocking(mut observer: Observer, f: impl FnOnce(&mut Observer) + Send + 'static) -> anyhow::Result<Observer> {
    Ok(tokio::task::spawn_blocking(move || {
        f(&mut observer);
        observer
    })
    .await?)
}

/// Per node, the monitored service names in desired state (for ghost pruning).
pub type DesiredNames = BTreeMap<String, BTreeSet<String>>;
