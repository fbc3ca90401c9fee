//! `actions/<state>/`: the folder is the state, a rename is a transition.
//!
//! A transition takes a per-action advisory lock (`actions/.locks/<id>`), swaps the new content
//! into the file where it is (`RENAME_EXCHANGE`, which fails rather than recreate a file someone
//! moved away), then renames it into the new folder with `RENAME_NOREPLACE`: that rename decides
//! who owns the transition. So a file never sits in its new folder with its old content. The
//! lock only makes sure the next mover reads the content after the previous mover's entry is
//! in; it decides nothing. A plain `mv` by an operator is also a valid transition: readers take
//! the state from the folder, not from the content.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use homelab_core::{Action, ActionState, Timestamp, compact_ts, validate_action_id};
use thiserror::Error;

use crate::atomic::{rename_noreplace, swap_content, sync_dir, write_new};
use crate::{DataRoot, list_names, read_json_file};

#[derive(Debug, Error)]
pub enum TransitionError {
    #[error("invalid action id: {0}")]
    BadId(#[from] homelab_core::NameError),
    /// The action is not in the expected state (someone else moved it, or it never was).
    #[error("action {id} is not {expected}{}", current.map(|c| format!(" (it is {c})")).unwrap_or_else(|| " (no such action)".into()))]
    NotInState { id: String, expected: ActionState, current: Option<ActionState> },
    #[error("{from} -> {to} is not a valid transition")]
    Invalid { from: ActionState, to: ActionState },
    #[error("an action {id} is already {state}")]
    AlreadyExists { id: String, state: ActionState },
    #[error("action {id}: {source}")]
    Io {
        id: String,
        #[source]
        source: io::Error,
    },
}

/// An action file that could not be read as an action: moved to `quarantine/actions/`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("action file {file} is unreadable ({reason}); moved to {quarantined}")]
pub struct UnreadableAction {
    /// Where it was, relative to the data root: `actions/running/redeploy-n1-web.json`.
    pub file: String,
    /// Where it is now, relative to the data root: `quarantine/actions/<name>`, with
    /// `<name>.reason` beside it. Empty if it could not be moved (it is then left alone).
    pub quarantined: String,
    /// Why it did not parse.
    pub reason: String,
}

/// Why [`DataRoot::get_action`] found no action to show.
#[derive(Debug, Error)]
pub enum GetActionError {
    #[error("invalid action id: {0}")]
    BadId(#[from] homelab_core::NameError),
    /// No action with this id, and nothing of it in quarantine.
    #[error("no action {0}")]
    NotFound(String),
    /// No readable action with this id: its file(s) were unreadable and are in quarantine.
    #[error("action {id} is unreadable: its file was moved to {}", files.join(", "))]
    Quarantined { id: String, files: Vec<String> },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Paths a quarantine move failed for, so the warning is logged once, not at every listing.
static QUARANTINE_FAILED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// One action file as found on disk: its folder (the truth about its state) and content.
#[derive(Debug, Clone)]
pub struct StoredAction {
    pub state: ActionState,
    pub file_name: String,
    pub action: Action,
}

impl DataRoot {
    pub fn action_dir(&self, state: ActionState) -> PathBuf {
        self.actions_dir().join(state.as_str())
    }

    /// The file name an action has in a state's folder.
    pub fn action_file_name(id: &str, state: ActionState, ended: Timestamp) -> String {
        if state.is_active() { format!("{id}.json") } else { format!("{id}--{}.json", compact_ts(ended)) }
    }

    /// Every action in a state's folder, sorted by file name. A file that does not parse is
    /// moved to `quarantine/actions/` with a `.reason` beside it (logged once), so it neither
    /// hides the others nor blocks its id: see [`DataRoot::quarantine_action_file`].
    pub fn list_actions(&self, state: ActionState) -> io::Result<Vec<StoredAction>> {
        let dir = self.action_dir(state);
        let mut out = Vec::new();
        for name in list_names(&dir)? {
            if !name.ends_with(".json") {
                continue;
            }
            match self.read_action_file(state, &name) {
                Ok(Some(action)) => out.push(StoredAction { state, file_name: name, action }),
                Ok(None) => {} // moved away between listing and reading, or quarantined
                Err(e) => tracing::debug!(file = %dir.join(&name).display(), error = %e, "cannot read action file"),
            }
        }
        Ok(out)
    }

    /// Reads `actions/<state>/<name>`; `Ok(None)` when it is not there, or when it did not
    /// parse and was moved to quarantine (it then no longer holds its id).
    fn read_action_file(&self, state: ActionState, name: &str) -> io::Result<Option<Action>> {
        let path = self.action_dir(state).join(name);
        match read_json_file::<Action>(&path) {
            Ok(Some(mut action)) => {
                action.state = state;
                Ok(Some(action))
            }
            Ok(None) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                self.quarantine_action_file(state, name);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Moves an unreadable `actions/<state>/<name>` to `quarantine/actions/<name>` (a suffix
    /// keeps an earlier one with the same name) with `<name>.reason` beside it, under the
    /// action's lock, after reading it again: a file that parses now is left where it is.
    /// Never deletes anything; logs once per file. Returns what happened, `None` when the file
    /// is readable or gone.
    pub fn quarantine_action_file(&self, state: ActionState, name: &str) -> Option<UnreadableAction> {
        let src = self.action_dir(state).join(name);
        let id = action_id_of_file(state, name);
        let _lock = id.and_then(|id| self.lock_action(id).ok());
        let reason = match read_json_file::<Action>(&src) {
            Ok(_) => return None,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => e.to_string(),
            Err(_) => return None,
        };
        let rel = format!("actions/{state}/{name}");
        let qdir = self.quarantine_kind_dir("actions");
        let moved = (|| -> io::Result<String> {
            std::fs::create_dir_all(&qdir)?;
            let mut qname = name.to_owned();
            let mut n = 0;
            while qdir.join(&qname).exists() || qdir.join(format!("{qname}.reason")).exists() {
                n += 1;
                qname = format!("{name}.{n}");
            }
            let text = format!("unreadable action file (from {rel}): {reason}\n");
            // The reason first: a reason without its entry is not counted by the listing.
            crate::atomic::write_atomic(&qdir.join(format!("{qname}.reason")), text.as_bytes())?;
            rename_noreplace(&src, &qdir.join(&qname))?;
            if let Err(e) = sync_dir(&qdir).and_then(|()| sync_dir(src.parent().unwrap_or(Path::new(".")))) {
                tracing::warn!(error = %e, "quarantined an action file but could not fsync its folders");
            }
            Ok(format!("quarantine/actions/{qname}"))
        })();
        match moved {
            Ok(quarantined) => {
                tracing::warn!(file = %rel, to = %quarantined, reason = %reason, "unreadable action file moved to quarantine");
                Some(UnreadableAction { file: rel, quarantined, reason })
            }
            Err(e) => {
                let mut failed = QUARANTINE_FAILED.lock().unwrap_or_else(|p| p.into_inner());
                if failed.get_or_insert_with(HashSet::new).insert(src.clone()) {
                    tracing::error!(file = %rel, reason = %reason, error = %e, "unreadable action file could not be moved to quarantine; it is skipped");
                }
                Some(UnreadableAction { file: rel, quarantined: String::new(), reason })
            }
        }
    }

    /// The quarantined files of action `id` (`quarantine/actions/...`), oldest name first.
    pub fn quarantined_action_files(&self, id: &str) -> io::Result<Vec<String>> {
        validate_action_id(id).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (exact, prefix) = (format!("{id}.json"), format!("{id}--"));
        self.quarantined_action_files_where(|n| n == exact || n.starts_with(&format!("{exact}.")) || n.starts_with(&prefix))
    }

    /// The quarantined action files (`quarantine/actions/...`, not their `.reason`) whose file
    /// name `keep` accepts, oldest name first.
    pub fn quarantined_action_files_where(&self, keep: impl Fn(&str) -> bool) -> io::Result<Vec<String>> {
        Ok(list_names(&self.quarantine_kind_dir("actions"))?
            .into_iter()
            .filter(|n| !n.ends_with(".reason") && keep(n))
            .map(|n| crate::named::display::quarantined_action(&n))
            .collect())
    }

    /// [`DataRoot::find_action`] for people (`GET /api/v1/actions/{id}`, `hcp actions show`):
    /// the action, or why there is none to show: not found, or quarantined (its file did not
    /// parse). Never an error because of a file's content.
    pub fn get_action(&self, id: &str) -> Result<StoredAction, GetActionError> {
        validate_action_id(id)?;
        if let Some(found) = self.find_action(id)? {
            return Ok(found);
        }
        let files = self.quarantined_action_files(id)?;
        if files.is_empty() { Err(GetActionError::NotFound(id.to_owned())) } else { Err(GetActionError::Quarantined { id: id.to_owned(), files }) }
    }

    /// Reads the active action `<id>.json` in `state`, if there.
    pub fn read_active(&self, state: ActionState, id: &str) -> io::Result<Option<Action>> {
        validate_action_id(id).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.read_action_file(state, &format!("{id}.json"))
    }

    /// Finds an action by id: its active file if it has one, else the newest terminal one.
    pub fn find_action(&self, id: &str) -> io::Result<Option<StoredAction>> {
        validate_action_id(id).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Lifecycle order: a file only ever moves forward, so one that moves while we look is
        // found in a folder checked later, never missed.
        for state in [ActionState::Pending, ActionState::Approved, ActionState::Running] {
            if let Some(action) = self.read_active(state, id)? {
                return Ok(Some(StoredAction { state, file_name: format!("{id}.json"), action }));
            }
        }
        let prefix = format!("{id}--");
        let mut newest: Option<(String, ActionState)> = None;
        for state in ActionState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for name in list_names(&self.action_dir(state))? {
                if name.starts_with(&prefix) && newest.as_ref().is_none_or(|(n, _)| name.as_str() > n.as_str()) {
                    newest = Some((name, state));
                }
            }
        }
        let Some((name, state)) = newest else { return Ok(None) };
        match self.read_action_file(state, &name)? {
            Some(action) => Ok(Some(StoredAction { state, file_name: name, action })),
            // It was unreadable and is in quarantine now: an older one may still be there.
            None if !self.action_dir(state).join(&name).exists() && self.quarantined_action_files(id)?.iter().any(|q| q.ends_with(&name)) => {
                self.find_action(id)
            }
            None => Ok(None),
        }
    }

    /// The state of action `id` from file names only: its active folder, else the folder of its
    /// newest terminal file.
    fn state_by_name(&self, id: &str) -> Option<ActionState> {
        if let Some(s) = self.active_state(id) {
            return Some(s);
        }
        let prefix = format!("{id}--");
        let mut newest: Option<(String, ActionState)> = None;
        for state in ActionState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for name in list_names(&self.action_dir(state)).ok()? {
                if name.starts_with(&prefix) && newest.as_ref().is_none_or(|(n, _)| name.as_str() > n.as_str()) {
                    newest = Some((name, state));
                }
            }
        }
        newest.map(|(_, s)| s)
    }

    /// The state of the active action with this id (pending, approved or running), if any.
    pub fn active_state(&self, id: &str) -> Option<ActionState> {
        [ActionState::Pending, ActionState::Approved, ActionState::Running].into_iter().find(|s| self.action_dir(*s).join(format!("{id}.json")).exists())
    }

    /// Writes a new action into `pending/` or `approved/` (its `state` field says which).
    /// Refuses when an action with that id is already active anywhere.
    pub fn create_action(&self, action: &Action) -> Result<(), TransitionError> {
        validate_action_id(&action.id)?;
        let state = action.state;
        assert!(matches!(state, ActionState::Pending | ActionState::Approved), "new actions are pending or approved");
        let _lock = self.lock_action(&action.id)?;
        if let Some(existing) = self.active_state(&action.id) {
            return Err(TransitionError::AlreadyExists { id: action.id.clone(), state: existing });
        }
        let bytes = serde_json::to_vec_pretty(action).map_err(|e| io_err(&action.id, io::Error::other(e)))?;
        let path = self.action_dir(state).join(format!("{}.json", action.id));
        write_new(&path, &bytes).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => TransitionError::AlreadyExists { id: action.id.clone(), state },
            _ => io_err(&action.id, e),
        })
    }

    /// Moves the active action `id` from `from` to `to`, recording `by` and `note` in its
    /// history and applying `update` to its content (e.g. to set a result). Exactly one of
    /// several racing callers succeeds; the others get `NotInState` with the current state.
    pub fn transition(
        &self,
        id: &str,
        from: ActionState,
        to: ActionState,
        at: Timestamp,
        by: &str,
        note: Option<String>,
        update: impl FnOnce(&mut Action),
    ) -> Result<Action, TransitionError> {
        validate_action_id(id)?;
        if !from.can_move_to(to) {
            return Err(TransitionError::Invalid { from, to });
        }
        let _lock = self.lock_action(id)?;
        let src = self.action_dir(from).join(format!("{id}.json"));
        // By file names only: reading contents here could quarantine (and lock) under our lock.
        let not_there = || TransitionError::NotInState { id: id.to_owned(), expected: from, current: self.state_by_name(id) };
        let mut action: Action = match read_json_file(&src) {
            Ok(Some(a)) => a,
            Ok(None) => return Err(not_there()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                drop(_lock);
                self.quarantine_action_file(from, &format!("{id}.json"));
                return Err(not_there());
            }
            Err(e) => return Err(io_err(id, e)),
        };
        action.state = from;
        action.record(to, at, by, note);
        update(&mut action);
        let dst = self.action_dir(to).join(Self::action_file_name(id, to, at));
        // The new content first, swapped in place (never recreating a file someone moved), so
        // a reader never finds the file in its new folder with its old content; then the
        // rename into the new folder, which is what decides the transition.
        let bytes = serde_json::to_vec_pretty(&action).map_err(|e| io_err(id, io::Error::other(e)))?;
        let old = match swap_content(&src, &bytes) {
            Ok(old) => old,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_there()),
            Err(e) => return Err(io_err(id, e)),
        };
        if let Err(e) = rename_noreplace(&src, &dst) {
            // Lost the rename (a lock-less mover such as `mv`, or an action already there):
            // put the old content back if the file is still ours to touch.
            let _ = rustix::fs::renameat_with(rustix::fs::CWD, &old, rustix::fs::CWD, &src, rustix::fs::RenameFlags::EXCHANGE);
            let _ = std::fs::remove_file(&old);
            return Err(match e.kind() {
                io::ErrorKind::NotFound => not_there(),
                io::ErrorKind::AlreadyExists => TransitionError::AlreadyExists { id: id.to_owned(), state: to },
                _ => io_err(id, e),
            });
        }
        let _ = std::fs::remove_file(&old);
        // The move happened: a failed fsync of a folder now only risks the move's durability
        // across a power cut, so it is logged, and the caller is told the truth (it moved).
        for dir in [self.action_dir(to), self.action_dir(from)] {
            if let Err(e) = sync_dir(&dir) {
                tracing::warn!(action = id, dir = %dir.display(), error = %e, "action moved, but its folder could not be fsynced");
            }
        }
        Ok(action)
    }

