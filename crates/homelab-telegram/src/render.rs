//! What the messages say: pure functions from an action's card and status to text and buttons.
//! Plain text (no Markdown), so names with `_` or `*` need no escaping.

use homelab_core::action::ActionResult;
use homelab_core::{Action, ActionState, ActionType, Risk, Timestamp};
use serde::{Deserialize, Serialize};

use crate::api::{InlineKeyboardButton, InlineKeyboardMarkup};

/// Telegram's limit on a message's text, in characters.
pub const MAX_TEXT: usize = 4096;

/// What a message says about an action, kept in the state file so a message can still be
/// rendered after the action file is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub action_id: String,
    #[serde(rename = "type")]
    pub kind: ActionType,
    pub risk: Risk,
    pub node: String,
    pub service: Option<String>,
    pub drift: String,
    pub trigger: String,
    pub root_cause: Option<String>,
}

impl Card {
    pub fn of(a: &Action) -> Card {
        Card {
            action_id: a.id.clone(),
            kind: a.kind,
            risk: a.risk,
            node: a.node.clone(),
            service: a.service.clone(),
            drift: a.drift.clone(),
            trigger: a.trigger.clone(),
            root_cause: a.root_cause.clone(),
        }
    }

    fn target(&self) -> String {
        match &self.service {
            Some(s) => format!("{} / {s}", self.node),
            None => self.node.clone(),
        }
    }
}

/// Who moved the action out of pending, when, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub state: ActionState,
    pub by: String,
    pub at: Timestamp,
    pub note: Option<String>,
}

/// Where an action stands now, as far as a message needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// `None`: the action file is gone.
    pub state: Option<ActionState>,
    pub decision: Option<Decision>,
    /// The "muted from Telegram" line, once someone pressed "Mute 1 h".
    pub muted: Option<String>,
}

impl Status {
    /// Reads the status from an action's content. `telegram_name` replaces a
    /// `telegram:<id>` author with the name the person had in the chat.
    pub fn of(action: Option<&Action>, telegram_name: Option<&str>) -> Status {
        let Some(a) = action else { return Status { state: None, decision: None, muted: None } };
        let decision =
            a.history.iter().rev().find(|h| matches!(h.state, ActionState::Approved | ActionState::Rejected | ActionState::Cancelled)).map(|h| Decision {
                state: h.state,
                by: match telegram_name {
                    Some(n) if h.by.starts_with("telegram:") => n.to_owned(),
                    _ => h.by.clone(),
                },
                at: h.at,
                note: h.note.clone(),
            });
        Status { state: Some(a.state), decision, muted: None }
    }
}

fn hhmm(t: Timestamp) -> String {
    t.format("%H:%M UTC").to_string()
}

/// The outcome in one line, e.g. "✅ Approved by @alice at 14:03 UTC."
pub fn status_line(status: &Status) -> String {
    let Some(state) = status.state else { return "🗑 This action no longer exists in the data root.".into() };
    let d = status.decision.as_ref();
    let decided = |verb: &str| match d {
        Some(d) => format!("{verb} by {} at {}", d.by, hhmm(d.at)),
        None => verb.to_owned(),
    };
    match state {
        ActionState::Pending => "⏳ Waiting for approval.".into(),
        ActionState::Approved => format!("✅ {}. Waiting for the executor.", decided("Approved")),
        ActionState::Running => format!("✅ {}. ▶️ Running now.", decided("Approved")),
        ActionState::Completed => format!("✅ {}. 🏁 Completed.", decided("Approved")),
        ActionState::Failed => format!("✅ {}. 💥 Failed.", decided("Approved")),
        ActionState::Rejected => {
            let reason = d.and_then(|d| d.note.as_deref().filter(|_| !d.by.starts_with('@') && !d.by.starts_with("telegram:")));
            match reason {
                Some(r) => format!("❌ {}: {r}", decided("Rejected")),
                None => format!("❌ {}.", decided("Rejected")),
            }
        }
        ActionState::Cancelled => match d {
            Some(d) if d.by == "supervisor" => format!("✔️ The drift resolved on its own at {}: cancelled, nothing to do.", hhmm(d.at)),
            _ => format!("🚫 {}.", decided("Cancelled")),
        },
    }
}

