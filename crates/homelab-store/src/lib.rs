//! The data root (`/opt/homelab`): the only code that knows its folder names and how to
//! write into it safely.
//!
//! - Every write is atomic and durable: a `.`-prefixed temp file in the same folder, fsync,
//!   rename into place, fsync the folder ([`atomic::write_atomic`]).
//! - Moves that decide ownership use `renameat2(RENAME_NOREPLACE)`: whoever's rename wins owns
//!   the transition; the loser sees `NotFound` or `AlreadyExists` and backs off.
//! - Listings ignore names starting with `.` (temp files, locks).
//! - The [`watch`] module turns `notify` events into hints plus a periodic full rescan.

pub mod actions;
pub mod atomic;
pub mod audit;
pub mod check_now;
pub mod daemon;
pub mod deploys;
pub mod events;
pub mod hosts;
pub mod named;
pub mod outbox;
pub mod quarantine;
pub mod retry;
pub mod secrets;
pub mod silences;
pub mod users;
pub mod watch;

use std::io;
use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};

pub use actions::{GetActionError, TransitionError, UnreadableAction};
pub use atomic::{STALE_TEMP_AGE, remove_stale_temps, rename_noreplace, write_atomic};
pub use named::{Doc, Stamp};
pub use retry::{Backoff, WriteErrors, WriteFailure};

/// The folders every daemon may need; created at start.
pub const FOLDERS: &[&str] = &[
    "events",
    "quarantine/events",
    "quarantine/actions",
    "quarantine/check_now",
    "quarantine/outbox",
    "state/heartbeat",
    "state/secrets",
    "world",
    "actions/pending",
    "actions/approved",
    "actions/running",
    "actions/completed",
    "actions/failed",
    "actions/rejected",
    "actions/cancelled",
    "actions/.locks",
];

/// A handle on a data root. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DataRoot {
    root: PathBuf,
}

