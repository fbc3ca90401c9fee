//! What sits in `quarantine/events/`, `quarantine/actions/`, `quarantine/check_now/` and
//! `quarantine/outbox/` (messages a receiver refused for good), listed for people (the UI's
//! `/summary`, dashboard and metrics), and the one way entries get there
//! ([`DataRoot::move_to_quarantine`]).
//!
//! A quarantined entry may be anything the observer (or another daemon) moved aside: a file, a
//! symlink, a directory, a device. The listing never follows a symlink and never opens an entry:
//! it reads only the entry's `<name>.reason` file (opened with `O_NOFOLLOW | O_NONBLOCK`, checked
//! to be a regular file, at most [`MAX_REASON_BYTES`] read). A missing or unreadable reason gives a
//! placeholder reason, never an error.
//!
//! Which names are entries: every name not starting with `.`, except reason files. `X.reason` is
//! a reason file unless `X.reason.reason` exists too (then `X.reason` is itself a quarantined
//! entry whose name happens to end in `.reason`). A reason file without its entry (a crash
//! between writing the reason and moving the entry) is not counted.
//!
//! Cost: one `readdir` per folder and one `lstat` per entry (for its time); only the newest
//! `limit` reason files are read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::Path;

use homelab_core::Timestamp;

use crate::atomic::{rename_noreplace, sync_dir, write_new};
use crate::{DataRoot, list_names};

/// The quarantine folders below the data root, by kind.
pub const QUARANTINE_KINDS: [&str; 4] = ["events", "actions", "check_now", "outbox"];

/// At most this much of a reason file is read.
pub const MAX_REASON_BYTES: u64 = 4096;

/// One quarantined entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// `events`, `actions`, `check_now` or `outbox`.
    pub kind: &'static str,
    /// Relative to the data root: `quarantine/events/<name>`.
    pub file: String,
    /// The reason file's text, trimmed, or a placeholder saying why there is none.
    pub reason: String,
    /// When it was quarantined: the reason file's modification time (else the entry's own,
    /// without following a symlink).
    pub at: Timestamp,
}

/// What is quarantined now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuarantineListing {
    /// Entries per kind (`events`, `actions`, `check_now`, `outbox`); every key is always present.
    pub by_kind: BTreeMap<&'static str, usize>,
    /// The newest entries of all kinds, newest first (ties by file name), at most `limit`.
    pub recent: Vec<QuarantineEntry>,
}

impl QuarantineListing {
    /// Entries of every kind.
    pub fn count(&self) -> usize {
        self.by_kind.values().sum()
    }
}

impl DataRoot {
    /// `quarantine/<kind>/` (`events`, `actions`, `check_now` or `outbox`).
    pub fn quarantine_kind_dir(&self, kind: &str) -> std::path::PathBuf {
        self.path().join("quarantine").join(kind)
    }

