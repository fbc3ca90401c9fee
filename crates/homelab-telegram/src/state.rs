//! `state/telegram.json`: what the bot has sent, so that a restart neither re-sends nor forgets.
//!
//! An *incident* is one action as it was created (id + `created_at`: the same id can come back
//! later as a new incident). Each incident is shown in one *message* (a card of its own, or a
//! digest shared with others that appeared in the same burst), which has one copy per allowed
//! chat. Buttons carry `ok:<token>` / `no:<token>` / `mute:<token>`: the token is random, stored here and names
//! the incident, so made-up or altered callback data matches nothing.

use std::collections::BTreeMap;

use homelab_core::{ActionState, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TelegramState {
    /// The next `getUpdates` offset (one past the last update handled).
    #[serde(default)]
    pub update_offset: i64,
    /// By token.
    #[serde(default)]
    pub incidents: BTreeMap<String, Incident>,
    /// By message key.
    #[serde(default)]
    pub messages: BTreeMap<u64, MessageGroup>,
    #[serde(default)]
    pub next_message_key: u64,
    /// When the recent messages about new actions were created (the flood window).
    #[serde(default, with = "homelab_core::ts_format::vec")]
    pub recent_messages: Vec<Timestamp>,
    /// The digest new actions join while the flood lasts, and when it was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<OpenDigest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenDigest {
    pub message: u64,
    #[serde(with = "homelab_core::ts_format")]
    pub started_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub action_id: String,
    /// What the message says about the action (kept so it can be shown after the file is gone).
    pub card: crate::render::Card,
    #[serde(with = "homelab_core::ts_format")]
    pub created_at: Timestamp,
    /// The message (key into `messages`) that shows it.
    pub message: u64,
    /// The last state seen on disk; `None` when the action file is gone.
    pub state: Option<ActionState>,
    /// Who decided, as the person appeared in Telegram (`@alice`), when it was decided here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Chats the end-of-action follow-up went to.
    #[serde(default)]
    pub follow_up_chats: Vec<i64>,
    /// Nothing more will happen to it (terminal, followed up).
    #[serde(default)]
    pub closed: bool,
    #[serde(default, with = "homelab_core::ts_format::option", skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
    /// Set when someone pressed "Mute 1 h": the line the message shows about it (who, until when).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageGroup {
    /// Tokens of the incidents it shows, in order.
    pub incidents: Vec<String>,
    /// The copy in each chat, by chat id (as a string: JSON keys are strings).
    #[serde(default)]
    pub copies: BTreeMap<String, Copy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Copy {
    pub message_id: i64,
    /// What the copy shows now (text and buttons), to know when an edit is due.
    pub shown: String,
}

impl TelegramState {
    pub fn incident_for(&self, action_id: &str, created_at: Timestamp) -> Option<&String> {
        self.incidents.iter().find(|(_, i)| i.action_id == action_id && i.created_at == created_at).map(|(t, _)| t)
    }

    /// Forgets incidents closed before `before` and messages left without incidents.
    pub fn prune(&mut self, before: Timestamp) {
        self.incidents.retain(|_, i| !(i.closed && i.closed_at.is_some_and(|c| c < before)));
        let live: std::collections::BTreeSet<u64> = self.incidents.values().map(|i| i.message).collect();
        self.messages.retain(|k, _| live.contains(k));
    }
}
