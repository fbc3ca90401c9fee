//! `state/outbox/`: notification messages waiting to be sent, one file per message and
//! channel (`<seq>-<channel>.json`), written atomically before anything is sent and removed only
//! after the receiver accepted it. Names sort in the order the messages were made. A message a
//! receiver refused for good is moved to `quarantine/outbox/` with its reason.

use std::io;

use crate::{DataRoot, list_names, write_atomic};

/// The folder, relative to the data root.
pub const OUTBOX_DIR: &str = "state/outbox";

impl DataRoot {
    pub fn outbox_dir(&self) -> std::path::PathBuf {
        self.path().join(OUTBOX_DIR)
    }

    /// Writes one outbox file (a name like `00000012-webhook.json`) atomically and durably.
    pub fn write_outbox<T: serde::Serialize>(&self, name: &str, value: &T) -> io::Result<()> {
        check_name(name)?;
        std::fs::create_dir_all(self.outbox_dir())?;
        let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        write_atomic(&self.outbox_dir().join(name), &bytes)
    }

    /// The outbox's file names, oldest message first.
    pub fn list_outbox(&self) -> io::Result<Vec<String>> {
        Ok(list_names(&self.outbox_dir())?.into_iter().filter(|n| n.ends_with(".json")).collect())
    }

    pub fn read_outbox<T: serde::de::DeserializeOwned>(&self, name: &str) -> io::Result<Option<T>> {
        check_name(name)?;
        self.read_json(&format!("{OUTBOX_DIR}/{name}"))
    }

    /// Removes a sent message's file and makes the removal durable (fsync of the folder).
    pub fn remove_outbox(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        match std::fs::remove_file(self.outbox_dir().join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        std::fs::File::open(self.outbox_dir())?.sync_all()
    }

    /// Moves an outbox file that a receiver refused for good to `quarantine/outbox/<name>` with
    /// `reason` beside it: it no longer holds up its channel, and a person can read it (and move
    /// it back into `state/outbox/` to send it again, with the same id). Returns the quarantined
    /// path relative to the data root.
    pub fn quarantine_outbox(&self, name: &str, reason: &str) -> io::Result<String> {
        check_name(name)?;
        let to = self.move_to_quarantine("outbox", &self.outbox_dir().join(name), name, &format!("{reason}\n(from {OUTBOX_DIR}/{name})"))?;
        Ok(format!("quarantine/outbox/{}", to.file_name().unwrap_or_default().to_string_lossy()))
    }
}

fn check_name(name: &str) -> io::Result<()> {
    let ok = !name.is_empty() && !name.starts_with('.') && name.len() <= 120 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok { Ok(()) } else { Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not an outbox file name"))) }
}