/// A short status for a digest line.
fn short_status(status: &Status) -> String {
    let d = status.decision.as_ref();
    let by = |verb: &str| match d {
        Some(d) => format!("{verb} by {} at {}", d.by, hhmm(d.at)),
        None => verb.to_owned(),
    };
    match status.state {
        None => "gone".into(),
        Some(ActionState::Pending) => "⏳ waiting".into(),
        Some(ActionState::Approved) => format!("✅ {}", by("approved")),
        Some(ActionState::Running) => format!("▶️ running ({})", by("approved")),
        Some(ActionState::Completed) => format!("🏁 completed ({})", by("approved")),
        Some(ActionState::Failed) => format!("💥 failed ({})", by("approved")),
        Some(ActionState::Rejected) => format!("❌ {}", by("rejected")),
        Some(ActionState::Cancelled) => match d {
            Some(d) if d.by == "supervisor" => "✔️ drift resolved".into(),
            _ => format!("🚫 {}", by("cancelled")),
        },
    }
}

fn buttons(token: &str, approve_label: String) -> Vec<InlineKeyboardButton> {
    vec![
        InlineKeyboardButton { text: approve_label, callback_data: format!("ok:{token}") },
        InlineKeyboardButton { text: "❌ Reject".into(), callback_data: format!("no:{token}") },
    ]
}

/// One message: a card for a single action, a digest for a burst. Buttons only for actions
/// still pending. `items` is `(token, card, status)`.
pub fn render_message(items: &[(&str, &Card, &Status)]) -> (String, InlineKeyboardMarkup) {
    let mut keyboard = Vec::new();
    let text = if let [(token, card, status)] = items {
        if status.state == Some(ActionState::Pending) {
            keyboard.push(buttons(token, "✅ Approve".into()));
            if status.muted.is_none() {
                keyboard.push(vec![InlineKeyboardButton { text: "🔕 Mute 1 h".into(), callback_data: format!("mute:{token}") }]);
            }
        }
        let muted = status.muted.as_deref().map(|m| format!("\n{m}")).unwrap_or_default();
        format!(
            "🛠 {kind} on {target}\n\nNode: {node}\nService: {service}\nDrift: {drift}\nTrigger: {trigger}\nRoot cause: {cause}\nRisk: {risk}\nAction: {id}\n\n{line}{muted}",
            kind = card.kind,
            target = card.target(),
            node = card.node,
            service = card.service.as_deref().unwrap_or("-"),
            drift = card.drift,
            trigger = card.trigger,
            cause = card.root_cause.as_deref().unwrap_or("unknown"),
            risk = risk(card.risk),
            id = card.action_id,
            line = status_line(status),
        )
    } else {
        let mut t = format!("⚠️ {} new actions within a minute (one digest instead of a message each):\n", items.len());
        for (i, (token, card, status)) in items.iter().enumerate() {
            let cause = card.root_cause.as_deref().map(|c| format!(", root cause {c}")).unwrap_or_default();
            t.push_str(&format!(
                "\n{}. {} on {} ({}: {}{cause}; risk {}): {}",
                i + 1,
                card.kind,
                card.target(),
                card.drift,
                card.trigger,
                risk(card.risk),
                short_status(status)
            ));
            if status.state == Some(ActionState::Pending) {
                keyboard.push(buttons(token, format!("✅ {}. {}", i + 1, card.target())));
            }
        }
        if !keyboard.is_empty() {
            t.push_str("\n\nDecide with the buttons below or in the web UI.");
        }
        t
    };
    (truncate(text), InlineKeyboardMarkup { inline_keyboard: keyboard })
}

fn risk(r: Risk) -> &'static str {
    match r {
        Risk::Low => "low",
        Risk::Guarded => "guarded",
    }
}

