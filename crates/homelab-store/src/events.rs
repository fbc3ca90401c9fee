//! `events/YYYY-MM-DD/<event file>.json` and `quarantine/events/`.

use std::io;
use std::path::PathBuf;

use homelab_core::Event;

use crate::atomic::{sync_dir, write_new};
use crate::{DataRoot, list_names};

/// What a folder entry is, as its folder says (symlinks are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

impl EntryKind {
    pub fn of(t: std::fs::FileType) -> EntryKind {
        if t.is_symlink() {
            EntryKind::Symlink
        } else if t.is_dir() {
            EntryKind::Dir
        } else if t.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        }
    }

    /// For a quarantine reason: "a symbolic link", "a folder", ...
    pub fn describe(self) -> &'static str {
        match self {
            EntryKind::File => "a regular file",
            EntryKind::Dir => "a folder",
            EntryKind::Symlink => "a symbolic link",
            EntryKind::Other => "a device, FIFO or socket",
        }
    }
}

/// An open day folder: its files are opened relative to it, so nothing can redirect a read
/// out of the data root between listing and reading.
#[derive(Debug)]
pub struct DayDir {
    fd: rustix::fd::OwnedFd,
}

impl DayDir {
    /// Reads an event file, refusing anything but a regular file: it is opened with
    /// `O_NOFOLLOW | O_NONBLOCK` (a symlink, a FIFO or a device is `NotARegularFile`). At most
    /// `max_len` bytes are accepted.
    pub fn read_event(&self, file: &str, max_len: u64) -> Result<Vec<u8>, ReadError> {
        use rustix::fs::{FileType, Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = match rustix::fs::openat(&self.fd, file, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if e == rustix::io::Errno::LOOP => return Err(ReadError::NotARegularFile),
            Err(e) => return Err(ReadError::Io(e.into())),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| ReadError::Io(e.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(ReadError::NotARegularFile);
        }
        let len = stat.st_size as u64;
        if len > max_len {
            return Err(ReadError::TooLarge(len));
        }
        // Event files are written whole and renamed into place, never appended to: reading the
        // size fstat gave is reading the file (no extra read to find the end).
        let mut bytes = vec![0u8; len as usize];
        let mut filled = 0;
        while filled < bytes.len() {
            match rustix::io::read(&fd, &mut bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(ReadError::Io(e.into())),
            }
        }
        bytes.truncate(filled);
        Ok(bytes)
    }
}

/// Why an event file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// A symlink, a folder, a device, or a file in a symlinked day folder.
    NotARegularFile,
    TooLarge(u64),
    Io(io::Error),
}

fn list_entries(dir: &std::path::Path) -> io::Result<Vec<(String, EntryKind)>> {
    let mut out = Vec::new();
    for entry in crate::visible_entries(dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = match entry.file_type() {
            Ok(t) => EntryKind::of(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.push((name, kind));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn check_day(day: &str) -> io::Result<()> {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(|_| ())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{day:?} is not a day folder")))
}

/// What happened when an event was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    New,
    /// A file with that name (same ts, node and id) is already there: ingest is idempotent.
    AlreadyThere,
}

impl DataRoot {
    /// Writes one event file atomically under its UTC day. Never overwrites.
    pub fn write_event(&self, event: &Event) -> io::Result<Written> {
        let day_dir = self.events_dir().join(event.day());
        std::fs::create_dir_all(&day_dir)?;
        let bytes = serde_json::to_vec(event).map_err(io::Error::other)?;
        match write_new(&day_dir.join(event.file_name()), &bytes) {
            Ok(()) => Ok(Written::New),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Written::AlreadyThere),
            Err(e) => Err(e),
        }
    }

    /// Every entry of `events/` (days and anything odd), without dot-files, with its type as the
    /// folder says it (symlinks are not followed).
    pub fn events_entries(&self) -> io::Result<Vec<(String, EntryKind)>> {
        list_entries(&self.events_dir())
    }

    /// Every entry of a day folder, without dot-files, with its type (symlinks not followed).
    pub fn day_entries(&self, day: &str) -> io::Result<Vec<(String, EntryKind)>> {
        list_entries(&self.events_dir().join(day))
    }

    /// When a day folder's list of entries last changed (its mtime): any file added, removed
    /// or renamed in it changes this.
    pub fn day_modified(&self, day: &str) -> io::Result<std::time::SystemTime> {
        std::fs::symlink_metadata(self.events_dir().join(day))?.modified()
    }

    /// What `events/<day>/<file>` is, without following a symlink; `None` when it is gone.
    pub fn event_entry_kind(&self, day: &str, file: &str) -> io::Result<Option<EntryKind>> {
        match std::fs::symlink_metadata(self.event_path(day, file)) {
            Ok(m) => Ok(Some(EntryKind::of(m.file_type()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens a day folder for reading its event files; refuses a symlinked day folder.
    pub fn open_day(&self, day: &str) -> Result<DayDir, ReadError> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::open(self.events_dir().join(day), flags, Mode::empty()) {
            Ok(fd) => Ok(DayDir { fd }),
            Err(e) if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR => Err(ReadError::NotARegularFile),
            Err(e) => Err(ReadError::Io(e.into())),
        }
    }

    /// Day folders under `events/`, oldest first. Anything that is not a day is ignored.
    pub fn event_days(&self) -> io::Result<Vec<String>> {
        Ok(list_names(&self.events_dir())?.into_iter().filter(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok()).collect())
    }

    /// File names in one day folder, sorted, without dot-files.
    pub fn event_files(&self, day: &str) -> io::Result<Vec<String>> {
        list_names(&self.events_dir().join(day))
    }

    pub fn event_path(&self, day: &str, file: &str) -> PathBuf {
        self.events_dir().join(day).join(file)
    }

    /// Moves any entry below `events/` (`<day>/<file>`, or `<name>` for an odd entry of
    /// `events/` itself: a symlink, a file, a folder that is not a day) to `quarantine/events/`
    /// with a `.reason` beside it. The entry itself is renamed, never followed or read. Never
    /// overwrites an earlier quarantined entry of the same name: a numbered suffix is added.
    /// Returns the quarantined path.
    pub fn quarantine_events_entry(&self, rel: &str, reason: &str) -> io::Result<PathBuf> {
        if rel.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad entry {rel:?}")));
        }
        let file = rel.rsplit('/').next().unwrap_or(rel);
        self.move_to_quarantine("events", &self.events_dir().join(rel), file, &format!("{reason}\n(from events/{rel})"))
    }

    /// Writes one segment of the observer's applied-files record:
    /// `state/observer/applied/<day>/<seq>.seg` (immutable once its checkpoint is written).
    pub fn write_applied_segment(&self, day: &str, seq: u64, bytes: &[u8]) -> io::Result<()> {
        check_day(day)?;
        let dir = self.applied_dir().join(day);
        std::fs::create_dir_all(&dir)?;
        crate::atomic::write_atomic(&dir.join(format!("{seq:012}.seg")), bytes)
    }

    /// Every applied-files segment on disk: `(day, seq)`, oldest first.
    pub fn applied_segments(&self) -> io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for day in list_names(&self.applied_dir())? {
            for name in list_names(&self.applied_dir().join(&day))? {
                if let Some(seq) = name.strip_suffix(".seg").and_then(|s| s.parse().ok()) {
                    out.push((day.clone(), seq));
                }
            }
        }
        Ok(out)
    }

    pub fn read_applied_segment(&self, day: &str, seq: u64) -> io::Result<Vec<u8>> {
        check_day(day)?;
        std::fs::read(self.applied_dir().join(day).join(format!("{seq:012}.seg")))
    }

    pub fn remove_applied_segment(&self, day: &str, seq: u64) -> io::Result<()> {
        check_day(day)?;
        match std::fs::remove_file(self.applied_dir().join(day).join(format!("{seq:012}.seg"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes a day's whole applied-files record (after retention deleted the day).
    pub fn remove_applied_day(&self, day: &str) -> io::Result<()> {
        check_day(day)?;
        match std::fs::remove_dir_all(self.applied_dir().join(day)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn applied_dir(&self) -> PathBuf {
        self.state_dir().join("observer/applied")
    }

    /// Deletes a whole day folder (retention).
    pub fn remove_event_day(&self, day: &str) -> io::Result<()> {
        homelab_core::parse_compact_ts(&format!("{}T000000.000Z", day.replace('-', "")))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{day:?} is not a day folder")))?;
        std::fs::remove_dir_all(self.events_dir().join(day))?;
        sync_dir(&self.events_dir())
    }
}