impl DataRoot {
    /// Opens a data root, creating its folders. Fails with a message naming the folder when the
    /// root is not writable.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<DataRoot> {
        let root = root.into();
        for f in FOLDERS {
            let dir = root.join(f);
            std::fs::create_dir_all(&dir).map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))?;
        }
        Ok(DataRoot { root })
    }

    /// A data root in a fresh temporary folder, for tests; it lasts as long as the `TempDir`.
    #[cfg(test)]
    pub(crate) fn temp() -> (tempfile::TempDir, DataRoot) {
        let tmp = tempfile::tempdir().unwrap();
        let root = DataRoot::open(tmp.path()).unwrap();
        (tmp, root)
    }

    /// A handle on an existing data root that creates nothing (dry runs, read-only tools).
    /// Fails with a message naming the folder when it does not exist.
    pub fn open_existing(root: impl Into<PathBuf>) -> io::Result<DataRoot> {
        let root = root.into();
        if !root.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("data root {} does not exist", root.display())));
        }
        Ok(DataRoot { root })
    }

    /// A handle that neither creates nor checks anything (probes such as `hcp health`: a
    /// missing root reads as missing files).
    pub fn at(root: impl Into<PathBuf>) -> DataRoot {
        DataRoot { root: root.into() }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn events_dir(&self) -> PathBuf {
        self.root.join("events")
    }

    pub fn world_dir(&self) -> PathBuf {
        self.root.join("world")
    }

    pub fn actions_dir(&self) -> PathBuf {
        self.root.join("actions")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine/events")
    }

    /// Reads a JSON file below the root; `Ok(None)` when it does not exist. Only for the
    /// store: other code asks for a document by name (`read_drift`, …).
    pub(crate) fn read_json<T: DeserializeOwned>(&self, rel: &str) -> io::Result<Option<T>> {
        read_json_file(&self.root.join(rel))
    }

    /// Writes a JSON file below the root atomically and durably (pretty-printed: people read these).
    pub(crate) fn write_json<T: Serialize>(&self, rel: &str, value: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        write_atomic(&self.root.join(rel), &bytes)
    }

    /// `world/services.json` and `world/nodes.json`.
    pub fn read_world(&self) -> io::Result<(Option<homelab_core::world::ServicesFile>, Option<homelab_core::world::NodesFile>)> {
        Ok((self.read_services()?, self.read_nodes()?))
    }

    pub fn write_world(&self, services: &homelab_core::world::ServicesFile, nodes: &homelab_core::world::NodesFile) -> io::Result<()> {
        self.write_json(Doc::Services.name(), services)?;
        self.write_json(Doc::Nodes.name(), nodes)
    }

    /// `world/drift.json`: the supervisor's whole view of drift, written at every reconcile.
    pub fn read_drift(&self) -> io::Result<Option<homelab_core::drift::DriftFile>> {
        self.read_json(Doc::Drift.name())
    }

    /// Writes `world/drift.json` atomically (the supervisor, at every reconcile).
    pub fn write_drift(&self, drift: &homelab_core::drift::DriftFile) -> io::Result<()> {
        self.write_json(Doc::Drift.name(), drift)
    }

    /// Writes `state/heartbeat/<daemon>.json`.
    pub fn write_heartbeat<T: Serialize>(&self, daemon: &str, value: &T) -> io::Result<()> {
        homelab_core::validate_name(daemon).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.write_json(&named::display::heartbeat(daemon), value)
    }

    /// Removes the temp files a crashed writer left anywhere a daemon writes: the root, every
    /// folder of [`FOLDERS`] (not `actions/.locks`), `state/` and each day folder of `events/`.
    /// Only files named like [`atomic::temp_path`] makes them and older than `older_than` (use
    /// [`STALE_TEMP_AGE`]: another daemon sharing the root may be mid-write). A folder that
    /// cannot be cleaned is logged and skipped. Returns how many files were removed.
    pub fn remove_stale_temps(&self, older_than: std::time::Duration) -> usize {
        let mut dirs = vec![self.root.clone(), self.state_dir(), self.actions_dir()];
        dirs.extend(FOLDERS.iter().filter(|f| **f != "actions/.locks").map(|f| self.root.join(f)));
        let events = self.events_dir();
        match std::fs::read_dir(&events) {
            Ok(rd) => dirs.extend(rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(dir = %events.display(), error = %e, "cannot look for leftover temp files"),
        }
        dirs.sort();
        dirs.dedup();
        let mut removed = 0;
        for dir in dirs {
            match atomic::remove_stale_temps(&dir, older_than) {
                Ok(n) => removed += n,
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot remove leftover temp files"),
            }
        }
        removed
    }

    /// Every daemon's heartbeat, by daemon name.
    pub fn read_heartbeats(&self) -> io::Result<std::collections::BTreeMap<String, serde_json::Value>> {
        let mut out = std::collections::BTreeMap::new();
        let dir = self.heartbeats_dir();
        for name in list_names(&dir)? {
            if let Some(stem) = name.strip_suffix(".json")
                && let Some(v) = read_json_file(&dir.join(&name))?
            {
                out.insert(stem.to_owned(), v);
            }
        }
        Ok(out)
    }
}

/// Reads and parses a JSON file; `Ok(None)` when it does not exist, an `InvalidData` error
/// naming the file when it does not parse.
pub fn read_json_file<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// The names in a folder, sorted, without dot-files. A missing folder is empty.
pub fn list_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = visible_entries(dir)?.iter().filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect();
    names.sort();
    Ok(names)
}

/// The entries of a folder but dot-files, unsorted. A missing folder is empty.
fn visible_entries(dir: &Path) -> io::Result<Vec<std::fs::DirEntry>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry?;
        if !entry.file_name().as_encoded_bytes().starts_with(b".") {
            out.push(entry);
        }
    }
    Ok(out)
}
