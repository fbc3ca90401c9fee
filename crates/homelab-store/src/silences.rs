//! `state/silences/<id>.json`: one file per silence, written atomically, so the UI, `hcp` and
//! Telegram can add and expire silences at the same time without losing each other's.

use std::io;

use homelab_core::Timestamp;
use homelab_core::silence::{Silence, valid_id};

use crate::{DataRoot, list_names, write_atomic};

/// The folder, relative to the data root.
pub const SILENCES_DIR: &str = "state/silences";

impl DataRoot {
    pub fn silences_dir(&self) -> std::path::PathBuf {
        self.path().join(SILENCES_DIR)
    }

    /// Every silence on record (active and ended), newest first. An unreadable file is logged and
    /// skipped.
    pub fn list_silences(&self) -> io::Result<Vec<Silence>> {
        let mut out = Vec::new();
        for name in list_names(&self.silences_dir())? {
            let Some(id) = name.strip_suffix(".json").filter(|id| valid_id(id)) else { continue };
            match self.read_silence(id) {
                Ok(Some(s)) => out.push(s),
                Ok(None) => {}
                Err(e) => tracing::warn!(file = %format!("{SILENCES_DIR}/{name}"), error = %e, "unreadable silence file; ignored"),
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        Ok(out)
    }

    pub fn read_silence(&self, id: &str) -> io::Result<Option<Silence>> {
        if !valid_id(id) {
            return Ok(None);
        }
        self.read_json(&format!("{SILENCES_DIR}/{id}.json"))
    }

    /// Writes (creates or replaces) a silence's file atomically.
    pub fn write_silence(&self, s: &Silence) -> io::Result<()> {
        if !valid_id(&s.id) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{:?} is not a silence id", s.id)));
        }
        std::fs::create_dir_all(self.silences_dir())?;
        let bytes = serde_json::to_vec_pretty(s).map_err(io::Error::other)?;
        write_atomic(&self.silences_dir().join(format!("{}.json", s.id)), &bytes)
    }

    /// Removes the files of silences that ended more than a week ago. Returns how many.
    pub fn prune_silences(&self, now: Timestamp) -> io::Result<usize> {
        let mut n = 0;
        for s in self.list_silences()?.into_iter().filter(|s| !s.is_kept(now)) {
            match std::fs::remove_file(self.silences_dir().join(format!("{}.json", s.id))) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}
