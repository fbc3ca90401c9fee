//! The last 24 hours of agent events per service, for the history bars (like the heartbeat bars
//! of Uptime Kuma or Gatus), the incident timeline and an action's evidence.
//!
//! **Bounded work.** Only the day folders of today and yesterday (UTC) are looked at. A folder
//! is listed again only when its modification time changed (or is too recent to trust), and a
//! file is opened once: its name is remembered (a 64-bit hash per file). At most
//! [`MAX_READS_PER_REFRESH`] files are opened per refresh (the rest the next time), and a
//! refresh runs at most every [`REFRESH_EVERY`], lazily, when a page needs the history. Memory
//! per service is bounded too: counts per half-hour slot, and the last [`RECENT`] events.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use homelab_core::event::EventFileName;
use homelab_core::{Event, EventKind, Timestamp};
use homelab_store::DataRoot;

/// One bar of the history: half an hour.
pub const SLOT_SECS: i64 = 1800;
/// 48 bars: 24 hours.
pub const SLOTS: i64 = 48;
/// The newest events kept per service (an action's evidence).
pub const RECENT: usize = 8;
/// Files opened per refresh at most.
pub const MAX_READS_PER_REFRESH: usize = 20_000;
/// A page asks for a refresh at most this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// The counts of one half hour of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slot {
    pub ok: u32,
    pub bad: u32,
    pub first_bad: Option<Timestamp>,
    pub last_bad: Option<Timestamp>,
    /// The type of the first failure in the slot (`containers_not_running`, …).
    pub reason: Option<String>,
}

/// One event as remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    pub ts: Timestamp,
    pub kind: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ServiceHistory {
    /// By slot number (`ts / SLOT_SECS`).
    pub slots: BTreeMap<i64, Slot>,
    /// Newest last, at most [`RECENT`].
    pub recent: VecDeque<Recent>,
}

/// What the pages read.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub services: HashMap<(String, String), ServiceHistory>,
    /// Node-level events (`disk_pressure`), newest last, at most [`RECENT`] per node.
    pub nodes: HashMap<String, VecDeque<Recent>>,
    /// Files read so far (all refreshes).
    pub files_read: u64,
}

/// How one bar looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarState {
    NoData,
    Healthy,
    Unhealthy,
    /// Both in the same half hour.
    Mixed,
}

impl BarState {
    pub fn class(self) -> &'static str {
        match self {
            BarState::NoData => "none",
            BarState::Healthy => "ok",
            BarState::Unhealthy => "bad",
            BarState::Mixed => "mixed",
        }
    }
}

/// One bar, ready for the template.
#[derive(Debug, Clone)]
pub struct Bar {
    pub state: BarState,
    /// `14:00–14:30 UTC: 58 healthy, 2 unhealthy (containers_not_running)`.
    pub title: String,
    pub x: i64,
}

/// One incident: a run of half hours with failures.
#[derive(Debug, Clone)]
pub struct Incident {
    pub node: String,
    pub service: String,
    pub start: Timestamp,
    pub last_bad: Timestamp,
    pub reason: String,
    /// The run reaches the current half hour.
    pub ongoing: bool,
}

fn slot_of(ts: Timestamp) -> i64 {
    ts.timestamp().div_euclid(SLOT_SECS)
}

fn slot_start(slot: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(slot * SLOT_SECS, 0).unwrap_or_default()
}

impl History {
    fn record(&mut self, e: &Event) {
        let recent = Recent { ts: e.ts, kind: e.kind.clone(), detail: e.detail.clone() };
        let push = |q: &mut VecDeque<Recent>, r: Recent| {
            // Files come in any order: keep the newest RECENT, sorted by time.
            let at = q.iter().position(|x| x.ts > r.ts).unwrap_or(q.len());
            q.insert(at, r);
            while q.len() > RECENT {
                q.pop_front();
            }
        };
        let kind = EventKind::of(&e.kind);
        match (kind, &e.service) {
            (EventKind::Positive | EventKind::Negative, Some(service)) => {
                let h = self.services.entry((e.node.clone(), service.clone())).or_default();
                let slot = h.slots.entry(slot_of(e.ts)).or_default();
                if kind == EventKind::Positive {
                    slot.ok += 1;
                } else {
                    slot.bad += 1;
                    if slot.first_bad.is_none_or(|t| e.ts < t) {
                        slot.first_bad = Some(e.ts);
                        slot.reason = Some(e.kind.clone());
                    }
                    if slot.last_bad.is_none_or(|t| e.ts > t) {
                        slot.last_bad = Some(e.ts);
                    }
                }
                push(&mut h.recent, recent);
            }
            (EventKind::DiskPressure, _) => push(self.nodes.entry(e.node.clone()).or_default(), recent),
            _ => {}
        }
    }

    /// Forgets slots older than 24 h (and a half hour).
    fn prune(&mut self, now: Timestamp) {
        let oldest = slot_of(now) - SLOTS;
        self.services.retain(|_, h| {
            h.slots = h.slots.split_off(&oldest);
            h.recent.retain(|r| slot_of(r.ts) >= oldest - 2 * SLOTS);
            !h.slots.is_empty() || !h.recent.is_empty()
        });
    }

