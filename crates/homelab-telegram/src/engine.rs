//! The bot's reconcile loop and button presses.
//!
//! `reconcile` is idempotent: it reads `actions/` from disk, notes new pending actions as
//! incidents (one message each, or one digest for a burst), then brings every open message up
//! to date: sends missing copies, edits copies whose text is stale, sends the follow-up when an
//! action ends. Every Bot API success is saved at once to `state/telegram.json`; a failure
//! stops the pass and sets a backoff, and the next pass picks up where this one stopped.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use homelab_core::{Action, ActionId, ActionState, Timestamp};
use homelab_ops::{DecideError, Decision, NewSilence, Ops, SilenceError};
use homelab_store::{DataRoot, Doc};
use tokio::time::Instant;

use crate::TelegramConfig;
use crate::api::{ApiError, Bot, CallbackQuery, Update};
use crate::render::{Card, Status, follow_up, render_message, shown};
use crate::state::{Copy, Incident, MessageGroup, OpenDigest, TelegramState};

/// More new actions than this within [`FLOOD_WINDOW`] are sent as one digest.
pub const FLOOD_LIMIT: usize = 5;
pub const FLOOD_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// A digest lists at most this many actions (two buttons each), then a new one starts.
const MAX_DIGEST: usize = 40;
/// Closed incidents are forgotten after this long.
const KEEP_CLOSED: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// The message id recorded for a chat the API refused for good.
const NOT_DELIVERED: i64 = 0;
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub(crate) struct Engine {
    cfg: TelegramConfig,
    root: DataRoot,
    bot: Bot,
    pub(crate) state: TelegramState,
    /// No Bot API calls before this (backoff after a failure).
    pub(crate) retry_at: Option<Instant>,
    backoff: Duration,
    started_at: Timestamp,
    /// For the heartbeat: messages sent, edits, follow-ups, presses, API failures.
    counters: std::collections::BTreeMap<String, u64>,
    last_api_error: Option<String>,
    /// Maps a press to a user and checks role × node group (set by the UI; `None`: chats and
    /// `TELEGRAM_USER_IDS` decide alone).
    /// Every press becomes an operator command here: who pressed, the permission rule, the
    /// change and its audit record.
    ops: Ops,
}

/// Whether a pass may go on after a Bot API call.
enum Step {
    Go,
    Stop,
}

impl Engine {
    pub(crate) fn load(cfg: TelegramConfig, ops: Ops, bot: Bot) -> anyhow::Result<Engine> {
        let root = ops.root().clone();
        use anyhow::Context as _;
        let state = root
            .read_telegram_state::<TelegramState>()
            .with_context(|| format!("reading {} (delete it to start afresh: every pending action is then sent again)", Doc::TelegramState))?
            .unwrap_or_default();
        Ok(Engine {
            cfg,
            root,
            bot,
            state,
            retry_at: None,
            backoff: MIN_BACKOFF,
            started_at: Utc::now(),
            counters: Default::default(),
            last_api_error: None,
            ops,
        })
    }

    fn save(&self) {
        if let Err(e) = self.root.write_telegram_state(&self.state) {
            tracing::error!(file = Doc::TelegramState.name(), error = %e, "cannot save the Telegram state; messages may be sent twice after a restart");
        }
    }

    fn count(&mut self, what: &str) {
        *self.counters.entry(what.to_owned()).or_default() += 1;
    }

    /// `state/heartbeat/telegram.json`: alive, counters, and whether the Bot API answers.
    fn write_heartbeat(&self) {
        let now = Utc::now();
        let hb = homelab_core::Heartbeat {
            counters: self.counters.clone(),
            extra: serde_json::json!({
                "mode": format!("{:?}", self.cfg.mode).to_lowercase(),
                "chats": self.cfg.chat_ids.len(),
                "api_ok": self.retry_at.is_none(),
                "last_api_error": self.last_api_error,
                "open_incidents": self.state.incidents.values().filter(|i| !i.closed).count(),
            }),
            ..homelab_store::daemon::heartbeat("telegram", self.started_at, now, self.cfg.rescan_every)
        };
        if let Err(e) = self.root.write_heartbeat("telegram", &hb) {
            tracing::warn!(error = %e, "cannot write the Telegram heartbeat");
        }
    }