    /// Moves the entry `from` (renamed, never followed or read) to `quarantine/<kind>/<file>`
    /// with `<file>.reason` holding `reason`, written first: a quarantined entry never lacks its
    /// reason. Never overwrites an earlier entry of the same name: a numbered suffix is added.
    /// Both folders are fsynced. Returns the quarantined path.
    pub(crate) fn move_to_quarantine(&self, kind: &str, from: &Path, file: &str, reason: &str) -> io::Result<std::path::PathBuf> {
        let q = self.quarantine_kind_dir(kind);
        std::fs::create_dir_all(&q)?;
        let mut n = 0u32;
        loop {
            let name = if n == 0 { file.to_owned() } else { format!("{file}.{n}") };
            let to = q.join(&name);
            let reason_path = q.join(format!("{name}.reason"));
            match write_new(&reason_path, format!("{reason}\n").as_bytes()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    n += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            return match rename_noreplace(from, &to) {
                Ok(()) => {
                    sync_dir(&q)?;
                    if let Some(parent) = from.parent() {
                        sync_dir(parent)?;
                    }
                    Ok(to)
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&reason_path);
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        n += 1;
                        continue;
                    }
                    Err(e)
                }
            };
        }
    }

    /// Lists the quarantine folders: counts and the `limit` newest entries with their reasons.
    /// A missing folder is empty. Fails only when a folder exists but cannot be listed.
    pub fn quarantine_listing(&self, limit: usize) -> io::Result<QuarantineListing> {
        let mut out = QuarantineListing::default();
        // (at, file, kind, dir, name) of every entry; only the newest get their reason read.
        let mut all: Vec<(Timestamp, String, &'static str, std::path::PathBuf, String)> = Vec::new();
        for kind in QUARANTINE_KINDS {
            let dir = self.quarantine_kind_dir(kind);
            let names = list_names(&dir).map_err(|e| io::Error::new(e.kind(), format!("cannot list {}: {e}", dir.display())))?;
            let set: BTreeSet<&str> = names.iter().map(String::as_str).collect();
            let mut n = 0;
            for name in &names {
                if name.ends_with(".reason") && !set.contains(format!("{name}.reason").as_str()) {
                    continue;
                }
                n += 1;
                let at = mtime(&dir.join(format!("{name}.reason"))).or_else(|| mtime(&dir.join(name))).unwrap_or_default();
                all.push((at, format!("quarantine/{kind}/{name}"), kind, dir.clone(), name.clone()));
            }
            out.by_kind.insert(kind, n);
        }
        all.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        all.truncate(limit);
        out.recent = all
            .into_iter()
            .map(|(at, file, kind, dir, name)| QuarantineEntry { kind, file, reason: read_reason(&dir.join(format!("{name}.reason"))), at })
            .collect();
        Ok(out)
    }

    /// Every daemon's heartbeat file, by daemon name, each parsed on its own: a file that is not
    /// JSON is an `Err` with the parse error for that daemon only, so one corrupt heartbeat does
    /// not hide the others (unlike [`DataRoot::read_heartbeats`], which fails as a whole).
    pub fn read_heartbeats_each(&self) -> io::Result<BTreeMap<String, Result<serde_json::Value, String>>> {
        let dir = self.heartbeats_dir();
        let mut out = BTreeMap::new();
        for name in list_names(&dir)? {
            let Some(stem) = name.strip_suffix(".json") else { continue };
            match crate::read_json_file::<serde_json::Value>(&dir.join(&name)) {
                Ok(Some(v)) => {
                    out.insert(stem.to_owned(), Ok(v));
                }
                Ok(None) => {}
                Err(e) => {
                    out.insert(stem.to_owned(), Err(e.to_string()));
                }
            }
        }
        Ok(out)
    }
}

/// Modification time without following a symlink.
fn mtime(path: &Path) -> Option<Timestamp> {
    let modified = std::fs::symlink_metadata(path).ok()?.modified().ok()?;
    Some(chrono::DateTime::<chrono::Utc>::from(modified))
}