    /// The 48 bars of a service, oldest first; the last is the current half hour.
    pub fn bars(&self, node: &str, service: &str, now: Timestamp) -> Vec<Bar> {
        let h = self.services.get(&(node.to_owned(), service.to_owned()));
        let last = slot_of(now);
        (0..SLOTS)
            .map(|i| {
                let slot = last - (SLOTS - 1) + i;
                let s = h.and_then(|h| h.slots.get(&slot));
                let state = match s {
                    None => BarState::NoData,
                    Some(s) if s.bad == 0 && s.ok == 0 => BarState::NoData,
                    Some(s) if s.bad == 0 => BarState::Healthy,
                    Some(s) if s.ok == 0 => BarState::Unhealthy,
                    Some(_) => BarState::Mixed,
                };
                let from = slot_start(slot);
                let to = slot_start(slot + 1);
                let what = match s {
                    Some(s) if s.ok + s.bad > 0 => {
                        let mut t = format!("{} healthy, {} unhealthy", s.ok, s.bad);
                        if let Some(r) = &s.reason {
                            t.push_str(&format!(" ({r})"));
                        }
                        t
                    }
                    _ => "no events".to_owned(),
                };
                Bar { state, title: format!("{}–{} UTC: {what}", from.format("%H:%M"), to.format("%H:%M")), x: i * 4 }
            })
            .collect()
    }

    /// Failure runs of the last 24 h, newest first.
    pub fn incidents(&self, now: Timestamp) -> Vec<Incident> {
        let current = slot_of(now);
        let mut out = Vec::new();
        for ((node, service), h) in &self.services {
            let mut run: Option<Incident> = None;
            let mut prev_slot = i64::MIN;
            for (slot, s) in &h.slots {
                if (s.bad == 0 || *slot != prev_slot + 1)
                    && let Some(r) = run.take()
                {
                    out.push(r);
                }
                if s.bad > 0 {
                    let (fb, lb) = (s.first_bad.unwrap_or_default(), s.last_bad.unwrap_or_default());
                    match &mut run {
                        Some(r) => r.last_bad = lb,
                        None => {
                            run = Some(Incident {
                                node: node.clone(),
                                service: service.clone(),
                                start: fb,
                                last_bad: lb,
                                reason: s.reason.clone().unwrap_or_default(),
                                ongoing: false,
                            })
                        }
                    }
                    prev_slot = *slot;
                } else {
                    prev_slot = i64::MIN;
                }
            }
            if let Some(mut r) = run {
                r.ongoing = prev_slot >= current - 1 && h.recent.back().is_some_and(|e| EventKind::of(&e.kind) == EventKind::Negative);
                out.push(r);
            }
        }
        out.sort_by(|a, b| b.start.cmp(&a.start).then_with(|| a.node.cmp(&b.node)).then_with(|| a.service.cmp(&b.service)));
        out
    }

    /// The newest events of a service (or, without one, the node's own events), newest first.
    pub fn recent(&self, node: &str, service: Option<&str>) -> Vec<Recent> {
        let q = match service {
            Some(s) => self.services.get(&(node.to_owned(), s.to_owned())).map(|h| &h.recent),
            None => self.nodes.get(node),
        };
        q.map(|q| q.iter().rev().cloned().collect()).unwrap_or_default()
    }
}