/// The follow-up sent in the thread when an action ends, or `None` for endings that do not get
/// one (rejected and cancelled actions are told by editing the message).
pub fn follow_up(card: &Card, state: ActionState, result: Option<&ActionResult>) -> Option<String> {
    let mut t = match state {
        ActionState::Completed => {
            let verified = match result.and_then(|r| r.verified) {
                Some(true) => " and verified: the service reported healthy afterwards",
                Some(false) => ", but not verified: the service did not report healthy afterwards",
                None => "",
            };
            format!("🏁 {} on {} completed{verified}.", card.kind, card.target())
        }
        ActionState::Failed => {
            let why = result.and_then(|r| r.error.as_deref()).unwrap_or("no reason recorded");
            format!("💥 {} on {} failed: {why}", card.kind, card.target())
        }
        _ => return None,
    };
    if let Some(r) = result {
        if let Some(code) = r.exit_status {
            t.push_str(&format!("\nExit status: {code}"));
        }
        if let Some(b) = r.bytes_reclaimed {
            t.push_str(&format!("\nReclaimed: {b} bytes"));
        }
        if r.dry_run {
            t.push_str("\n(dry run: nothing was changed)");
        }
        let out = r.output.trim();
        if !out.is_empty() && state == ActionState::Failed {
            let tail: String = out.chars().rev().take(1500).collect::<Vec<_>>().into_iter().rev().collect();
            t.push_str(&format!("\n\nLast output:\n{tail}"));
        }
    }
    t.push_str(&format!("\nAction: {}", card.action_id));
    Some(truncate(t))
}

fn truncate(mut s: String) -> String {
    if s.chars().count() > MAX_TEXT {
        s = s.chars().take(MAX_TEXT - 1).collect();
        s.push('…');
    }
    s
}

