//! Which event files to read, in what order, and what to do with bad ones.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use homelab_core::event::EventFileName;
use homelab_core::fold::{Checkpoint, FoldOutcome, sort_events};
use homelab_core::{Event, Heartbeat, Timestamp};
use homelab_store::DataRoot;

use crate::{Config, DesiredNames};

pub(crate) const HEARTBEAT_SECS: u64 = 10;
const CHECKPOINT_FILE: &str = "state/observer_checkpoint.json";

/// Counts of one scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub applied: u64,
    pub skipped: u64,
    pub quarantined: u64,
    pub unknown_type: u64,
}

/// The observer's state between batches.
pub struct Observer {
    root: DataRoot,
    config: Config,
    checkpoint: Checkpoint,
    desired: Option<DesiredNames>,
    hosts_last_good: BTreeMap<String, homelab_core::HostFile>,
    quarantined: u64,
    dirty: bool,
    /// When the last `world_writes_per_second` world writes happened (oldest first).
    recent_writes: VecDeque<Instant>,
    last_fold_at: Option<Timestamp>,
    started_at: Timestamp,
    /// What the world files last said (without `generated_at`), to tell whether time alone
    /// (staleness, ghost TTL) changed anything.
    last_view: Option<View>,
}

type View = (
    BTreeMap<String, BTreeMap<String, homelab_core::ServiceState>>,
    BTreeMap<String, homelab_core::world::NodeState>,
);