/// The trimmed text of a reason file, or a placeholder. Never follows a symlink, never blocks on
/// a FIFO, reads at most [`MAX_REASON_BYTES`].
fn read_reason(path: &Path) -> String {
    use rustix::fs::{Mode, OFlags};
    let fd = match rustix::fs::open(path, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return "(no reason file)".into(),
        Err(rustix::io::Errno::LOOP) => return "(reason file is a symlink; not followed)".into(),
        Err(e) => return format!("(reason file unreadable: {})", io::Error::from(e)),
    };
    let file = std::fs::File::from(fd);
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return "(reason file is not a regular file)".into(),
        Err(e) => return format!("(reason file unreadable: {e})"),
    }
    let mut bytes = Vec::new();
    if let Err(e) = file.take(MAX_REASON_BYTES).read_to_end(&mut bytes) {
        return format!("(reason file unreadable: {e})");
    }
    let text = String::from_utf8_lossy(&bytes);
    let text: String = text.chars().map(|c| if c.is_control() && c != '\n' { ' ' } else { c }).collect();
    let text = text.trim();
    if text.is_empty() { "(empty reason file)".into() } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::time::{Duration, SystemTime};

    fn set_mtime(path: &Path, secs_ago: u64) {
        let t = SystemTime::now() - Duration::from_secs(secs_ago);
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(t).unwrap();
    }

    #[test]
    fn lists_files_symlinks_and_directories_without_following() {
        let tmp = std::env::temp_dir().join(format!("store-quarantine-{}-{}", std::process::id(), line!()));
        let _ = std::fs::remove_dir_all(&tmp);
        let root = DataRoot::open(&tmp).unwrap();
        let q = root.quarantine_kind_dir("events");
        // A file with its reason, a symlink to outside (dangling, too), a directory, an orphan
        // reason, a dot-file, and an entry whose name ends in .reason.
        std::fs::write(q.join("bad.json"), "{").unwrap();
        std::fs::write(q.join("bad.json.reason"), "  invalid: expected value\n(from events/2026-05-27/bad.json)\n\n").unwrap();
        set_mtime(&q.join("bad.json.reason"), 300);
        symlink("/etc/shadow", q.join("link.json")).unwrap();
        std::fs::write(q.join("link.json.reason"), "not_regular_file: a symlink").unwrap();
        set_mtime(&q.join("link.json.reason"), 200);
        std::fs::create_dir(q.join("dir.json")).unwrap();
        std::fs::write(q.join("dir.json/inside"), "never read").unwrap();
        std::fs::write(q.join("dir.json.reason"), "not_regular_file: a directory").unwrap();
        set_mtime(&q.join("dir.json.reason"), 100);
        std::fs::write(q.join("orphan.json.reason"), "entry never moved").unwrap();
        std::fs::write(q.join(".tmp.json"), "").unwrap();
        std::fs::write(q.join("x.reason"), "").unwrap();
        std::fs::write(q.join("x.reason.reason"), "named like a reason").unwrap();
        set_mtime(&q.join("x.reason.reason"), 400);
        // A reason that is itself a symlink is not followed.
        std::fs::write(q.join("sneaky.json"), "").unwrap();
        symlink("/etc/hostname", q.join("sneaky.json.reason")).unwrap();

        let l = root.quarantine_listing(20).unwrap();
        assert_eq!(l.by_kind.get("events"), Some(&5));
        assert_eq!(l.by_kind.get("actions"), Some(&0));
        assert_eq!(l.count(), 5);
        let files: Vec<&str> = l.recent.iter().map(|e| e.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "quarantine/events/sneaky.json",
                "quarantine/events/dir.json",
                "quarantine/events/link.json",
                "quarantine/events/bad.json",
                "quarantine/events/x.reason"
            ]
        );
        assert_eq!(l.recent[0].reason, "(reason file is a symlink; not followed)");
        assert_eq!(l.recent[3].reason, "invalid: expected value\n(from events/2026-05-27/bad.json)");
        assert_eq!(l.recent[4].reason, "named like a reason");
        assert!(l.recent[1].at > l.recent[2].at && l.recent[2].at > l.recent[3].at);

        // quarantine/actions/ may be missing: still a listing.
        std::fs::remove_dir_all(root.quarantine_kind_dir("actions")).unwrap();
        std::fs::create_dir(root.quarantine_kind_dir("actions")).unwrap();
        std::fs::write(root.quarantine_kind_dir("actions").join("a.json"), "").unwrap();
        let l = root.quarantine_listing(2).unwrap();
        assert_eq!((l.count(), l.recent.len()), (6, 2));
        assert_eq!(l.recent[0].reason, "(no reason file)");
        std::fs::remove_dir_all(root.quarantine_kind_dir("actions")).unwrap();
        assert_eq!(root.quarantine_listing(20).unwrap().by_kind.get("actions"), Some(&0));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
