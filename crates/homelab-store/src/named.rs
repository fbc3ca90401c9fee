//! The named documents of the data root. Callers ask for "the supervisor memory", never for a
//! file: the names below (and the folders in `lib.rs`) are the only place a path under the data
//! root is spelled, so another backend (a key-value store) could keep the same surface.
//!
//! A [`Doc`]'s [`name`](Doc::name) (also its `Display`) is where an operator finds it, relative
//! to the data root: error messages and pages show it.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use homelab_core::desired::HostFile;
use homelab_core::fold::Checkpoint;
use homelab_core::plan::SupervisorMemory;
use homelab_core::{Action, ActionState, Timestamp};
use serde::{Serialize, de::DeserializeOwned};

use crate::DataRoot;

/// A single-file document of the data root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    /// `world/services.json` (the observer).
    Services,
    /// `world/nodes.json` (the observer).
    Nodes,
    /// `world/drift.json` (the supervisor).
    Drift,
    /// `state/supervisor.json`: escalations, rejections, auto-approvals.
    SupervisorMemory,
    /// `state/hosts_last_good.json`: the last valid version of each hosts file.
    HostsLastGood,
    /// `state/observer_checkpoint.json`: the fold snapshot.
    ObserverCheckpoint,
    /// `state/notify.json`: the notifier's memory.
    NotifyState,
    /// `state/telegram.json`: what the bot has sent.
    TelegramState,
    /// `state/ui_token`: the generated UI token (0600).
    UiToken,
    /// `state/secrets/oidc_client_secret`.
    OidcClientSecret,
    /// `state/secrets/users.json`.
    Users,
    /// `state/secrets/sessions.json`.
    Sessions,
    /// `state/secrets/agent_tokens.json`.
    AgentTokens,
}

impl Doc {
    /// Where it lives, relative to the data root (also what people are shown).
    pub const fn name(self) -> &'static str {
        match self {
            Doc::Services => "world/services.json",
            Doc::Nodes => "world/nodes.json",
            Doc::Drift => "world/drift.json",
            Doc::SupervisorMemory => "state/supervisor.json",
            Doc::HostsLastGood => "state/hosts_last_good.json",
            Doc::ObserverCheckpoint => "state/observer_checkpoint.json",
            Doc::NotifyState => "state/notify.json",
            Doc::TelegramState => "state/telegram.json",
            Doc::UiToken => "state/ui_token",
            Doc::OidcClientSecret => "state/secrets/oidc_client_secret",
            Doc::Users => "state/secrets/users.json",
            Doc::Sessions => "state/secrets/sessions.json",
            Doc::AgentTokens => "state/secrets/agent_tokens.json",
        }
    }
}

impl std::fmt::Display for Doc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Names shown to people for what is not a [`Doc`] (relative to the data root).
pub mod display {
    use homelab_core::ActionState;

    /// The heartbeats' folder, `state/heartbeat/`.
    pub const HEARTBEATS: &str = "state/heartbeat/";
    /// The quarantine's folder, `quarantine/`.
    pub const QUARANTINE: &str = "quarantine/";

    /// `state/heartbeat/<daemon>.json`.
    pub fn heartbeat(daemon: &str) -> String {
        format!("{HEARTBEATS}{daemon}.json")
    }

    /// `actions/<state>/<file>`; an empty `file` names the folder (`actions/<state>/`).
    pub fn action(state: ActionState, file: &str) -> String {
        format!("actions/{state}/{file}")
    }

    /// `events/<day>/<file>` from the observer's `<day>/<file>`.
    pub fn event(rel: &str) -> String {
        format!("events/{rel}")
    }

    /// `quarantine/actions/<file>`.
    pub fn quarantined_action(file: &str) -> String {
        format!("{QUARANTINE}actions/{file}")
    }
}

/// An opaque "has it changed" mark of a document (inode, size, modification time): equal
/// stamps mean the content was not replaced. `None` from a `*_stamp` function: it does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(u64, u64, i64, i64);

impl DataRoot {
    fn doc_path(&self, doc: Doc) -> PathBuf {
        self.path().join(doc.name())
    }

    /// Where an operator finds `doc` on disk (for messages: "generated a token into …").
    pub fn display_path(&self, doc: Doc) -> PathBuf {
        self.doc_path(doc)
    }

    /// Where an operator finds a daemon's heartbeat on disk.
    pub fn heartbeat_display_path(&self, daemon: &str) -> PathBuf {
        self.path().join(display::heartbeat(daemon))
    }