impl Observer {
    /// Loads the checkpoint (a corrupt one is moved aside and everything is replayed) and
    /// desired state (when `--hosts` is set).
    pub fn open(root: DataRoot, config: Config) -> anyhow::Result<Observer> {
        let checkpoint = match root.read_json::<Checkpoint>(CHECKPOINT_FILE) {
            Ok(Some(cp)) if cp.version == homelab_core::fold::CHECKPOINT_VERSION => cp,
            Ok(Some(cp)) => {
                tracing::warn!(version = cp.version, "checkpoint of another version: replaying all events");
                Checkpoint::new()
            }
            Ok(None) => Checkpoint::new(),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let aside = format!("{CHECKPOINT_FILE}.corrupt-{}", homelab_core::compact_ts(chrono::Utc::now()));
                tracing::error!(error = %e, moved_to = %aside, "checkpoint is corrupt: moved aside, replaying all events");
                std::fs::rename(root.path().join(CHECKPOINT_FILE), root.path().join(&aside)).context("cannot move the corrupt checkpoint aside")?;
                Checkpoint::new()
            }
            Err(e) => return Err(e).context("cannot read the checkpoint"),
        };
        let mut obs = Observer {
            root,
            config,
            checkpoint,
            desired: None,
            hosts_last_good: BTreeMap::new(),
            quarantined: 0,
            dirty: true,
            recent_writes: VecDeque::new(),
            last_fold_at: None,
            started_at: chrono::Utc::now(),
            last_view: None,
        };
        obs.reload_hosts();
        Ok(obs)
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    fn reload_hosts(&mut self) {
        let Some(dir) = self.config.hosts.clone() else { return };
        match homelab_store::hosts::load_hosts(&dir, &self.hosts_last_good) {
            Ok(load) => {
                for e in &load.errors {
                    tracing::warn!(error = %e, "invalid hosts file; its last good version stays in force");
                }
                let desired = Some(load.desired.monitored_names());
                // Only a change of desired names can change what ghost pruning keeps.
                if desired != self.desired {
                    self.desired = desired;
                    self.dirty = true;
                }
                self.hosts_last_good = load.in_force;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read hosts folder; ghost pruning paused"),
        }
    }

    /// Reads every day folder. Files whose name puts them before their node's cursor are
    /// skipped without being opened, which keeps a rescan of a large events/ cheap.
    pub fn full_scan(&mut self) -> ScanStats {
        let mut candidates = Vec::new();
        match self.root.event_days() {
            Ok(days) => {
                for day in days {
                    self.collect_day(&day, false, &mut candidates);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list events/"),
        }
        let stats = self.fold_candidates(candidates);
        self.apply_retention();
        stats
    }

    /// Handles one batch of watcher hints: files and folders under events/, or hosts/ changes.
    pub fn handle_batch(&mut self, paths: &BTreeSet<PathBuf>, rescan: bool) -> ScanStats {
        if rescan {
            self.reload_hosts();
            return self.full_scan();
        }
        let events_dir = self.root.events_dir();
        let mut candidates = Vec::new();
        let mut hosts_changed = false;
        let mut days_to_scan = BTreeSet::new();
        for path in paths {
            if let Some(hosts) = &self.config.hosts {
                if path.starts_with(hosts) {
                    hosts_changed = true;
                    continue;
                }
            }
            let Ok(rel) = path.strip_prefix(&events_dir) else { continue };
            let parts: Vec<_> = rel.iter().filter_map(|p| p.to_str()).collect();
            match parts.as_slice() {
                // A new day folder: files may have landed before its watch existed.
                [day] => {
                    days_to_scan.insert(day.to_string());
                }
                [day, file] if !file.starts_with('.') => {
                    if !days_to_scan.contains(*day) && path.is_file() {
                        candidates.push((day.to_string(), file.to_string(), true));
                    }
                }
                _ => {}
            }
        }
        for day in days_to_scan {
            if chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").is_ok() && events_dir.join(&day).is_dir() {
                self.collect_day(&day, true, &mut candidates);
            }
        }
        if hosts_changed {
            self.reload_hosts();
        }
        self.fold_candidates(candidates)
    }

    fn collect_day(&self, day: &str, fresh: bool, out: &mut Vec<(String, String, bool)>) {
        match self.root.event_files(day) {
            Ok(files) => out.extend(files.into_iter().map(|f| (day.to_owned(), f, fresh))),
            Err(e) => tracing::error!(day, error = %e, "cannot list day folder"),
        }
    }

    /// Reads the candidates that may be new, quarantines bad ones, and folds the rest in
    /// (ts, id) order. `fresh` marks files a notification named: a late one of those counts
    /// as skipped; old files met again by a rescan are not counted.
    fn fold_candidates(&mut self, candidates: Vec<(String, String, bool)>) -> ScanStats {
        let mut stats = ScanStats::default();
        let mut events: Vec<(String, Event)> = Vec::new();
        let aliases = self.config.node_alias_map.clone().unwrap_or_default();
        for (day, file, fresh) in candidates {
            if let Some(name) = EventFileName::parse(&file) {
                let node = aliases.canonical(&name.node);
                if let Some(cursor) = self.checkpoint.cursors.get(node) {
                    if name.ts < cursor.ts {
                        if fresh {
                            stats.skipped += 1;
                            self.checkpoint.counters.skipped += 1;
                        }
                        continue;
                    }
                }
            }
            let path = self.root.event_path(&day, &file);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot read event file; will retry on the next scan");
                    continue;
                }
            };
            match Event::parse_file(&day, &file, &bytes) {
                Ok(event) => {
                    let node = aliases.canonical(&event.node).to_owned();
                    events.push((node, event));
                }
                Err(reason) => self.quarantine(&day, &file, &reason, &mut stats),
            }
        }
        sort_events(&mut events);
        for (node, event) in &events {
            match self.checkpoint.apply(node, event) {
                FoldOutcome::Applied => stats.applied += 1,
                FoldOutcome::Skipped => stats.skipped += 1,
                FoldOutcome::UnknownType => {
                    stats.unknown_type += 1;
                    tracing::debug!(kind = %event.kind, node, "unknown event type ignored");
                }
            }
        }
        if stats.applied + stats.unknown_type > 0 {
            self.dirty = true;
            self.last_fold_at = Some(chrono::Utc::now());
        }
        stats
    }

    fn quarantine(&mut self, day: &str, file: &str, reason: &str, stats: &mut ScanStats) {
        match self.root.quarantine_event(day, file, reason) {
            Ok(to) => {
                stats.quarantined += 1;
                self.quarantined += 1;
                tracing::warn!(file = %format!("events/{day}/{file}"), moved_to = %to.display(), reason, "invalid event file quarantined");
            }
            Err(e) => tracing::error!(file, error = %e, "cannot quarantine invalid event file"),
        }
    }