    fn api_ready(&self) -> bool {
        self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// Records a failed call: permanent errors are logged and skipped, others set a backoff.
    fn failed(&mut self, what: &str, e: &ApiError) -> Step {
        self.count("api_failures");
        self.last_api_error = Some(e.to_string());
        if e.is_permanent() {
            tracing::warn!(error = %e, "Telegram refused to {what}; giving up on this one");
            return Step::Go;
        }
        let wait = e.retry_after().unwrap_or(self.backoff);
        self.retry_at = Some(Instant::now() + wait);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        tracing::warn!(error = %e, retry_in_secs = wait.as_secs_f32(), "could not {what}; will retry");
        Step::Stop
    }

    fn succeeded(&mut self) {
        self.retry_at = None;
        self.backoff = MIN_BACKOFF;
        self.save();
    }

    /// One full pass: notice new pending actions, then deliver what is due.
    pub(crate) async fn reconcile(&mut self) {
        let now = Utc::now();
        self.observe(now);
        self.save();
        if self.api_ready() {
            self.deliver(now).await;
        }
        self.save();
        self.write_heartbeat();
    }

    /// Notes new pending actions as incidents, grouped into messages (a digest for a burst).
    fn observe(&mut self, now: Timestamp) {
        self.state.prune(now - KEEP_CLOSED);
        let pending = match self.root.list_actions(ActionState::Pending) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list pending actions; will look again");
                return;
            }
        };
        let new: Vec<Action> = pending.into_iter().map(|s| s.action).filter(|a| self.state.incident_for(&a.id, a.created_at).is_none()).collect();
        if new.is_empty() {
            return;
        }
        self.state.recent_messages.retain(|t| now - *t < FLOOD_WINDOW);
        if self.state.recent_messages.len() + new.len() <= FLOOD_LIMIT {
            for a in new {
                self.new_message(std::slice::from_ref(&a), now);
            }
            return;
        }
        // A flood: new actions join the digest started within the window (its message is
        // edited to list them), or start one.
        let open = self.state.digest.as_ref().filter(|d| now - d.started_at < FLOOD_WINDOW).map(|d| d.message);
        match open.and_then(|k| self.state.messages.get(&k).map(|g| (k, g.incidents.len()))) {
            Some((key, len)) if len + new.len() <= MAX_DIGEST => {
                tracing::info!(count = new.len(), "more new pending actions during a flood; adding them to the digest");
                for a in &new {
                    let token = self.new_incident(a, key);
                    if let Some(g) = self.state.messages.get_mut(&key) {
                        g.incidents.push(token);
                    }
                }
            }
            _ => {
                tracing::info!(count = new.len(), "many new pending actions within a minute; sending one digest");
                let key = self.new_message(&new, now);
                self.state.digest = Some(OpenDigest { message: key, started_at: now });
            }
        }
    }

    fn new_message(&mut self, actions: &[Action], now: Timestamp) -> u64 {
        let key = self.state.next_message_key;
        self.state.next_message_key += 1;
        let tokens = actions.iter().map(|a| self.new_incident(a, key)).collect();
        self.state.messages.insert(key, MessageGroup { incidents: tokens, copies: Default::default() });
        self.state.recent_messages.push(now);
        key
    }

    fn new_incident(&mut self, a: &Action, message: u64) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        tracing::info!(action_id = %a.id, "new pending action; sending it to Telegram");
        self.state.incidents.insert(
            token.clone(),
            Incident {
                action_id: a.id.clone(),
                card: Card::of(a),
                created_at: a.created_at,
                message,
                state: Some(ActionState::Pending),
                decided_by: None,
                follow_up_chats: Vec::new(),
                closed: false,
                closed_at: None,
                muted: None,
            },
        );
        token
    }

    /// Brings every message with an open incident up to date.
    async fn deliver(&mut self, now: Timestamp) {
        let keys: Vec<u64> = self
            .state
            .messages
            .iter()
            .filter(|(_, g)| g.incidents.iter().any(|t| self.state.incidents.get(t).is_some_and(|i| !i.closed)))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            if let Step::Stop = self.deliver_message(key, now).await {
                return;
            }
        }
    }

    async fn deliver_message(&mut self, key: u64, now: Timestamp) -> Step {
        let Some(group) = self.state.messages.get(&key).cloned() else { return Step::Go };
        // Where each of its actions stands now.
        let mut current: HashMap<String, Option<Action>> = HashMap::new();
        for token in &group.incidents {
            let Some(inc) = self.state.incidents.get_mut(token) else { continue };
            let found = match locate(&self.root, &inc.action_id, inc.created_at) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(action_id = %inc.action_id, error = %e, "cannot read the action; will look again");
                    return Step::Go;
                }
            };
            inc.state = found.as_ref().map(|a| a.state);
            current.insert(token.clone(), found);
        }
        let statuses: Vec<(String, Card, Status)> = group
            .incidents
            .iter()
            .filter_map(|t| {
                let inc = self.state.incidents.get(t)?;
                let mut status = Status::of(current.get(t).and_then(|a| a.as_ref()), inc.decided_by.as_deref());
                status.muted = inc.muted.clone();
                Some((t.clone(), inc.card.clone(), status))
            })
            .collect();
        let items: Vec<(&str, &Card, &Status)> = statuses.iter().map(|(t, c, s)| (t.as_str(), c, s)).collect();
        let (text, keyboard) = render_message(&items);
        let fingerprint = shown(&text, &keyboard);
        let any_pending = statuses.iter().any(|(_, _, s)| s.state == Some(ActionState::Pending));

        // Copies: send where missing (while there is something to decide), edit where stale.
        for chat in self.cfg.chat_ids.clone() {
            let copy = self.state.messages.get(&key).and_then(|g| g.copies.get(&chat.to_string())).cloned();
            match copy {
                None if any_pending => match self.bot.send_message(chat, &text, Some(&keyboard), None).await {
                    Ok(message_id) => {
                        tracing::info!(chat_id = chat, message_id, "sent to Telegram");
                        self.count("messages_sent");
                        if let Some(g) = self.state.messages.get_mut(&key) {
                            g.copies.insert(chat.to_string(), Copy { message_id, shown: fingerprint.clone() });
                        }
                        self.succeeded();
                    }
                    Err(e) => {
                        if let Step::Stop = self.failed("send a message", &e) {
                            return Step::Stop;
                        }
                        // Refused for good (wrong chat id, bot removed): remember, do not retry.
                        if let Some(g) = self.state.messages.get_mut(&key) {
                            g.copies.insert(chat.to_string(), Copy { message_id: NOT_DELIVERED, shown: fingerprint.clone() });
                        }
                        self.save();
                    }
                },
                Some(c) if c.message_id == NOT_DELIVERED => {}
                Some(c) if c.shown != fingerprint => {
                    let res = self.bot.edit_message_text(chat, c.message_id, &text, &keyboard).await;
                    if let Err(e) = &res
                        && let Step::Stop = self.failed("edit a message", e)
                    {
                        return Step::Stop;
                    }
                    if res.is_ok() {
                        self.count("messages_edited");
                    }
                    // Edited, or refused for good (deleted message): either way it is settled.
                    if let Some(g) = self.state.messages.get_mut(&key) {
                        g.copies.insert(chat.to_string(), Copy { message_id: c.message_id, shown: fingerprint.clone() });
                    }
                    self.succeeded();
                }
                _ => {}
            }
        }

        // Follow-ups in the thread when an action ends; then close what is settled.
        let copies: Vec<(i64, i64)> = self
            .state
            .messages
            .get(&key)
            .map(|g| g.copies.iter().filter(|(_, m)| m.message_id != NOT_DELIVERED).filter_map(|(c, m)| Some((c.parse().ok()?, m.message_id))).collect())
            .unwrap_or_default();
        for (token, card, status) in &statuses {
            let Some(inc) = self.state.incidents.get(token) else { continue };
            if inc.closed {
                continue;
            }
            let action = current.get(token).and_then(|a| a.as_ref());
            let terminal = status.state.is_none_or(|s| s.is_terminal());
            if !terminal {
                continue;
            }
            if let Some(text) = status.state.and_then(|s| follow_up(card, s, action.and_then(|a| a.result.as_ref()))) {
                for (chat, message_id) in &copies {
                    if self.state.incidents.get(token).is_some_and(|i| i.follow_up_chats.contains(chat)) {
                        continue;
                    }
                    match self.bot.send_message(*chat, &text, None, Some(*message_id)).await {
                        Ok(_) => self.count("follow_ups_sent"),
                        Err(e) => {
                            if let Step::Stop = self.failed("send the result", &e) {
                                return Step::Stop;
                            }
                        }
                    }
                    if let Some(i) = self.state.incidents.get_mut(token) {
                        i.follow_up_chats.push(*chat);
                    }
                    self.succeeded();
                }
            }
            let all_shown = self.state.messages.get(&key).is_some_and(|g| g.copies.values().all(|c| c.shown == fingerprint));
            if all_shown && let Some(i) = self.state.incidents.get_mut(token) {
                tracing::info!(action_id = %i.action_id, state = ?i.state, "Telegram thread done");
                i.closed = true;
                i.closed_at = Some(now);
            }
        }
        self.save();
        Step::Go
    }

    /// Handles one update: a button press, answered always. Then brings the messages up to date.
    pub(crate) async fn handle_update(&mut self, update: Update) {
        if let Some(q) = update.callback_query {
            let (answer, accepted) = self.decide(&q);
            self.count(if accepted { "presses_accepted" } else { "presses_refused" });
            if let Err(e) = self.bot.answer_callback_query(&q.id, &answer).await {
                tracing::warn!(error = %e, "could not answer a button press");
            }
        }
        self.state.update_offset = self.state.update_offset.max(update.update_id + 1);
        self.save();
        self.reconcile().await;
    }

    /// Checks a press and moves the action; returns what to tell the person.
    fn decide(&mut self, q: &CallbackQuery) -> (String, bool) {
        match self.decide_inner(q) {
            Ok(a) => (a, true),
            Err(a) => (a, false),
        }
    }

    /// `Ok`: the action moved; `Err`: nothing changed. Either way, what to tell the person.
    fn decide_inner(&mut self, q: &CallbackQuery) -> Result<String, String> {
        let user_id = q.from.id;
        let Some(m) = &q.message else {
            tracing::warn!(user_id, "button press without its message; ignored");
            return Err("This button cannot be used here.".into());
        };
        let chat_id = m.chat.id;
        if !self.cfg.chat_ids.contains(&chat_id) {
            tracing::warn!(chat_id, user_id, "button press from a chat that is not allowed; nothing changed");
            return Err("This chat is not allowed to decide on actions.".into());
        }
        if let Some(users) = &self.cfg.user_ids
            && !users.contains(&user_id)
        {
            tracing::warn!(chat_id, user_id, "button press from a user who is not allowed; nothing changed");
            return Err("You are not allowed to decide on actions.".into());
        }
        let data = q.data.as_deref().unwrap_or("");
        let (to, token) = match data.split_once(':') {
            Some(("mute", t)) => return self.mute(q, t),
            Some(("ok", t)) => (ActionState::Approved, t),
            Some(("no", t)) => (ActionState::Rejected, t),
            _ => {
                tracing::warn!(chat_id, user_id, data, "button press with callback data we never made; nothing changed");
                return Err("Unknown button.".into());
            }
        };
        let Some(inc) = self.state.incidents.get(token).cloned() else {
            tracing::warn!(chat_id, user_id, data, "callback data matches nothing we sent (tampered or long expired); nothing changed");
            return Err("Unknown or expired button.".into());
        };
        if !self.on_its_message(&inc, user_id, m, "callback data") {
            return Err("Unknown button.".into());
        }
        let id = inc.action_id.as_str();
        // The button is for this incident: a newer action with the same id is not what was shown.
        let pending = match self.root.read_active(ActionState::Pending, id) {
            Ok(Some(a)) if a.created_at == inc.created_at => a,
            Ok(_) => {
                let now = locate(&self.root, id, inc.created_at).ok().flatten().map(|a| a.state);
                tracing::info!(action_id = id, user_id, state = ?now, "button press for an action that is no longer pending; nothing changed");
                return Err(match now {
                    Some(s) => format!("Nothing changed: this action is already {s}."),
                    None => "Nothing changed: this action no longer exists.".into(),
                });
            }
            Err(e) => {
                tracing::error!(action_id = id, error = %e, "cannot read the action for a button press");
                return Err("Could not read the action; try again or use the web UI.".into());
            }
        };
        let Ok(action_id) = ActionId::parse(id) else {
            tracing::warn!(chat_id, user_id, action_id = id, "incident names an action id that does not parse; nothing changed");
            return Err("Unknown button.".into());
        };
        let actor = self.ops.telegram_actor(user_id);
        let name = q.from.display();
        let decision = match to {
            ActionState::Approved => Decision::Approve { note: Some(format!("approved in Telegram by {name}")) },
            _ => Decision::Reject { reason: Some(format!("rejected in Telegram by {name}")) },
        };
        match self.ops.decide(&actor, &action_id, decision) {
            Ok(a) => {
                tracing::info!(action_id = id, by = %actor.by, chat_id, node = %pending.node, "{} in Telegram", a.state);
                if let Some(i) = self.state.incidents.get_mut(token) {
                    i.decided_by = Some(name);
                }
                self.save();
                Ok(format!("{}.", if to == ActionState::Approved { "Approved" } else { "Rejected" }))
            }
            Err(DecideError::Forbidden(why)) => {
                tracing::warn!(chat_id, user_id, action_id = id, "button press not allowed for this user; nothing changed");
                Err(format!("Nothing changed: {why}."))
            }
            Err(DecideError::NotPending { state, .. } | DecideError::TooLate { state, .. }) => {
                tracing::info!(action_id = id, user_id, state = %state, "someone else moved the action first; nothing changed");
                Err(format!("Nothing changed: this action is already {state}."))
            }
            Err(DecideError::NotFound(_)) => Err("Nothing changed: this action no longer exists.".into()),
            Err(e @ DecideError::Store(_)) => {
                tracing::error!(action_id = id, error = %e, "cannot record a decision made in Telegram");
                Err("Could not record the decision; try again or use the web UI.".into())
            }
        }
    }
}