    /// Rewrites the content of an active action in place (e.g. the executor's progress), under
    /// the action's lock. Fails with `NotInState` if it is no longer in `state`.
    pub fn update_active(&self, id: &str, state: ActionState, update: impl FnOnce(&mut Action)) -> Result<Action, TransitionError> {
        validate_action_id(id)?;
        let _lock = self.lock_action(id)?;
        let path = self.action_dir(state).join(format!("{id}.json"));
        let mut action: Action = match read_json_file(&path) {
            Ok(Some(a)) => a,
            Ok(None) => return Err(TransitionError::NotInState { id: id.to_owned(), expected: state, current: None }),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                drop(_lock);
                self.quarantine_action_file(state, &format!("{id}.json"));
                return Err(TransitionError::NotInState { id: id.to_owned(), expected: state, current: None });
            }
            Err(e) => return Err(io_err(id, e)),
        };
        action.state = state;
        update(&mut action);
        let bytes = serde_json::to_vec_pretty(&action).map_err(|e| io_err(id, io::Error::other(e)))?;
        match swap_content(&path, &bytes) {
            Ok(old) => {
                let _ = std::fs::remove_file(&old);
                // The new content is in place: a failed folder fsync is logged, not an error.
                if let Err(e) = sync_dir(&self.action_dir(state)) {
                    tracing::warn!(action = id, error = %e, "action updated, but its folder could not be fsynced");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(TransitionError::NotInState { id: id.to_owned(), expected: state, current: None });
            }
            Err(e) => return Err(io_err(id, e)),
        }
        Ok(action)
    }

