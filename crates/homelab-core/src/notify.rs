//! Incident notifications beyond Telegram (webhook, ntfy, e-mail), as a pure state machine over
//! `world/drift.json`: one message when an incident starts, one when it is flapping, one when it
//! resolves; a flood becomes a digest.
//!
//! An incident is one drift row's target (`node/service`, `node:<node>` for an unreachable node,
//! `disk:<node>`). It **starts** when its row shows a decision worth waking someone for: not
//! `silenced`, not a wait for settled evidence (`waiting_grace`, `waiting_fresh_world`), not
//! `root_cause_elsewhere` (the root's incident speaks for it), and not a node that has never
//! reported (setup, not an incident). It **resolves** once its row has been gone for
//! `resolve_after` (a row that blinks away and back is the same incident). A resolution is never
//! suppressed: not by a silence, not by a root cause elsewhere, not by a flood (it goes into the
//! digest). A row that turns `flapping` sends one `flapping` message per incident.
//!
//! Every message has an id, `<epoch>-<seq>`, that stays the same if it has to be sent again
//! (after a crash between sending and recording it): receivers can drop duplicates by it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::drift::{DriftEntry, DriftFile, NextStep};
use crate::plan::DriftKind;

/// The knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPolicy {
    /// `NOTIFY_RESOLVE_AFTER` (60 s): a row must stay gone this long to count as resolved.
    pub resolve_after: Duration,
    /// `NOTIFY_FLOOD_LIMIT` (5): more messages than this within `flood_window` become a digest.
    pub flood_limit: usize,
    /// `NOTIFY_FLOOD_WINDOW` (60 s).
    pub flood_window: Duration,
}

impl Default for NotifyPolicy {
    fn default() -> Self {
        NotifyPolicy { resolve_after: Duration::from_secs(60), flood_limit: 5, flood_window: Duration::from_secs(60) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Started,
    Flapping,
    Resolved,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Started => "started",
            NoticeKind::Flapping => "flapping",
            NoticeKind::Resolved => "resolved",
        }
    }
}

/// One thing to tell: an incident started, is flapping, or resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    /// The incident: `node/service`, `node:<node>` or `disk:<node>`.
    pub incident: String,
    pub node: String,
    pub service: Option<String>,
    /// `unhealthy_service`, `missing_service`, `disk_pressure`, `node_unreachable`.
    pub drift: String,
    pub trigger: String,
    /// The drift row's decision and sentence when it was last seen.
    pub decision: String,
    pub reason: String,
    pub action_id: Option<String>,
    /// When the incident began (world's `since`, else when it was first seen).
    #[serde(with = "crate::ts_format")]
    pub since: Timestamp,
    /// When this notice was made.
    #[serde(with = "crate::ts_format")]
    pub at: Timestamp,
}

impl Notice {
    /// One line: `🔴 edge-1/web: unhealthy_service (containers_not_running)`.
    pub fn line(&self) -> String {
        let icon = match self.kind {
            NoticeKind::Started => "🔴",
            NoticeKind::Flapping => "🟠",
            NoticeKind::Resolved => "✅",
        };
        let target = match &self.service {
            Some(s) => format!("{}/{s}", self.node),
            None => self.node.clone(),
        };
        match self.kind {
            NoticeKind::Resolved => format!(
                "{icon} resolved: {target} ({} {}) after {}",
                self.drift,
                self.trigger,
                crate::words::duration((self.at - self.since).to_std().unwrap_or_default())
            ),
            NoticeKind::Flapping => format!("{icon} flapping: {target} ({} {})", self.drift, self.trigger),
            NoticeKind::Started => format!("{icon} {target}: {} ({})", self.drift, self.trigger),
        }
    }
}

/// One message to send on every channel: one notice, or a digest of several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The idempotency id: the same if the message is ever sent twice.
    pub id: String,
    #[serde(with = "crate::ts_format")]
    pub created_at: Timestamp,
    pub digest: bool,
    pub notices: Vec<Notice>,
}

impl Message {
    /// A subject / title line.
    pub fn title(&self) -> String {
        match self.notices.as_slice() {
            [one] if !self.digest => one.line(),
            many => {
                let count = |k: NoticeKind| many.iter().filter(|n| n.kind == k).count();
                format!(
                    "homelab digest: {} started, {} flapping, {} resolved",
                    count(NoticeKind::Started),
                    count(NoticeKind::Flapping),
                    count(NoticeKind::Resolved)
                )
            }
        }
    }