/// The fingerprint of what a copy shows: an edit is due when it changes.
pub fn shown(text: &str, keyboard: &InlineKeyboardMarkup) -> String {
    let buttons: Vec<&str> = keyboard.inline_keyboard.iter().flatten().map(|b| b.callback_data.as_str()).collect();
    format!("{text}\n[{}]", buttons.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
    }

    fn card() -> Card {
        Card {
            action_id: "container-restart-edge-1-z2m".into(),
            kind: ActionType::ContainerRestart,
            risk: Risk::Low,
            node: "edge-1".into(),
            service: Some("z2m".into()),
            drift: "unhealthy_service".into(),
            trigger: "containers_not_running".into(),
            root_cause: Some("mosquitto down".into()),
        }
    }

    fn status(state: Option<ActionState>, decision: Option<(ActionState, &str, &str, Option<&str>)>) -> Status {
        Status { state, decision: decision.map(|(state, by, at, note)| Decision { state, by: by.into(), at: ts(at), note: note.map(Into::into) }), muted: None }
    }

    /// The outcome line for situations an operator meets.
    #[test]
    fn status_lines_read_like_the_outcome() {
        use ActionState::*;
        let cases = [
            (status(Some(Pending), None), "⏳ Waiting for approval."),
            (status(Some(Approved), Some((Approved, "@alice", "2026-05-27T14:03:11Z", None))), "✅ Approved by @alice at 14:03 UTC. Waiting for the executor."),
            (status(Some(Running), Some((Approved, "ui:bob", "2026-05-27T09:15:00Z", None))), "✅ Approved by ui:bob at 09:15 UTC. ▶️ Running now."),
            (status(Some(Completed), Some((Approved, "policy", "2026-05-27T09:15:00Z", None))), "✅ Approved by policy at 09:15 UTC. 🏁 Completed."),
            (status(Some(Rejected), Some((Rejected, "@alice", "2026-05-27T14:03:00Z", Some("rejected in Telegram")))), "❌ Rejected by @alice at 14:03 UTC."),
            (status(Some(Rejected), Some((Rejected, "ui:bob", "2026-05-27T14:03:00Z", Some("not now")))), "❌ Rejected by ui:bob at 14:03 UTC: not now"),
            (
                status(Some(Cancelled), Some((Cancelled, "supervisor", "2026-05-27T14:05:00Z", Some("drift resolved")))),
                "✔️ The drift resolved on its own at 14:05 UTC: cancelled, nothing to do.",
            ),
            (status(Some(Cancelled), Some((Cancelled, "cli:root", "2026-05-27T14:05:00Z", None))), "🚫 Cancelled by cli:root at 14:05 UTC."),
            (status(None, None), "🗑 This action no longer exists in the data root."),
        ];
        for (s, want) in cases {
            assert_eq!(status_line(&s), want, "{s:?}");
        }
    }

    #[test]
    fn a_pending_card_names_everything_and_has_three_buttons() {
        let c = card();
        let s = status(Some(ActionState::Pending), None);
        let (text, kb) = render_message(&[("tok", &c, &s)]);
        for part in ["edge-1", "z2m", "unhealthy_service", "containers_not_running", "mosquitto down", "Risk: low", "container-restart-edge-1-z2m"] {
            assert!(text.contains(part), "{part} missing in {text}");
        }
        let data: Vec<_> = kb.inline_keyboard.concat().into_iter().map(|b| b.callback_data).collect();
        assert_eq!(data, ["ok:tok", "no:tok", "mute:tok"]);
        // Once muted: the line says so, and the mute button is gone.
        let muted =
            Status { muted: Some("🔕 Muted for 1 h by @a (until 15:03 UTC): muted from Telegram.".into()), ..status(Some(ActionState::Pending), None) };
        let (text, kb) = render_message(&[("tok", &c, &muted)]);
        assert!(text.ends_with("⏳ Waiting for approval.\n🔕 Muted for 1 h by @a (until 15:03 UTC): muted from Telegram."), "{text}");
        let data: Vec<_> = kb.inline_keyboard.concat().into_iter().map(|b| b.callback_data).collect();
        assert_eq!(data, ["ok:tok", "no:tok"]);
        let decided = status(Some(ActionState::Approved), Some((ActionState::Approved, "@a", "2026-05-27T14:03:00Z", None)));
        let (_, kb) = render_message(&[("tok", &c, &decided)]);
        assert!(kb.inline_keyboard.is_empty(), "no buttons once decided");
    }

    #[test]
    fn a_digest_lists_all_and_offers_buttons_for_the_pending_ones() {
        let c = card();
        let p = status(Some(ActionState::Pending), None);
        let r = status(Some(ActionState::Rejected), Some((ActionState::Rejected, "@a", "2026-05-27T14:03:00Z", None)));
        let (text, kb) = render_message(&[("t1", &c, &p), ("t2", &c, &r), ("t3", &c, &p)]);
        assert!(text.starts_with("⚠️ 3 new actions"), "{text}");
        assert!(text.contains("2. container_restart on edge-1 / z2m") && text.contains("❌ rejected by @a at 14:03 UTC"), "{text}");
        let data: Vec<_> = kb.inline_keyboard.concat().into_iter().map(|b| b.callback_data).collect();
        assert_eq!(data, ["ok:t1", "no:t1", "ok:t3", "no:t3"]);
    }

    #[test]
    fn follow_ups_table() {
        let c = card();
        let ok = |verified| ActionResult { ok: true, verified, ..Default::default() };
        let failed =
            ActionResult { ok: false, exit_status: Some(1), error: Some("container not found".into()), output: "line1\nboom".into(), ..Default::default() };
        let cases: [(ActionState, Option<ActionResult>, Option<&str>); 5] = [
            (
                ActionState::Completed,
                Some(ok(Some(true))),
                Some("🏁 container_restart on edge-1 / z2m completed and verified: the service reported healthy afterwards."),
            ),
            (ActionState::Completed, Some(ok(Some(false))), Some("completed, but not verified")),
            (
                ActionState::Failed,
                Some(failed),
                Some("💥 container_restart on edge-1 / z2m failed: container not found\nExit status: 1\n\nLast output:\nline1\nboom"),
            ),
            (ActionState::Rejected, None, None),
            (ActionState::Cancelled, None, None),
        ];
        for (state, result, want) in cases {
            let got = follow_up(&c, state, result.as_ref());
            match (want, got) {
                (None, got) => assert_eq!(got, None, "{state}"),
                (Some(w), Some(g)) => assert!(g.contains(w), "{state}: {g:?} lacks {w:?}"),
                (Some(w), None) => panic!("{state}: no follow-up, wanted {w:?}"),
            }
        }
    }

    #[test]
    fn long_texts_are_cut_to_the_limit() {
        let s = truncate("é".repeat(5000));
        assert_eq!(s.chars().count(), MAX_TEXT);
    }
}