    /// An exclusive advisory lock on one action id, released on drop (and by the kernel if
    /// the process dies).
    fn lock_action(&self, id: &str) -> Result<ActionLock, TransitionError> {
        let path = self.actions_dir().join(".locks").join(id);
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| io_err(id, e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| io_err(id, e.into()))?;
        Ok(ActionLock { _file: file })
    }
}

struct ActionLock {
    _file: File,
}

/// Held by the process that is running an action, for as long as it runs it. The kernel drops
/// it when that process dies, so a starting executor can tell an action whose runner is gone
/// (lock free) from one another live executor is running right now (lock held).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl DataRoot {
    /// Tries to take the run lock of action `id` (`actions/.locks/<id>.run`) without waiting:
    /// `Ok(None)` when another process holds it.
    pub fn try_lock_run(&self, id: &str) -> io::Result<Option<RunLock>> {
        validate_action_id(id).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let path = self.actions_dir().join(".locks").join(format!("{id}.run"));
        let file = File::options().create(true).truncate(false).write(true).open(&path)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(RunLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The action id a file name in a state's folder stands for, if it is a valid one.
fn action_id_of_file(state: ActionState, name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".json")?;
    let id = if state.is_active() { stem } else { stem.rsplit_once("--")?.0 };
    validate_action_id(id).ok().map(|()| id)
}

fn io_err(id: &str, source: io::Error) -> TransitionError {
    TransitionError::Io { id: id.to_owned(), source }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use homelab_core::{ActionType, Risk};

    /// A pending redeploy of `n1/web` created at `now`; `named`'s tests use it too.
    pub(crate) fn action(id: &str, now: Timestamp) -> Action {
        Action {
            id: id.into(),
            kind: ActionType::Redeploy,
            risk: Risk::Guarded,
            node: "n1".into(),
            service: Some("web".into()),
            drift: "unhealthy_service".into(),
            trigger: "http_check_failed".into(),
            root_cause: None,
            state: ActionState::Pending,
            created_at: now,
            updated_at: now,
            history: Vec::new(),
            result: None,
            generation: None,
        }
    }

    /// A reader looking for an action while it moves through its states always finds it, and
    /// never finds it in a new folder with old content.
    #[test]
    fn find_action_never_misses_a_moving_action() {
        let dir = std::env::temp_dir().join(format!("store-actions-{}", std::process::id()));
        let root = DataRoot::open(&dir).unwrap();
        let now = chrono::Utc::now();
        let ids: Vec<String> = (0..100).map(|i| format!("redeploy-n1-web{i}")).collect();
        for id in &ids {
            root.create_action(&action(id, now)).unwrap();
        }
        // The reader watches the very action being moved, to hit the moments between folders.
        let current = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mover = {
            let (root, ids, current) = (root.clone(), ids.clone(), current.clone());
            std::thread::spawn(move || {
                use ActionState::*;
                for (i, id) in ids.iter().enumerate() {
                    current.store(i, std::sync::atomic::Ordering::SeqCst);
                    for (from, to) in [(Pending, Approved), (Approved, Running), (Running, Completed)] {
                        root.transition(id, from, to, chrono::Utc::now(), "test", None, |a| {
                            if to == Completed {
                                a.result = Some(homelab_core::action::ActionResult { ok: true, ..Default::default() });
                            }
                        })
                        .unwrap();
                    }
                }
            })
        };
        let mut looks = 0u32;
        while !mover.is_finished() {
            let id = &ids[current.load(std::sync::atomic::Ordering::SeqCst)];
            let found = root.find_action(id).unwrap().unwrap_or_else(|| panic!("{id} not found while moving"));
            // A file in its new folder already carries what the transition wrote.
            if found.state == ActionState::Completed {
                assert!(found.action.result.is_some(), "{id} completed without its result");
                assert_eq!(found.action.history.last().map(|h| h.state), Some(ActionState::Completed));
            }
            looks += 1;
        }
        mover.join().unwrap();
        assert!(looks > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn temp_root(tag: &str) -> (PathBuf, DataRoot) {
        let dir = std::env::temp_dir().join(format!("store-actions-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = DataRoot::open(&dir).unwrap();
        (dir, root)
    }

    /// The folders (active and terminal) that hold a file of this id.
    fn folders_holding(root: &DataRoot, id: &str) -> Vec<ActionState> {
        ActionState::ALL
            .into_iter()
            .filter(|s| {
                list_names(&root.action_dir(*s)).unwrap().iter().any(|n| n == &format!("{id}.json") || (s.is_terminal() && n.starts_with(&format!("{id}--"))))
            })
            .collect()
    }

    #[test]
    fn an_unreadable_action_file_is_quarantined_once_with_its_reason() {
        let (dir, root) = temp_root("quarantine");
        let now = chrono::Utc::now();
        root.create_action(&action("redeploy-n1-ok", now)).unwrap();
        std::fs::write(root.action_dir(ActionState::Running).join("redeploy-n1-web.json"), "{\"id\": \"redeploy-n1-web\", trunc").unwrap();
        std::fs::write(root.action_dir(ActionState::Failed).join("redeploy-n1-db--20260101T000000.000Z.json"), "not json").unwrap();
        // The id is blocked while the corrupt file sits in running/.
        assert!(matches!(root.create_action(&action("redeploy-n1-web", now)), Err(TransitionError::AlreadyExists { .. })));
        // Listing running/ moves it aside; the others are still listed.
        assert!(root.list_actions(ActionState::Running).unwrap().is_empty());
        assert_eq!(root.list_actions(ActionState::Pending).unwrap().len(), 1);
        assert!(root.list_actions(ActionState::Failed).unwrap().is_empty());
        let q = root.quarantine_kind_dir("actions");
        let mut names = list_names(&q).unwrap();
        names.sort();
        assert_eq!(
            names,
            [
                "redeploy-n1-db--20260101T000000.000Z.json",
                "redeploy-n1-db--20260101T000000.000Z.json.reason",
                "redeploy-n1-web.json",
                "redeploy-n1-web.json.reason"
            ]
        );
        let reason = std::fs::read_to_string(q.join("redeploy-n1-web.json.reason")).unwrap();
        assert!(reason.contains("actions/running/redeploy-n1-web.json") && reason.contains("key must be a string"), "{reason}");
        assert_eq!(std::fs::read_to_string(q.join("redeploy-n1-web.json")).unwrap(), "{\"id\": \"redeploy-n1-web\", trunc", "moved, never rewritten");
        assert_eq!(root.quarantine_listing(10).unwrap().by_kind["actions"], 2);
        // For people: a clear answer, not an IO error.
        match root.get_action("redeploy-n1-web") {
            Err(GetActionError::Quarantined { files, .. }) => assert_eq!(files, ["quarantine/actions/redeploy-n1-web.json"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(root.get_action("redeploy-n1-none"), Err(GetActionError::NotFound(_))));
        assert_eq!(root.get_action("redeploy-n1-ok").unwrap().state, ActionState::Pending);
        // The id is free again; a second corrupt file of the same name does not overwrite the first.
        root.create_action(&action("redeploy-n1-web", now)).unwrap();
        assert_eq!(folders_holding(&root, "redeploy-n1-web"), [ActionState::Pending]);
        std::fs::write(root.action_dir(ActionState::Approved).join("redeploy-n1-x.json"), "[]").unwrap();
        std::fs::write(q.join("redeploy-n1-x.json"), "older").unwrap();
        assert!(root.read_active(ActionState::Approved, "redeploy-n1-x").unwrap().is_none());
        assert!(q.join("redeploy-n1-x.json.1").exists() && q.join("redeploy-n1-x.json.1.reason").exists());
        assert_eq!(std::fs::read_to_string(q.join("redeploy-n1-x.json")).unwrap(), "older");
        // A transition or an update of a corrupt file: "no such action", and it is quarantined.
        std::fs::write(root.action_dir(ActionState::Pending).join("redeploy-n1-y.json"), "{").unwrap();
        assert!(matches!(
            root.transition("redeploy-n1-y", ActionState::Pending, ActionState::Approved, now, "t", None, |_| {}),
            Err(TransitionError::NotInState { current: None, .. })
        ));
        assert!(!root.action_dir(ActionState::Pending).join("redeploy-n1-y.json").exists());
        std::fs::write(root.action_dir(ActionState::Running).join("redeploy-n1-z.json"), "{").unwrap();
        assert!(matches!(root.update_active("redeploy-n1-z", ActionState::Running, |_| {}), Err(TransitionError::NotInState { .. })));
        assert!(q.join("redeploy-n1-z.json").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Two threads create the same id at once, many times: exactly one wins each time, and the
    /// id is never in two folders, even with a corrupt file of it around.
    #[test]
    fn an_id_is_never_in_two_folders() {
        let (dir, root) = temp_root("one-folder");
        let now = chrono::Utc::now();
        for i in 0..50 {
            let id = format!("redeploy-n1-web{i}");
            if i % 2 == 0 {
                std::fs::write(root.action_dir(ActionState::Running).join(format!("{id}.json")), "{corrupt").unwrap();
            }
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
            let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let (root, id, barrier) = (root.clone(), id.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        // As the supervisor does: list (quarantining), then create.
                        let _ = root.list_actions(ActionState::Running).unwrap();
                        root.create_action(&action(&id, now)).is_ok()
                    })
                })
                .collect();
            let watcher = {
                let (root, id, barrier, seen) = (root.clone(), id.clone(), barrier.clone(), seen.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..200 {
                        let holding = folders_holding(&root, &id);
                        assert!(holding.len() <= 1, "{id} in {holding:?}");
                        if !holding.is_empty() {
                            seen.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                })
            };
            let wins: usize = workers.into_iter().map(|w| usize::from(w.join().unwrap())).sum();
            watcher.join().unwrap();
            assert_eq!(wins, 1, "{id}");
            assert_eq!(folders_holding(&root, &id), [ActionState::Pending]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