impl Engine {
    /// Whether a button was pressed on the message `inc` was sent as, in that chat; a press
    /// that was not (its callback data tampered with) is logged as `what`'s.
    fn on_its_message(&self, inc: &Incident, user_id: i64, m: &crate::api::Message, what: &str) -> bool {
        let chat_id = m.chat.id;
        let on_it = self.state.messages.get(&inc.message).and_then(|g| g.copies.get(&chat_id.to_string())).is_some_and(|c| c.message_id == m.message_id);
        if !on_it {
            tracing::warn!(chat_id, user_id, message_id = m.message_id, action_id = %inc.action_id, "{what} does not belong to the message it came from (tampered); nothing changed");
        }
        on_it
    }

    /// "Mute 1 h": a silence for the incident's node/service (`state/silences/`, as
    /// `hcp silence add` writes it), by an allowed user (role × node groups, as for approving),
    /// then the message says so. Chat and user-list checks are done by the caller.
    fn mute(&mut self, q: &CallbackQuery, token: &str) -> Result<String, String> {
        let user_id = q.from.id;
        let Some(m) = &q.message else { return Err("This button cannot be used here.".into()) };
        let chat_id = m.chat.id;
        let Some(inc) = self.state.incidents.get(token).cloned() else {
            tracing::warn!(chat_id, user_id, "mute button matches nothing we sent (tampered or long expired); nothing changed");
            return Err("Unknown or expired button.".into());
        };
        if !self.on_its_message(&inc, user_id, m, "mute button") {
            return Err("Unknown button.".into());
        }
        let target = match &inc.card.service {
            Some(s) => format!("{}/{s}", inc.card.node),
            None => inc.card.node.clone(),
        };
        if inc.muted.is_some() {
            return Err(format!("Nothing changed: {target} is already muted."));
        }
        let actor = self.ops.telegram_actor(user_id);
        let req = NewSilence { target: Some(target.clone()), action_type: None, duration: MUTE_FOR, reason: MUTE_REASON.into() };
        let silence = match self.ops.add_silence(&actor, req) {
            Ok(s) => s,
            Err(SilenceError::Forbidden(why)) => {
                tracing::warn!(chat_id, user_id, target, "mute press not allowed for this user; nothing changed");
                return Err(format!("Nothing changed: {why}."));
            }
            Err(e) => {
                tracing::error!(target, error = %e, "cannot write the silence for a mute press");
                return Err("Could not mute; try again or use the web UI.".into());
            }
        };
        tracing::info!(target, by = %actor.by, silence = %silence.id, until = %homelab_core::rfc3339(silence.ends_at), "muted from Telegram");
        let line = format!("🔕 Muted for 1 h by {} (until {} UTC): {MUTE_REASON}.", q.from.display(), silence.ends_at.format("%H:%M"));
        if let Some(i) = self.state.incidents.get_mut(token) {
            i.muted = Some(line);
        }
        self.save();
        Ok(format!("Muted {target} for 1 h."))
    }
}

/// How long the "Mute 1 h" button mutes, and the reason it writes.
const MUTE_FOR: Duration = Duration::from_secs(3600);
const MUTE_REASON: &str = "muted from Telegram";

/// Finds the action an incident is about, wherever it is now: the active file if it is the same
/// incident (same `created_at`), else the terminal file with that `created_at`.
fn locate(root: &DataRoot, id: &str, created_at: Timestamp) -> std::io::Result<Option<Action>> {
    root.find_action_incarnation(id, created_at)
}