    /// The body, plain text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.notices {
            if self.digest {
                out.push_str(&n.line());
                out.push('\n');
            }
            out.push_str(&n.reason);
            out.push('\n');
            if let Some(a) = &n.action_id {
                out.push_str(&format!("action: {a}\n"));
            }
            if self.digest {
                out.push('\n');
            }
        }
        out.push_str(&format!("id: {}\n", self.id));
        out
    }

    /// True when every notice is a resolution (for a lower priority).
    pub fn all_resolved(&self) -> bool {
        self.notices.iter().all(|n| n.kind == NoticeKind::Resolved)
    }
}

/// An incident that started (a message went out) and has not resolved yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenIncident {
    /// The last notice-worthy view of it (kind `started`).
    pub notice: Notice,
    /// When its row was last seen.
    #[serde(with = "crate::ts_format")]
    pub last_seen: Timestamp,
    #[serde(default)]
    pub flapping_sent: bool,
}

/// `state/notify.json`: what the notifier must not forget across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyState {
    /// A random value chosen when the state was created: message ids stay unique if the state
    /// is deleted.
    #[serde(default)]
    pub epoch: String,
    #[serde(default)]
    pub seq: u64,
    #[serde(default)]
    pub open: BTreeMap<String, OpenIncident>,
    /// When recent messages were made (the flood window).
    #[serde(default)]
    pub recent: Vec<String>,
    /// Notices waiting for the next digest while a flood lasts, and when the last digest went.
    #[serde(default)]
    pub digest: Vec<Notice>,
    #[serde(default, with = "crate::ts_format::option", skip_serializing_if = "Option::is_none")]
    pub digest_at: Option<Timestamp>,
}

/// The incident key of a drift row.
pub fn incident_key(d: &DriftEntry) -> String {
    match (&d.service, d.kind) {
        (Some(s), _) => format!("{}/{s}", d.node),
        (None, DriftKind::NodeUnreachable) => format!("node:{}", d.node),
        (None, _) => format!("disk:{}", d.node),
    }
}

/// Whether a row is worth starting an incident for.
pub fn starts_incident(d: &DriftEntry) -> bool {
    let quiet = matches!(d.decision, NextStep::Silenced | NextStep::WaitingGrace | NextStep::WaitingFreshWorld | NextStep::RootCauseElsewhere);
    let never_seen = d.kind == DriftKind::NodeUnreachable && d.trigger == "never_seen";
    !quiet && !never_seen
}

fn notice(kind: NoticeKind, key: &str, d: &DriftEntry, now: Timestamp) -> Notice {
    Notice {
        kind,
        incident: key.to_owned(),
        node: d.node.clone(),
        service: d.service.clone(),
        drift: d.kind.as_str().to_owned(),
        trigger: d.trigger.clone(),
        decision: d.decision.as_str().to_owned(),
        reason: d.reason.clone(),
        action_id: d.action_id.clone(),
        since: d.since.unwrap_or(now),
        at: now,
    }
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d).ok().and_then(|d| t.checked_add_signed(d)).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

impl NotifyState {
    fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("{}-{:08}", self.epoch, self.seq)
    }

    fn recent_times(&self) -> Vec<Timestamp> {
        self.recent.iter().filter_map(|s| chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))).collect()
    }

    /// When [`step`] must run again even if `world/drift.json` does not change (a resolution or a
    /// digest that is due by time).
    pub fn next_due(&self, policy: &NotifyPolicy) -> Option<Timestamp> {
        let resolve = self.open.values().map(|o| after(o.last_seen, policy.resolve_after)).min();
        let digest = (!self.digest.is_empty()).then(|| self.digest_at.map(|t| after(t, policy.flood_window))).flatten();
        resolve.into_iter().chain(digest).min()
    }
}

