//! Which event files to read, what to do with bad ones, and how the fold's state is saved.
//!
//! The observer knows which files it has folded (the core's `Applied` record, saved as
//! segments next to the checkpoint), so a rescan finds every file it has not folded yet,
//! whatever its time: nothing is skipped for being late.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use homelab_core::applied::{Applied, decode_segment, encode_segment};
use homelab_core::event::{EventFileName, clock_check};
use homelab_core::fold::{Checkpoint, FoldOutcome, sort_events};
use homelab_core::{Event, Heartbeat, Timestamp};
use homelab_store::DataRoot;
use homelab_store::events::{DayDir, EntryKind, ReadError};
use homelab_store::named::display;

use crate::{Config, DesiredNames};

pub(crate) const HEARTBEAT_SECS: u64 = 10;
/// An event file larger than this is not an event (agents write a few hundred bytes).
const MAX_EVENT_BYTES: u64 = 256 * 1024;
/// The checkpoint (and the applied-files record) is written at most this often; world files
/// at once.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// A day with more segments than this has them merged into one at the next checkpoint.
const MAX_SEGMENTS_PER_DAY: usize = 16;

/// Counts of one scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub applied: u64,
    pub late: u64,
    pub duplicate: u64,
    pub quarantined: u64,
    pub unknown_type: u64,
}

impl ScanStats {
    fn folded(&self) -> u64 {
        self.applied + self.late + self.duplicate + self.unknown_type
    }
}

/// The observer's state between batches.
pub struct Observer {
    root: DataRoot,
    config: Config,
    checkpoint: Checkpoint,
    applied: Applied,
    /// Per day, the segments on disk that the checkpoint covers.
    segments: BTreeMap<String, Vec<u64>>,
    desired: Option<DesiredNames>,
    hosts_last_good: BTreeMap<String, homelab_core::HostFile>,
    /// World files are owed.
    dirty: bool,
    /// The checkpoint is owed (besides new applied files), and when it was last written.
    checkpoint_dirty: bool,
    last_checkpoint: Option<Instant>,
    /// When the last `world_writes_per_second` world writes happened (oldest first).
    recent_writes: VecDeque<Instant>,
    last_fold_at: Option<Timestamp>,
    started_at: Timestamp,
    /// What the world files last said (without `generated_at`), to tell whether time alone
    /// (staleness, ghost TTL) changed anything.
    last_view: Option<View>,
    /// Day folders known to hold nothing unfolded, with their mtime then: a rescan skips a day
    /// whose mtime has not changed (any entry added, removed or renamed changes it).
    settled_days: BTreeMap<String, std::time::SystemTime>,
    /// Since start: inotify overflows seen.
    overflows: u64,
    /// Failed writes: counted, logged once per problem, retried with back-off.
    write_errors: homelab_store::WriteErrors,
}

type View = (BTreeMap<String, BTreeMap<String, homelab_core::ServiceState>>, BTreeMap<String, homelab_core::world::NodeState>);

/// One file to look at: its day and its name.
type Candidate = (String, String);

