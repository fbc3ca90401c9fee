//! `actions/<state>/`: the folder is the state, a rename is a transition.
//!
//! A transition takes a per-action advisory lock (`actions/.locks/<id>`), swaps the new content
//! into the file where it is (`RENAME_EXCHANGE`, which fails rather than recreate a file someone
//! moved away), then renames it into the new folder with `RENAME_NOREPLACE`: that rename decides
//! who owns the transition. So a file never sits in its new folder with its old content. The
//! lock only makes sure the next mover reads the content after the previous mover's entry is
//! in; it decides nothing. A plain `mv` by an operator is also a valid transition: readers take
//! the state from the folder, not from the content.

use std::fs::File;
use std::io;
use std::path::PathBuf;

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

    /// Every action in a state's folder, sorted by file name. Files that do not parse are
    /// skipped with a warning: one bad file must not hide the others.
    pub fn list_actions(&self, state: ActionState) -> io::Result<Vec<StoredAction>> {
        let dir = self.action_dir(state);
        let mut out = Vec::new();
        for name in list_names(&dir)? {
            if !name.ends_with(".json") {
                continue;
            }
            match read_json_file::<Action>(&dir.join(&name)) {
                Ok(Some(mut action)) => {
                    action.state = state;
                    out.push(StoredAction { state, file_name: name, action });
                }
                Ok(None) => {} // moved away between listing and reading
                Err(e) => tracing::warn!(file = %dir.join(&name).display(), error = %e, "skipping unreadable action file"),
            }
        }
        Ok(out)
    }

    /// Reads the active action `<id>.json` in `state`, if there.
    pub fn read_active(&self, state: ActionState, id: &str) -> io::Result<Option<Action>> {
        validate_action_id(id).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut a: Option<Action> = read_json_file(&self.action_dir(state).join(format!("{id}.json")))?;
        if let Some(a) = &mut a {
            a.state = state;
        }
        Ok(a)
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
        Ok(read_json_file::<Action>(&self.action_dir(state).join(&name))?.map(|mut action| {
            action.state = state;
            StoredAction { state, file_name: name, action }
        }))
    }

    /// The state of the active action with this id (pending, approved or running), if any.
    pub fn active_state(&self, id: &str) -> Option<ActionState> {
        [ActionState::Pending, ActionState::Approved, ActionState::Running]
            .into_iter()
            .find(|s| self.action_dir(*s).join(format!("{id}.json")).exists())
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
        let not_there = || TransitionError::NotInState { id: id.to_owned(), expected: from, current: self.find_action(id).ok().flatten().map(|s| s.state) };
        let mut action: Action = match read_json_file(&src) {
            Ok(Some(a)) => a,
            Ok(None) => return Err(not_there()),
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
        sync_dir(&self.action_dir(to)).map_err(|e| io_err(id, e))?;
        sync_dir(&self.action_dir(from)).map_err(|e| io_err(id, e))?;
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
            Err(e) => return Err(io_err(id, e)),
        };
        action.state = state;
        update(&mut action);
        let bytes = serde_json::to_vec_pretty(&action).map_err(|e| io_err(id, io::Error::other(e)))?;
        match swap_content(&path, &bytes) {
            Ok(old) => {
                let _ = std::fs::remove_file(&old);
                sync_dir(&self.action_dir(state)).map_err(|e| io_err(id, e))?;
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

fn io_err(id: &str, source: io::Error) -> TransitionError {
    TransitionError::Io { id: id.to_owned(), source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homelab_core::{ActionType, Risk};

    fn action(id: &str, now: Timestamp) -> Action {
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
}