/// One pass over the current drift file: what to send now. Updates `state`.
pub fn step(state: &mut NotifyState, drift: &DriftFile, policy: &NotifyPolicy, now: Timestamp) -> Vec<Message> {
    let mut notices = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for d in &drift.drifts {
        let key = incident_key(d);
        seen.insert(key.clone());
        match state.open.get_mut(&key) {
            Some(open) => {
                open.last_seen = now;
                // Keep the latest words for the resolution, but not a quiet decision's.
                if starts_incident(d) {
                    let since = open.notice.since;
                    open.notice = Notice { since, ..notice(NoticeKind::Started, &key, d, open.notice.at) };
                }
                if d.decision == NextStep::Flapping && !open.flapping_sent {
                    open.flapping_sent = true;
                    notices.push(notice(NoticeKind::Flapping, &key, d, now));
                }
            }
            None if starts_incident(d) => {
                let flapping = d.decision == NextStep::Flapping;
                let n = notice(if flapping { NoticeKind::Flapping } else { NoticeKind::Started }, &key, d, now);
                state
                    .open
                    .insert(key.clone(), OpenIncident { notice: Notice { kind: NoticeKind::Started, ..n.clone() }, last_seen: now, flapping_sent: flapping });
                notices.push(n);
            }
            None => {}
        }
    }
    let gone: Vec<String> =
        state.open.iter().filter(|(k, o)| !seen.contains(*k) && now >= after(o.last_seen, policy.resolve_after)).map(|(k, _)| k.clone()).collect();
    for k in gone {
        let o = state.open.remove(&k).expect("listed");
        notices.push(Notice { kind: NoticeKind::Resolved, at: now, ..o.notice });
    }

    // Floods: past the limit within the window, notices wait for a digest (one a window).
    let window_start = now - chrono::Duration::from_std(policy.flood_window).unwrap_or(chrono::TimeDelta::MAX);
    let mut recent: Vec<Timestamp> = state.recent_times().into_iter().filter(|t| *t > window_start).collect();
    let mut out = Vec::new();
    let flooding = !state.digest.is_empty() || state.digest_at.is_some_and(|t| t > window_start);
    if !flooding && recent.len() + notices.len() <= policy.flood_limit {
        for n in notices {
            out.push(Message { id: state.next_id(), created_at: now, digest: false, notices: vec![n] });
            recent.push(now);
        }
    } else if !flooding {
        // A flood starts: everything so far in one digest at once.
        out.push(Message { id: state.next_id(), created_at: now, digest: true, notices });
        recent.push(now);
        state.digest_at = Some(now);
    } else {
        state.digest.extend(notices);
        if state.digest_at.is_none_or(|t| now >= after(t, policy.flood_window)) {
            if state.digest.is_empty() {
                state.digest_at = None;
            } else {
                let notices = std::mem::take(&mut state.digest);
                out.push(Message { id: state.next_id(), created_at: now, digest: true, notices });
                recent.push(now);
                state.digest_at = Some(now);
            }
        }
    }
    state.recent = recent.into_iter().map(crate::rfc3339).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc) + chrono::Duration::seconds(secs)
    }

    fn row(node: &str, service: Option<&str>, kind: DriftKind, trigger: &str, decision: NextStep) -> DriftEntry {
        DriftEntry {
            node: node.into(),
            service: service.map(Into::into),
            kind,
            trigger: trigger.into(),
            root_cause: None,
            since: Some(t(0)),
            decision,
            reason: format!("{decision:?}"),
            action_id: None,
            until: None,
        }
    }

    fn web(decision: NextStep) -> DriftEntry {
        row("n1", Some("web"), DriftKind::UnhealthyService, "containers_not_running", decision)
    }

    fn file(rows: Vec<DriftEntry>) -> DriftFile {
        DriftFile { generated_at: t(0), drifts: rows }
    }

    /// Runs (second, rows) steps; returns "second kind incident" per notice and whether digest.
    fn run(steps: Vec<(i64, Vec<DriftEntry>)>) -> Vec<String> {
        let mut st = NotifyState { epoch: "e".into(), ..Default::default() };
        let p = NotifyPolicy::default();
        let mut out = Vec::new();
        for (sec, rows) in steps {
            for m in step(&mut st, &file(rows), &p, t(sec)) {
                let list: Vec<String> = m.notices.iter().map(|n| format!("{} {}", n.kind.as_str(), n.incident)).collect();
                out.push(format!("{sec}{} {}", if m.digest { " digest:" } else { "" }, list.join(", ")));
            }
        }
        out
    }

    #[test]
    fn incidents_table() {
        use NextStep::*;
        let unreachable = |trigger: &str| row("n2", None, DriftKind::NodeUnreachable, trigger, NodeUnreachable);
        let cases: Vec<(&str, Vec<(i64, Vec<DriftEntry>)>, Vec<&str>)> = vec![
            (
                "start, then resolved after the row is gone a minute",
                vec![(0, vec![web(ActionCreated)]), (10, vec![web(AlreadyActive)]), (20, vec![]), (69, vec![]), (70, vec![])],
                vec!["0 started n1/web", "70 resolved n1/web"],
            ),
            (
                "a row that blinks away and back is one incident",
                vec![(0, vec![web(ActionCreated)]), (20, vec![]), (40, vec![web(Flapping)]), (60, vec![]), (70, vec![web(Flapping)])],
                vec!["0 started n1/web", "40 flapping n1/web"],
            ),
            ("silenced from the start: nothing, also not when it resolves", vec![(0, vec![web(Silenced)]), (10, vec![]), (100, vec![])], vec![]),
            (
                "silenced after it started: the resolution still goes out",
                vec![(0, vec![web(ActionCreated)]), (10, vec![web(Silenced)]), (20, vec![]), (80, vec![])],
                vec!["0 started n1/web", "80 resolved n1/web"],
            ),
            ("the silence expires while it holds: it starts then", vec![(0, vec![web(Silenced)]), (10, vec![web(ActionCreated)])], vec!["10 started n1/web"]),
            (
                "waits and root cause elsewhere start nothing",
                vec![(0, vec![web(WaitingGrace), row("n1", Some("app"), DriftKind::UnhealthyService, "http_check_failed", RootCauseElsewhere)])],
                vec![],
            ),
            (
                "started, then blamed on a root cause: its resolution is not suppressed",
                vec![(0, vec![web(ActionCreated)]), (5, vec![web(RootCauseElsewhere)]), (10, vec![]), (70, vec![])],
                vec!["0 started n1/web", "70 resolved n1/web"],
            ),
            (
                "a node that never reported is setup; a stale one is an incident",
                vec![(0, vec![unreachable("never_seen")]), (10, vec![unreachable("stale")]), (20, vec![]), (80, vec![])],
                vec!["10 started node:n2", "80 resolved node:n2"],
            ),
            ("flapping from the first sight: one flapping notice", vec![(0, vec![web(Flapping)]), (10, vec![web(Flapping)])], vec!["0 flapping n1/web"]),
        ];
        for (what, steps, want) in cases {
            assert_eq!(run(steps), want, "{what}");
        }
    }

    #[test]
    fn a_flood_becomes_a_digest_and_resolutions_are_in_it() {
        let many = |n: usize, d: NextStep| (0..n).map(|i| row(&format!("n{i}"), Some("web"), DriftKind::UnhealthyService, "x", d)).collect::<Vec<_>>();
        let got = run(vec![
            (0, many(3, NextStep::ActionCreated)),
            (1, many(12, NextStep::ActionCreated)),
            (2, many(20, NextStep::ActionCreated)),
            (30, many(20, NextStep::ActionCreated)),
            (61, vec![]),
            (121, vec![]),
            (181, vec![]),
            (300, vec![]),
        ]);
        // 3 single messages, then one digest at once for the next 9, then 8 more wait for the
        // next digest a window later (61 s); at 121 s the 20 resolutions are one digest.
        assert_eq!(got.len(), 6, "{got:#?}");
        assert!(got[..3].iter().all(|l| !l.contains("digest")));
        assert!(got[3].starts_with("1 digest:") && got[3].matches("started").count() == 9, "{}", got[3]);
        assert!(got[4].starts_with("61 digest:") && got[4].matches("started").count() == 8, "{}", got[4]);
        assert!(got[5].starts_with("121 digest:") && got[5].matches("resolved").count() == 20, "{}", got[5]);
    }

    #[test]
    fn ids_are_epoch_and_sequence_and_text_carries_them() {
        let mut st = NotifyState { epoch: "abc".into(), ..Default::default() };
        let m = step(&mut st, &file(vec![web(NextStep::ActionCreated)]), &NotifyPolicy::default(), t(5));
        assert_eq!(m[0].id, "abc-00000001");
        assert!(m[0].text().contains("id: abc-00000001"));
        assert_eq!(m[0].title(), "🔴 n1/web: unhealthy_service (containers_not_running)");
        assert_eq!(st.next_due(&NotifyPolicy::default()), Some(t(65)));
    }
}
