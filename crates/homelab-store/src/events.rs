//! `events/YYYY-MM-DD/<event file>.json` and `quarantine/events/`.

use std::io;
use std::path::PathBuf;

use homelab_core::Event;

use crate::atomic::{rename_noreplace, sync_dir, write_new};
use crate::{DataRoot, list_names};

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

    /// Day folders under `events/`, oldest first. Anything that is not a day is ignored.
    pub fn event_days(&self) -> io::Result<Vec<String>> {
        Ok(list_names(&self.events_dir())?
            .into_iter()
            .filter(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
            .collect())
    }

    /// File names in one day folder, sorted, without dot-files.
    pub fn event_files(&self, day: &str) -> io::Result<Vec<String>> {
        list_names(&self.events_dir().join(day))
    }

    pub fn event_path(&self, day: &str, file: &str) -> PathBuf {
        self.events_dir().join(day).join(file)
    }

    /// Moves an event file to `quarantine/events/` with a `.reason` file beside it. Never
    /// overwrites an earlier quarantined file of the same name: a numbered suffix is added.
    /// Returns the quarantined path.
    pub fn quarantine_event(&self, day: &str, file: &str, reason: &str) -> io::Result<PathBuf> {
        let from = self.event_path(day, file);
        let q = self.quarantine_dir();
        let mut n = 0u32;
        loop {
            let name = if n == 0 { file.to_owned() } else { format!("{file}.{n}") };
            let to = q.join(&name);
            // The reason goes first: a quarantined file never lacks its reason.
            let reason_path = q.join(format!("{name}.reason"));
            match write_new(&reason_path, format!("{reason}\n(from events/{day}/{file})\n").as_bytes()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    n += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            return match rename_noreplace(&from, &to) {
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

    /// Deletes a whole day folder (retention).
    pub fn remove_event_day(&self, day: &str) -> io::Result<()> {
        homelab_core::parse_compact_ts(&format!("{}T000000.000Z", day.replace('-', "")))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{day:?} is not a day folder")))?;
        std::fs::remove_dir_all(self.events_dir().join(day))?;
        sync_dir(&self.events_dir())
    }
}