impl Observer {
    /// Loads the checkpoint (a corrupt one is moved aside and everything is replayed), the
    /// applied-files record it covers, and desired state (when `--hosts` is set).
    pub fn open(root: DataRoot, config: Config) -> anyhow::Result<Observer> {
        let checkpoint = match root.read_observer_checkpoint() {
            Ok(Some(cp)) if cp.version == homelab_core::fold::CHECKPOINT_VERSION => cp,
            Ok(Some(cp)) => {
                tracing::warn!(version = cp.version, "checkpoint of another version: replaying all events");
                Checkpoint::new()
            }
            Ok(None) => Checkpoint::new(),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let aside = root.move_corrupt_observer_checkpoint(chrono::Utc::now()).context("cannot move the corrupt checkpoint aside")?;
                tracing::error!(error = %e, moved_to = %aside, "checkpoint is corrupt: moved aside, replaying all events");
                Checkpoint::new()
            }
            Err(e) => return Err(e).context("cannot read the checkpoint"),
        };
        let mut obs = Observer {
            root,
            config,
            checkpoint,
            applied: Applied::default(),
            segments: BTreeMap::new(),
            desired: None,
            hosts_last_good: BTreeMap::new(),
            dirty: true,
            checkpoint_dirty: true,
            last_checkpoint: None,
            recent_writes: VecDeque::new(),
            last_fold_at: None,
            started_at: chrono::Utc::now(),
            last_view: None,
            settled_days: BTreeMap::new(),
            overflows: 0,
            write_errors: homelab_store::WriteErrors::new("observer"),
        };
        let removed = obs.root.remove_stale_temps(homelab_store::STALE_TEMP_AGE);
        if removed > 0 {
            tracing::info!(removed, "removed temp files left by a crash");
        }
        obs.load_applied()?;
        obs.reload_hosts();
        Ok(obs)
    }

    /// Reads the segments the checkpoint covers; removes newer ones (written by a run that
    /// crashed before its checkpoint). A damaged segment makes the whole record unusable: the
    /// checkpoint is dropped and everything is replayed (the fold does not care).
    fn load_applied(&mut self) -> anyhow::Result<()> {
        let upto = self.checkpoint.applied_seq;
        let segments = self.root.applied_segments().context("cannot list the applied-files record")?;
        for (day, seq) in segments {
            if seq > upto {
                self.root.remove_applied_segment(&day, seq).context("cannot remove an unfinished applied-files segment")?;
                continue;
            }
            let decoded = self.root.read_applied_segment(&day, seq).map_err(|e| e.to_string()).and_then(|b| decode_segment(&b));
            match decoded {
                Ok(seg) => {
                    self.applied.load(&day, seg);
                    self.segments.entry(day).or_default().push(seq);
                }
                Err(e) => {
                    tracing::error!(day, seq, error = %e, "applied-files record is damaged: replaying all events");
                    for (day, _) in std::mem::take(&mut self.segments) {
                        self.root.remove_applied_day(&day).context("cannot clear the applied-files record")?;
                    }
                    self.root.remove_applied_day(&day).context("cannot clear the applied-files record")?;
                    self.applied = Applied::default();
                    self.checkpoint = Checkpoint::new();
                    return self.load_applied();
                }
            }
        }
        Ok(())
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

    /// Reads every day folder and folds every file not folded yet. Names alone tell which
    /// files were folded, so a rescan of a large events/ opens only new files.
    pub fn full_scan(&mut self) -> ScanStats {
        let mut stats = ScanStats::default();
        let mut candidates = Vec::new();
        let mut pending_settle = Vec::new();
        match self.root.events_entries() {
            Ok(entries) => {
                for (name, kind) in entries {
                    match (kind, is_day(&name)) {
                        (EntryKind::Dir, true) => {
                            let modified = self.root.day_modified(&name).ok();
                            if modified.is_some() && self.settled_days.get(&name) == modified.as_ref() {
                                continue;
                            }
                            self.settled_days.remove(&name);
                            let listed = self.collect_day(&name, &mut candidates, &mut stats);
                            // Settled once this scan folds them, unless the folder changed within the
                            // last second (an mtime can be coarser than the writes it covers).
                            let old_enough = |m: &std::time::SystemTime| m.elapsed().is_ok_and(|e| e >= Duration::from_secs(1));
                            if let Some(m) = modified.filter(old_enough).filter(|_| listed) {
                                pending_settle.push((name.clone(), m));
                            }
                        }
                        (EntryKind::Dir, false) => {
                            self.quarantine(&name, "bad_day_folder", "not a day folder: events/ holds only YYYY-MM-DD folders", &mut stats);
                        }
                        (kind, _) => {
                            let reason = format!("{} in events/, which holds only YYYY-MM-DD folders; nothing outside the data root is read", kind.describe());
                            self.quarantine(&name, "bad_day_folder", &reason, &mut stats);
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list events/; will retry at the next rescan"),
        }
        let unsettled = self.fold_candidates(candidates, &mut stats);
        for (day, modified) in pending_settle {
            if !unsettled.contains(&day) {
                self.settled_days.insert(day, modified);
            }
        }
        self.apply_retention();
        stats
    }

    /// Handles one batch of watcher hints: files and folders under events/, or hosts/ changes.
    pub fn handle_batch(&mut self, paths: &BTreeSet<PathBuf>, rescan: bool, overflow: bool) -> ScanStats {
        if overflow {
            self.overflows += 1;
            tracing::warn!(total = self.overflows, "inotify queue overflowed: notifications were lost, rescanning everything");
        }
        if rescan {
            self.reload_hosts();
            return self.full_scan();
        }
        let mut stats = ScanStats::default();
        let events_dir = self.root.events_dir();
        let mut candidates = Vec::new();
        let mut hosts_changed = false;
        let mut events_dir_changed = false;
        let mut files = Vec::new();
        for path in paths {
            if let Some(hosts) = &self.config.hosts
                && path.starts_with(hosts)
            {
                hosts_changed = true;
                continue;
            }
            let Ok(rel) = path.strip_prefix(&events_dir) else { continue };
            let parts: Vec<_> = rel.iter().filter_map(|p| p.to_str()).collect();
            match parts.as_slice() {
                // A new day folder (files may have landed before its watch existed), or an
                // odd entry of events/: a rescan of events/ sorts it out.
                [top] if !top.starts_with('.') => events_dir_changed = true,
                [day, file] if !file.starts_with('.') && is_day(day) => files.push((day.to_string(), file.to_string())),
                _ => {}
            }
        }
        if hosts_changed {
            self.reload_hosts();
        }
        if events_dir_changed {
            // One listing of events/ handles new days and odd entries alike.
            return self.full_scan();
        }
        for (day, file) in files {
            match self.root.event_entry_kind(&day, &file) {
                Ok(Some(EntryKind::File)) => candidates.push((day, file)),
                Ok(Some(kind)) => {
                    self.quarantine_odd(&day, &file, kind, &mut stats);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(day, file, error = %e, "cannot look at a new event file; the next rescan retries"),
            }
        }
        self.fold_candidates(candidates, &mut stats);
        stats
    }

    /// Lists a day's files into `out`, quarantining odd entries; false when something could
    /// not be done (retried at the next rescan).
    fn collect_day(&mut self, day: &str, out: &mut Vec<Candidate>, stats: &mut ScanStats) -> bool {
        match self.root.day_entries(day) {
            Ok(entries) => {
                let mut all_done = true;
                for (file, kind) in entries {
                    match kind {
                        EntryKind::File => out.push((day.to_owned(), file)),
                        kind => all_done &= self.quarantine_odd(day, &file, kind, stats),
                    }
                }
                all_done
            }
            Err(e) => {
                tracing::error!(day, error = %e, "cannot list day folder; will retry at the next rescan");
                false
            }
        }
    }

    fn quarantine_odd(&mut self, day: &str, file: &str, kind: EntryKind, stats: &mut ScanStats) -> bool {
        self.quarantine(&format!("{day}/{file}"), "not_regular_file", &not_regular_file(kind.describe()), stats)
    }

    /// Reads the candidates not folded yet (in parallel: reading and parsing is most of a
    /// replay's time), quarantines bad ones, and folds the rest.
    /// Returns the days where something could not be read (retried at the next rescan).
    fn fold_candidates(&mut self, candidates: Vec<Candidate>, stats: &mut ScanStats) -> BTreeSet<String> {
        let mut unsettled = BTreeSet::new();
        let now = chrono::Utc::now();
        let mut by_day: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (day, file) in candidates {
            let known = EventFileName::parse(&file).is_some_and(|name| self.applied.contains(&day, &name));
            if !known {
                by_day.entry(day).or_default().push(file);
            }
        }
        let mut work: Vec<(usize, String)> = Vec::new();
        let mut days: Vec<(String, DayDir)> = Vec::new();
        for (day, files) in by_day {
            match self.root.open_day(&day) {
                Ok(dir) => {
                    work.extend(files.into_iter().map(|f| (days.len(), f)));
                    days.push((day, dir));
                }
                // A symlinked day: the next listing of events/ quarantines it.
                Err(ReadError::NotARegularFile) => {}
                Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(day, error = ?e, "cannot open day folder; will retry at the next rescan");
                    unsettled.insert(day);
                }
            }
        }
        let check = ReadCheck { now, max_skew: self.config.max_clock_skew, max_age: Duration::from_secs(u64::from(self.config.event_retention_days) * 86400) };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        let reads: Vec<Read> = if work.len() < 256 || threads < 2 {
            work.iter().map(|(d, f)| check.read(&days[*d].0, &days[*d].1, f)).collect()
        } else {
            let chunk = work.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = work
                    .chunks(chunk)
                    .map(|part| {
                        let (days, check) = (&days, &check);
                        scope.spawn(move || part.iter().map(|(d, f)| check.read(&days[*d].0, &days[*d].1, f)).collect::<Vec<_>>())
                    })
                    .collect();
                handles.into_iter().flat_map(|h| h.join().expect("reader thread")).collect()
            })
        };
        let aliases = self.config.node_alias_map.clone().unwrap_or_default();
        let mut events: Vec<(String, Event)> = Vec::new();
        let mut names = Vec::new();
        for ((d, file), read) in work.iter().zip(reads) {
            let day = &days[*d].0;
            match read {
                Read::Event(name, event) => {
                    names.push((day.clone(), name));
                    events.push((aliases.canonical(&event.node).to_owned(), event));
                }
                Read::Gone => {}
                Read::Retry(e) => {
                    tracing::error!(day, file, error = %e, "cannot read event file; will retry at the next rescan");
                    unsettled.insert(day.clone());
                }
                Read::Quarantine(code, reason) => {
                    if !self.quarantine(&format!("{day}/{file}"), code, &reason, stats) {
                        unsettled.insert(day.clone());
                    }
                }
            }
        }
        sort_events(&mut events);
        for (node, event) in &events {
            match self.checkpoint.apply(node, event) {
                FoldOutcome::Applied => stats.applied += 1,
                FoldOutcome::Late => stats.late += 1,
                FoldOutcome::Duplicate => stats.duplicate += 1,
                FoldOutcome::UnknownType => {
                    stats.unknown_type += 1;
                    tracing::debug!(kind = %event.kind, node, "unknown event type ignored");
                }
            }
        }
        for (day, name) in &names {
            self.applied.insert(day, name);
        }
        if stats.folded() > 0 {
            self.dirty = true;
            self.checkpoint_dirty = true;
            self.last_fold_at = Some(now);
        }
        unsettled
    }

    /// Moves `events/<rel>` to quarantine with a reason; counted by reason code. False when
    /// it could not (retried at the next rescan).
    fn quarantine(&mut self, rel: &str, code: &str, reason: &str, stats: &mut ScanStats) -> bool {
        match self.root.quarantine_events_entry(rel, &format!("{code}: {reason}")) {
            Ok(to) => {
                stats.quarantined += 1;
                *self.checkpoint.quarantined.entry(code.to_owned()).or_default() += 1;
                self.checkpoint_dirty = true;
                tracing::warn!(file = %display::event(rel), moved_to = %to.display(), reason = %format!("{code}: {reason}"), "event file quarantined");
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                tracing::error!(file = %display::event(rel), error = %e, "cannot quarantine; will retry at the next rescan");
                false
            }
        }
    }

    /// When a write is owed, the instant it may happen (the world write budget, the
    /// checkpoint interval, or the back-off after a failed write).
    pub fn pending_write_deadline(&self) -> Option<Instant> {
        let world = self.dirty.then(|| self.next_write_allowed());
        let checkpoint = self.checkpoint_owed().then(|| self.last_checkpoint.map_or_else(Instant::now, |t| t + CHECKPOINT_EVERY));
        let due = [world, checkpoint].into_iter().flatten().min()?;
        Some(match self.write_errors.retry_at() {
            Some(retry_at) => due.max(retry_at),
            None => due,
        })
    }

    fn checkpoint_owed(&self) -> bool {
        self.checkpoint_dirty || !self.applied.unsaved().is_empty()
    }

    fn next_write_allowed(&self) -> Instant {
        let budget = self.config.world_writes_per_second as usize;
        match self.recent_writes.front() {
            Some(oldest) if self.recent_writes.len() >= budget => *oldest + Duration::from_secs(1),
            _ => Instant::now(),
        }
    }

    /// Writes what is owed, when the write budget, the checkpoint interval and the back-off
    /// allow (or everything owed with `force`). A write that fails (disk full, IO error,
    /// read-only) is reported and retried later; nothing is lost, since the fold's state stays
    /// in memory and the files on disk stay consistent.
    pub fn flush(&mut self, force: bool) {
        let now = Instant::now();
        if !force && self.write_errors.retry_at().is_some_and(|t| t > now) {
            return;
        }
        let result = (|| {
            if self.dirty && (force || self.next_write_allowed() <= Instant::now()) {
                self.write_world()?;
            }
            if self.checkpoint_owed() && (force || self.last_checkpoint.is_none_or(|t| t + CHECKPOINT_EVERY <= now)) {
                self.write_checkpoint()?;
            }
            anyhow::Ok(())
        })();
        match result {
            Ok(()) => {
                if self.write_errors.is_failing() {
                    self.write_errors.succeeded();
                    self.write_heartbeat_file();
                }
            }
            Err(e) => {
                self.write_errors.failed("world state or checkpoint (nothing is lost: the fold stays in memory)", e.as_ref());
            }
        }
    }

    /// The world files, at once (within the write budget): readers see a fold within
    /// milliseconds.
    fn write_world(&mut self) -> anyhow::Result<()> {
        let (services, nodes) = self.world_files(chrono::Utc::now());
        self.root.write_world(&services, &nodes).context("cannot write world/")?;
        self.last_view = Some((services.services, nodes.nodes));
        self.dirty = false;
        let first = self.recent_writes.is_empty();
        self.recent_writes.push_back(Instant::now());
        while self.recent_writes.len() > self.config.world_writes_per_second as usize {
            self.recent_writes.pop_front();
        }
        if first {
            self.write_heartbeat_file();
        }
        Ok(())
    }

    /// New applied-files segments, then the checkpoint that covers them, at most every
    /// [`CHECKPOINT_EVERY`]. World files may be newer than the checkpoint: after a crash the
    /// events since are folded again from it (the fold is idempotent), giving the same world;
    /// segments newer than it are removed at start.
    fn write_checkpoint(&mut self) -> anyhow::Result<()> {
        let seq = self.checkpoint.applied_seq + 1;
        let mut written: Vec<(String, Vec<u64>)> = Vec::new();
        for (day, unsaved) in self.applied.unsaved() {
            let on_disk = self.segments.get(day).map_or(0, Vec::len);
            let (segment, replaces) =
                if on_disk >= MAX_SEGMENTS_PER_DAY { (self.applied.day_segment(day), self.segments[day].clone()) } else { (unsaved.clone(), Vec::new()) };
            self.root.write_applied_segment(day, seq, &encode_segment(&segment)).with_context(|| format!("cannot write the applied-files record of {day}"))?;
            written.push((day.clone(), replaces));
        }
        let checkpoint_seq = if written.is_empty() { self.checkpoint.applied_seq } else { seq };
        let old_seq = std::mem::replace(&mut self.checkpoint.applied_seq, checkpoint_seq);
        if let Err(e) = self.root.write_observer_checkpoint(&self.checkpoint) {
            self.checkpoint.applied_seq = old_seq;
            return Err(e).context("cannot write the checkpoint");
        }
        self.applied.mark_saved();
        self.checkpoint_dirty = false;
        self.last_checkpoint = Some(Instant::now());
        for (day, replaced) in written {
            let on_disk = self.segments.entry(day.clone()).or_default();
            on_disk.retain(|s| !replaced.contains(s));
            on_disk.push(seq);
            for old in replaced {
                if let Err(e) = self.root.remove_applied_segment(&day, old) {
                    tracing::warn!(day, old, error = %e, "cannot remove a merged applied-files segment (harmless: it is a subset)");
                }
            }
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

    /// The periodic heartbeat: rewrites world when time alone changed it (staleness, ghost
    /// TTL), writes what is owed, and the heartbeat file.
    pub fn write_heartbeat(&mut self) {
        let (services, nodes) = self.world_files(chrono::Utc::now());
        if self.last_view.as_ref() != Some(&(services.services, nodes.nodes)) {
            self.dirty = true;
        }
        self.flush(false);
        self.write_heartbeat_file();
    }

    fn write_heartbeat_file(&mut self) {
        let now = chrono::Utc::now();
        let c = self.checkpoint.counters;
        let quarantined: u64 = self.checkpoint.quarantined.values().sum();
        let mut hb = Heartbeat {
            counters: [
                ("applied", c.applied),
                ("late", c.late),
                ("duplicate", c.duplicate),
                ("unknown_type", c.unknown_type),
                ("quarantined", quarantined),
                ("overflows", self.overflows),
                ("nodes", self.checkpoint.world.nodes.len() as u64),
                ("applied_files", self.applied.len() as u64),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            extra: serde_json::json!({
                "last_fold_at": self.last_fold_at.map(homelab_core::rfc3339),
                "quarantined_by_reason": self.checkpoint.quarantined,
            }),
            ..homelab_store::daemon::heartbeat("observer", self.started_at, now, std::time::Duration::from_secs(HEARTBEAT_SECS))
        };
        self.write_errors.add_to_heartbeat(&mut hb);
        if let Err(e) = self.root.write_heartbeat("observer", &hb) {
            // Reported through the log only while the disk is full: the heartbeat is the
            // report itself, and world writes carry the error state.
            if !self.write_errors.is_failing() {
                tracing::warn!(error = %e, "cannot write the heartbeat");
            }
        }
    }

    /// The last write error, if writes are failing now.
    pub fn write_error(&self) -> Option<String> {
        self.write_errors.current().map(|f| f.error)
    }

    /// Deletes day folders older than the retention (everything in them was just folded or
    /// quarantined by the scan before), and their applied-files record.
    fn apply_retention(&mut self) {
        let now = chrono::Utc::now();
        let keep_from = now - chrono::Duration::days(i64::from(self.config.event_retention_days));
        let Ok(on_disk) = self.root.event_days() else { return };
        let mut days: BTreeSet<String> = on_disk.iter().cloned().collect();
        days.extend(self.applied.days().map(str::to_owned));
        days.extend(self.segments.keys().cloned());
        for day in days {
            let Ok(date) = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d") else { continue };
            let day_end = (date + chrono::Days::new(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            if day_end > keep_from {
                continue;
            }
            if on_disk.contains(&day) {
                match self.root.remove_event_day(&day) {
                    Ok(()) => tracing::info!(day, "event day folder deleted by retention"),
                    Err(e) => {
                        tracing::warn!(day, error = %e, "cannot delete old day folder");
                        continue;
                    }
                }
            }
            self.applied.forget_day(&day);
            self.segments.remove(&day);
            if let Err(e) = self.root.remove_applied_day(&day) {
                tracing::warn!(day, error = %e, "cannot delete the applied-files record of an old day");
            }
        }
    }
}

/// What reading one candidate gave.
enum Read {
    Event(EventFileName, Event),
    /// Removed since it was listed.
    Gone,
    /// An IO error: the next rescan tries again.
    Retry(std::io::Error),
    /// Unusable: reason code and reason.
    Quarantine(&'static str, String),
}

/// How a candidate is read and checked; shared by the reader threads.
struct ReadCheck {
    now: Timestamp,
    max_skew: Duration,
    max_age: Duration,
}

/// The reason given to something in a day folder that is not a regular file (`what` it is).
fn not_regular_file(what: &str) -> String {
    format!("{what} where an event file belongs: only regular files inside the data root are read")
}

impl ReadCheck {
    fn read(&self, day: &str, dir: &DayDir, file: &str) -> Read {
        let Some(name) = EventFileName::parse(file) else {
            return Read::Quarantine("invalid", format!("bad file name {file:?}: expected <YYYYMMDDTHHMMSS.fffZ>-<node>-<8 hex>.json"));
        };
        let bytes = match dir.read_event(file, MAX_EVENT_BYTES) {
            Ok(b) => b,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Read::Gone,
            Err(ReadError::Io(e)) => return Read::Retry(e),
            Err(ReadError::NotARegularFile) => {
                return Read::Quarantine("not_regular_file", not_regular_file("not a regular file"));
            }
            Err(ReadError::TooLarge(n)) => return Read::Quarantine("invalid", format!("{n} bytes: not an event (at most {MAX_EVENT_BYTES})")),
        };
        let event = match Event::parse_file(day, file, &bytes) {
            Ok(e) => e,
            Err(reason) => return Read::Quarantine("invalid", reason),
        };
        match clock_check(event.ts, self.now, self.max_skew, self.max_age) {
            Ok(()) => Read::Event(name, event),
            Err(e) => Read::Quarantine(e.code, e.message),
        }
    }
}

fn is_day(name: &str) -> bool {
    name.len() == 10 && chrono::NaiveDate::parse_from_str(name, "%Y-%m-%d").is_ok()
}