    fn stamp(&self, doc: Doc) -> io::Result<Option<Stamp>> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(self.doc_path(doc)) {
            Ok(m) => Ok(Some(Stamp(m.ino(), m.len(), m.mtime(), m.mtime_nsec()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `world/services.json`.
    pub fn read_services(&self) -> io::Result<Option<homelab_core::world::ServicesFile>> {
        self.read_json(Doc::Services.name())
    }

    /// `world/nodes.json`.
    pub fn read_nodes(&self) -> io::Result<Option<homelab_core::world::NodesFile>> {
        self.read_json(Doc::Nodes.name())
    }

    /// The supervisor's memory; `Ok(None)` before its first reconcile.
    pub fn read_supervisor_memory(&self) -> io::Result<Option<SupervisorMemory>> {
        self.read_json(Doc::SupervisorMemory.name())
    }

    pub fn write_supervisor_memory(&self, memory: &SupervisorMemory) -> io::Result<()> {
        self.write_json(Doc::SupervisorMemory.name(), memory)
    }

    /// The last good version of each hosts file, by file name, as the supervisor keeps it.
    pub fn read_hosts_last_good(&self) -> io::Result<Option<BTreeMap<String, HostFile>>> {
        self.read_json(Doc::HostsLastGood.name())
    }

    pub fn write_hosts_last_good(&self, in_force: &BTreeMap<String, HostFile>) -> io::Result<()> {
        self.write_json(Doc::HostsLastGood.name(), in_force)
    }

    /// The observer's checkpoint; an `InvalidData` error when it does not parse.
    pub fn read_observer_checkpoint(&self) -> io::Result<Option<Checkpoint>> {
        self.read_json(Doc::ObserverCheckpoint.name())
    }

    pub fn write_observer_checkpoint(&self, checkpoint: &Checkpoint) -> io::Result<()> {
        self.write_json(Doc::ObserverCheckpoint.name(), checkpoint)
    }

    /// Moves a corrupt observer checkpoint aside (`<name>.corrupt-<now>`), keeping it for a
    /// post-mortem. Returns the name it was moved to, relative to the data root.
    pub fn move_corrupt_observer_checkpoint(&self, now: Timestamp) -> io::Result<String> {
        let aside = format!("{}.corrupt-{}", Doc::ObserverCheckpoint.name(), homelab_core::compact_ts(now));
        std::fs::rename(self.doc_path(Doc::ObserverCheckpoint), self.path().join(&aside))?;
        Ok(aside)
    }

    /// The notifier's memory (its type is the notifier's).
    pub fn read_notify_state<T: DeserializeOwned>(&self) -> io::Result<Option<T>> {
        self.read_json(Doc::NotifyState.name())
    }

    pub fn write_notify_state<T: Serialize>(&self, state: &T) -> io::Result<()> {
        self.write_json(Doc::NotifyState.name(), state)
    }

    /// The Telegram bot's memory (its type is the bot's).
    pub fn read_telegram_state<T: DeserializeOwned>(&self) -> io::Result<Option<T>> {
        self.read_json(Doc::TelegramState.name())
    }

    pub fn write_telegram_state<T: Serialize>(&self, state: &T) -> io::Result<()> {
        self.write_json(Doc::TelegramState.name(), state)
    }

    /// A daemon's heartbeat, `Ok(None)` when it has none (yet).
    pub fn read_heartbeat<T: DeserializeOwned>(&self, daemon: &str) -> io::Result<Option<T>> {
        homelab_core::validate_name(daemon).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.read_json(&display::heartbeat(daemon))
    }

    /// The secret called `name` (a plain file name) in `state/secrets/`, untouched (`None`:
    /// missing, unreadable, or `name` is not a plain file name).
    pub fn read_secret(&self, name: &str) -> Option<String> {
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            return None;
        }
        std::fs::read_to_string(self.secrets_dir().join(name)).ok()
    }

    /// The UI token, generated with `generate` (mode 0600) when there is none; the flag says
    /// whether it was created now.
    pub fn read_or_create_ui_token(&self, generate: impl FnOnce() -> String) -> io::Result<(String, bool)> {
        self.read_or_create_secret(Doc::UiToken.name(), generate)
    }

    /// The OIDC client secret (trimmed); `Ok(None)` when missing or empty.
    pub fn read_oidc_client_secret(&self) -> io::Result<Option<String>> {
        match std::fs::read_to_string(self.doc_path(Doc::OidcClientSecret)) {
            Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether users.json changed: read it again only when its stamp differs.
    pub fn users_stamp(&self) -> io::Result<Option<Stamp>> {
        self.stamp(Doc::Users)
    }

    /// Whether sessions.json changed.
    pub fn sessions_stamp(&self) -> io::Result<Option<Stamp>> {
        self.stamp(Doc::Sessions)
    }

    /// `state/heartbeat/`: watched and cleaned of stale temp files by the daemons.
    pub fn heartbeats_dir(&self) -> PathBuf {
        self.state_dir().join("heartbeat")
    }

    fn secrets_dir(&self) -> PathBuf {
        self.state_dir().join("secrets")
    }

    /// The node agent's spool folder when it runs beside the control plane on the data root's
    /// machine (`hcp up`).
    pub fn agent_spool_dir(&self) -> PathBuf {
        self.path().join("state/agent-spool")
    }

    /// Whether `dir` looks like a data root already (it has an `actions/` folder): tools that
    /// must not create one by mistake check this first.
    pub fn is_data_root(dir: &std::path::Path) -> bool {
        dir.join("actions").is_dir()
    }

    /// The folders of a data root only the control plane's user may enter (checkpoints,
    /// tokens, secrets): `hcp init` makes them 0700.
    pub fn private_dirs(&self) -> Vec<PathBuf> {
        vec![self.state_dir(), self.secrets_dir()]
    }

    /// What a reader of the whole data root (the UI) watches: world/, actions/ (recursive),
    /// the heartbeats and each quarantine folder (not recursive: a quarantined folder's content
    /// is never looked at). `(path, recursive)`.
    pub fn watch_paths(&self) -> Vec<(PathBuf, bool)> {
        let mut out = vec![(self.world_dir(), false), (self.actions_dir(), true), (self.heartbeats_dir(), false)];
        out.extend(crate::quarantine::QUARANTINE_KINDS.iter().map(|k| (self.quarantine_kind_dir(k), false)));
        out
    }

    /// The incarnation of action `id` created at `created_at`, wherever it is now: the active
    /// file if it is that incarnation, else the newest terminal file with that `created_at`.
    /// Its `state` is the folder it was found in. An unreadable terminal file is skipped.
    pub fn find_action_incarnation(&self, id: &str, created_at: Timestamp) -> io::Result<Option<Action>> {
        if let Some(s) = self.find_action(id)?
            && s.action.created_at == created_at
        {
            let mut a = s.action;
            a.state = s.state;
            return Ok(Some(a));
        }
        let prefix = format!("{id}--");
        for state in ActionState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for name in crate::list_names(&self.action_dir(state))?.into_iter().rev() {
                if !name.starts_with(&prefix) {
                    continue;
                }
                if let Ok(Some(mut a)) = crate::read_json_file::<Action>(&self.action_dir(state).join(&name))
                    && a.created_at == created_at
                {
                    a.state = state;
                    return Ok(Some(a));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::tests::action;

    #[test]
    fn documents_are_where_operators_find_them() {
        let (tmp, root) = DataRoot::temp();
        assert_eq!(root.read_supervisor_memory().unwrap(), None);
        root.write_supervisor_memory(&SupervisorMemory::default()).unwrap();
        assert_eq!(root.read_supervisor_memory().unwrap(), Some(SupervisorMemory::default()));
        assert!(tmp.path().join("state/supervisor.json").is_file());
        assert_eq!(Doc::Drift.to_string(), "world/drift.json");
        assert_eq!(root.display_path(Doc::UiToken), tmp.path().join("state/ui_token"));
        assert_eq!(root.heartbeat_display_path("observer"), tmp.path().join("state/heartbeat/observer.json"));
        assert_eq!(display::action(ActionState::Failed, ""), "actions/failed/");
        let watched: Vec<PathBuf> = root.watch_paths().into_iter().map(|(p, _)| p).collect();
        assert!(watched.contains(&tmp.path().join("quarantine/outbox")) && watched.contains(&tmp.path().join("state/heartbeat")), "{watched:?}");
    }

    #[test]
    fn secrets_are_read_by_plain_name_only() {
        let (tmp, root) = DataRoot::temp();
        std::fs::write(tmp.path().join("state/secrets/ntfy_token"), "t0k\n").unwrap();
        std::fs::write(tmp.path().join("state/ui_token"), "ui\n").unwrap();
        assert_eq!(root.read_secret("ntfy_token").as_deref(), Some("t0k\n"));
        assert_eq!(root.read_secret("../ui_token"), None);
        assert_eq!(root.read_secret("missing"), None);
        assert_eq!(root.read_oidc_client_secret().unwrap(), None);
    }

    #[test]
    fn a_corrupt_checkpoint_is_moved_aside() {
        let (tmp, root) = DataRoot::temp();
        std::fs::write(tmp.path().join("state/observer_checkpoint.json"), "{oops").unwrap();
        assert_eq!(root.read_observer_checkpoint().unwrap_err().kind(), io::ErrorKind::InvalidData);
        let aside = root.move_corrupt_observer_checkpoint(chrono::Utc::now()).unwrap();
        assert!(aside.starts_with("state/observer_checkpoint.json.corrupt-"), "{aside}");
        assert!(tmp.path().join(&aside).is_file());
        assert_eq!(root.read_observer_checkpoint().unwrap(), None);
    }

    #[test]
    fn an_incarnation_is_found_active_or_terminal() {
        let (_tmp, root) = DataRoot::temp();
        // Whole milliseconds: what the files keep.
        let first: Timestamp = "2026-11-25T12:00:00.123Z".parse().unwrap();
        let second = first + chrono::Duration::minutes(5);
        root.create_action(&action("redeploy-n1-web", first)).unwrap();
        root.transition("redeploy-n1-web", ActionState::Pending, ActionState::Rejected, second, "test", None, |_| {}).unwrap();
        root.create_action(&action("redeploy-n1-web", second)).unwrap();
        let old = root.find_action_incarnation("redeploy-n1-web", first).unwrap().unwrap();
        assert_eq!((old.state, old.created_at), (ActionState::Rejected, first));
        let new = root.find_action_incarnation("redeploy-n1-web", second).unwrap().unwrap();
        assert_eq!((new.state, new.created_at), (ActionState::Pending, second));
        assert!(root.find_action_incarnation("redeploy-n1-web", second + chrono::Duration::seconds(1)).unwrap().is_none());
    }
}