    /// When a write is owed, the instant the write budget allows it.
    pub fn pending_write_deadline(&self) -> Option<Instant> {
        if !self.dirty {
            return None;
        }
        Some(self.next_write_allowed())
    }

    fn next_write_allowed(&self) -> Instant {
        let budget = self.config.world_writes_per_second as usize;
        match self.recent_writes.front() {
            Some(oldest) if self.recent_writes.len() >= budget => *oldest + Duration::from_secs(1),
            _ => Instant::now(),
        }
    }

    /// Writes world files, then the checkpoint, if anything changed and the write budget
    /// allows (or `force`). World first: a crash in between only means the same events
    /// are folded again from the older checkpoint, giving the same world.
    pub fn flush(&mut self, force: bool) -> anyhow::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if !force && self.next_write_allowed() > Instant::now() {
            return Ok(());
        }
        let now = chrono::Utc::now();
        let (services, nodes) = self.world_files(now);
        self.root.write_world(&services, &nodes).context("cannot write world/")?;
        self.root.write_json(CHECKPOINT_FILE, &self.checkpoint).context("cannot write the checkpoint")?;
        self.last_view = Some((services.services, nodes.nodes));
        self.dirty = false;
        let first = self.recent_writes.is_empty();
        self.recent_writes.push_back(Instant::now());
        while self.recent_writes.len() > self.config.world_writes_per_second as usize {
            self.recent_writes.pop_front();
        }
        if first || force {
            self.write_heartbeat()?;
        }
        Ok(())
    }

    /// The world files as of `now`: ghosts pruned (with hosts/), node status from `last_seen`.
    fn world_files(&self, now: Timestamp) -> (homelab_core::world::ServicesFile, homelab_core::world::NodesFile) {
        let pruned;
        let world = match &self.desired {
            Some(desired) => {
                pruned = self.checkpoint.world.without_ghosts(desired, now, self.config.ghost_ttl);
                &pruned
            }
            None => &self.checkpoint.world,
        };
        (world.services_file(now), world.nodes_file(now, self.config.node_stale_after))
    }

    pub fn write_heartbeat(&mut self) -> anyhow::Result<()> {
        // Time alone changes node staleness and ghost pruning: rewrite world when it did.
        let (services, nodes) = self.world_files(chrono::Utc::now());
        if self.last_view.as_ref() != Some(&(services.services, nodes.nodes)) {
            self.dirty = true;
        }
        self.flush(false)?;
        let now = chrono::Utc::now();
        let c = self.checkpoint.counters;
        let hb = Heartbeat {
            daemon: "observer".into(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: self.started_at,
            last_loop_at: now,
            interval_secs: HEARTBEAT_SECS,
            counters: [
                ("applied".to_string(), c.applied),
                ("skipped".to_string(), c.skipped),
                ("unknown_type".to_string(), c.unknown_type),
                ("quarantined".to_string(), self.quarantined),
                ("nodes".to_string(), self.checkpoint.world.nodes.len() as u64),
            ]
            .into_iter()
            .collect(),
            config_errors: Vec::new(),
            extra: serde_json::json!({
                "last_fold_at": self.last_fold_at.map(homelab_core::rfc3339),
            }),
        };
        self.root.write_heartbeat("observer", &hb).context("cannot write heartbeat")
    }

    /// Deletes day folders older than the retention once every node's cursor is past them.
    fn apply_retention(&mut self) {
        let days = match self.root.event_days() {
            Ok(d) => d,
            Err(_) => return,
        };
        let Some(oldest_cursor) = self.checkpoint.cursors.values().map(|c| c.ts).min() else { return };
        let now = chrono::Utc::now();
        let keep_from = now - chrono::Duration::days(i64::from(self.config.event_retention_days));
        for day in days {
            let Ok(date) = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d") else { continue };
            let day_end = (date + chrono::Duration::days(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            if day_end <= keep_from && day_end <= oldest_cursor {
                match self.root.remove_event_day(&day) {
                    Ok(()) => tracing::info!(day, "event day folder deleted by retention"),
                    Err(e) => tracing::warn!(day, error = %e, "cannot delete old day folder"),
                }
            }
        }
    }
}

