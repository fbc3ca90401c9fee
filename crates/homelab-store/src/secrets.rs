//! `state/secrets/` and `state/ui_token`: small secret files, created with mode 0600 and never
//! logged. Tokens kept here stay out of hosts/, so hosts/ can live in git.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use crate::DataRoot;
use crate::atomic::{rename_noreplace, sync_parent, temp_path};

impl DataRoot {
    /// Reads the secret at `rel` (trimmed), or generates one with `generate`, writes it with mode
    /// 0600 (atomically, never replacing a file another process created meanwhile) and returns
    /// it. The flag says whether it was created now.
    pub(crate) fn read_or_create_secret(&self, rel: &str, generate: impl FnOnce() -> String) -> io::Result<(String, bool)> {
        let path = self.path().join(rel);
        match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => return Ok((s.trim().to_owned(), false)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))),
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let secret = generate();
        let tmp = temp_path(&path)?;
        let written = (|| {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(format!("{secret}\n").as_bytes())?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())));
        }
        // An empty file left behind is replaced; an existing non-empty one wins the race.
        let empty = std::fs::metadata(&path).map(|m| m.len() == 0).unwrap_or(false);
        let renamed = if empty { std::fs::rename(&tmp, &path) } else { rename_noreplace(&tmp, &path) };
        match renamed {
            Ok(()) => {
                sync_parent(&path)?;
                Ok((secret, true))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&tmp);
                Ok((std::fs::read_to_string(&path)?.trim().to_owned(), false))
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// The permission bits of a document (for checks and tests).
    pub fn file_mode(&self, doc: crate::Doc) -> io::Result<u32> {
        Ok(std::fs::metadata(self.path().join(doc.name()))?.permissions().mode() & 0o777)
    }

    /// `state/secrets/agent_tokens.json`: `{ "<node>": "<token>" }`. Missing file: empty map.
    pub fn read_agent_tokens(&self) -> io::Result<BTreeMap<String, String>> {
        Ok(self.read_json(crate::Doc::AgentTokens.name())?.unwrap_or_default())
    }

    /// Writes `state/secrets/agent_tokens.json` (atomically).
    pub fn write_agent_tokens(&self, tokens: &BTreeMap<String, String>) -> io::Result<()> {
        self.write_json(crate::Doc::AgentTokens.name(), tokens)
    }
}