/// What is known about one day folder.
#[derive(Debug, Default)]
struct DayScan {
    /// Hashes of the file names already read (or found unreadable).
    seen: HashSet<u64>,
    /// The folder's modification time at a complete scan, when old enough to trust.
    settled: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct Inner {
    days: BTreeMap<String, DayScan>,
    last: Option<Instant>,
}

/// The cache shared by every request: the current [`History`] and the scan state behind it.
#[derive(Debug, Default)]
pub struct HistoryCache {
    current: Mutex<Arc<History>>,
    inner: Mutex<Inner>,
}

fn name_hash(name: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

impl HistoryCache {
    /// The history as last read (possibly empty).
    pub fn get(&self) -> Arc<History> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a refresh is due.
    pub fn due(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.last.is_none_or(|t| t.elapsed() >= REFRESH_EVERY)
    }

    /// Reads what is new in today's and yesterday's event folders (blocking IO: call it from a
    /// blocking thread). Returns the number of files opened.
    pub fn refresh(&self, root: &DataRoot, now: Timestamp) -> usize {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.last = Some(Instant::now());
        let today = now.date_naive();
        let days: Vec<String> = [today.pred_opt().unwrap_or(today), today].iter().map(|d| d.format("%Y-%m-%d").to_string()).collect();
        inner.days.retain(|d, _| days.contains(d));
        let mut history = (*self.get()).clone();
        let mut budget = MAX_READS_PER_REFRESH;
        /// An event file larger than this is not an event (the observer quarantines it).
        const MAX_EVENT_BYTES: u64 = 256 * 1024;
        let mut opened = 0;
        for day in &days {
            let scan = inner.days.entry(day.clone()).or_default();
            // Through the store: a symlinked day or event file is never followed out of the root.
            let mtime = root.day_modified(day).ok();
            if mtime.is_some() && scan.settled == mtime {
                continue;
            }
            let Ok(dir) = root.open_day(day) else { continue };
            let Ok(names) = root.event_files(day) else { continue };
            let mut complete = true;
            for name in names {
                let h = name_hash(&name);
                if scan.seen.contains(&h) {
                    continue;
                }
                if budget == 0 {
                    complete = false;
                    break;
                }
                budget -= 1;
                scan.seen.insert(h);
                if EventFileName::parse(&name).is_none() {
                    continue;
                }
                opened += 1;
                let Ok(bytes) = dir.read_event(&name, MAX_EVENT_BYTES) else { continue };
                if let Ok(e) = serde_json::from_slice::<Event>(&bytes) {
                    history.record(&e);
                }
            }
            // A folder changed within the last seconds may still change within the same
            // timestamp tick: list it again next time.
            let old_enough = mtime.and_then(|m| SystemTime::now().duration_since(m).ok()).is_some_and(|age| age > Duration::from_secs(2));
            scan.settled = if complete && old_enough { mtime } else { None };
        }
        history.files_read += opened as u64;
        history.prune(now);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(history);
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
    }

    fn ev(ts: &str, kind: &str) -> Event {
        Event::new(at(ts), "edge-1", kind, Some("web"))
    }

    #[test]
    fn bars_and_incidents() {
        let mut h = History::default();
        for (ts, kind) in [
            ("2026-05-27T10:05:00Z", "service_healthy"),
            ("2026-05-27T11:10:00Z", "containers_not_running"),
            ("2026-05-27T11:20:00Z", "service_recovered"),
            ("2026-05-27T11:40:00Z", "containers_not_running"),
            ("2026-05-27T12:10:00Z", "service_healthy"),
            ("2026-05-27T13:50:00Z", "http_check_failed"),
        ] {
            h.record(&ev(ts, kind));
        }
        let now = at("2026-05-27T13:55:00Z");
        let bars = h.bars("edge-1", "web", now);
        assert_eq!(bars.len(), 48);
        let last: Vec<BarState> = bars[43..].iter().map(|b| b.state).collect();
        // Bars 43..48 are 11:30, 12:00, 12:30, 13:00, 13:30.
        assert_eq!(last, vec![BarState::Unhealthy, BarState::Healthy, BarState::NoData, BarState::NoData, BarState::Unhealthy]);
        assert_eq!(bars[42].state, BarState::Mixed, "11:00–11:30 had both");
        assert!(bars[42].title.starts_with("11:00–11:30 UTC: 1 healthy, 1 unhealthy (containers_not_running)"), "{}", bars[42].title);
        let inc = h.incidents(now);
        assert_eq!(inc.len(), 2, "{inc:?}");
        assert!(inc[0].ongoing && inc[0].reason == "http_check_failed");
        assert!(!inc[1].ongoing && inc[1].start == at("2026-05-27T11:10:00Z") && inc[1].last_bad == at("2026-05-27T11:40:00Z"));
        let recent = h.recent("edge-1", Some("web"));
        assert_eq!(recent[0].kind, "http_check_failed");
        assert_eq!(recent.len(), 6);
    }

    #[test]
    fn old_slots_are_forgotten_and_recent_is_bounded() {
        let mut h = History::default();
        let start = at("2026-05-26T00:00:00Z");
        for i in 0..100 {
            h.record(&Event::new(start + chrono::Duration::minutes(30 * i), "edge-1", "service_healthy", Some("web")));
        }
        h.prune(start + chrono::Duration::minutes(30 * 99));
        let s = &h.services[&("edge-1".to_owned(), "web".to_owned())];
        assert!(s.slots.len() <= 49, "{}", s.slots.len());
        assert_eq!(s.recent.len(), RECENT);
    }

    #[test]
    fn refresh_reads_each_file_once() {
        let tmp = testkit::TempRoot::new();
        let root = DataRoot::open(tmp.root()).unwrap();
        let now = chrono::Utc::now();
        for i in 0..5 {
            root.write_event(&Event::new(now - chrono::Duration::minutes(i), "edge-1", "service_healthy", Some("web"))).unwrap();
        }
        // Older than yesterday: never looked at.
        root.write_event(&Event::new(now - chrono::Duration::days(3), "edge-1", "containers_not_running", Some("web"))).unwrap();
        let cache = HistoryCache::default();
        assert_eq!(cache.refresh(&root, now), 5);
        assert_eq!(cache.refresh(&root, now), 0, "nothing new: nothing opened");
        root.write_event(&Event::new(now, "edge-1", "containers_not_running", Some("web"))).unwrap();
        assert_eq!(cache.refresh(&root, now), 1, "only the new file");
        let h = cache.get();
        assert_eq!(h.recent("edge-1", Some("web"))[0].kind, "containers_not_running");
        assert_eq!(h.files_read, 6);
    }
}
