//! Crash-safe writes and ownership-deciding renames.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{CWD, RenameFlags, renameat_with};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp path next to `path`: `.<name>.<pid>.<n>.tmp`, ignored by every reader.
pub fn temp_path(path: &Path) -> io::Result<std::path::PathBuf> {
    let name =
        path.file_name().and_then(|n| n.to_str()).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no file name in {}", path.display())))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id())))
}

/// Writes `bytes` to a temp file in the same folder, fsyncs it, renames it over `path` and
/// fsyncs the folder. Readers see the old content or the new, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io::Error::new(e.kind(), format!("cannot rename into {}: {e}", path.display())));
    }
    sync_parent(path)
}

/// Like [`write_atomic`] but never replaces an existing file: `AlreadyExists` if `path` exists.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    if let Err(e) = rename_noreplace(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path)
}

/// Replaces the content of an existing file atomically, and only if it still exists: the new
/// content goes into a temp file that is swapped with `path` by `renameat2(RENAME_EXCHANGE)`.
/// Unlike a plain rename it never recreates a file that someone moved away (`NotFound`).
/// Returns the temp path, which now holds the old content: the caller removes it (or swaps it
/// back to undo).
pub fn swap_content(path: &Path, bytes: &[u8]) -> io::Result<std::path::PathBuf> {
    let tmp = write_temp(path, bytes)?;
    if let Err(e) = renameat_with(CWD, &tmp, CWD, path, RenameFlags::EXCHANGE) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io::Error::from(e));
    }
    Ok(tmp)
}

/// Writes and fsyncs a temp file beside `path`; returns its path.
pub fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<std::path::PathBuf> {
    let tmp = temp_path(path)?;
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io::Error::new(e.kind(), format!("cannot write {}: {e}", tmp.display())));
    }
    Ok(tmp)
}

/// `renameat2(from, to, RENAME_NOREPLACE)`: fails with `AlreadyExists` if `to` exists and with
/// `NotFound` if `from` is gone (someone else moved it first). Does not fsync.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(io::Error::from)
}

/// fsyncs the folder holding `path`, so a rename into it survives a power cut.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir)?.sync_all()
}

/// How old a temp file must be before [`remove_stale_temps`] takes it for a crash leftover:
/// other daemons sharing the root may be writing one right now, and a write takes milliseconds.
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// True for the names [`temp_path`] makes: `.<name>.<pid>.<n>.tmp`.
pub fn is_temp_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { return false };
    let mut parts = inner.rsplitn(3, '.');
    let (Some(n), Some(pid), Some(base)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(n) && digits(pid) && !base.is_empty()
}

/// Removes the temp files a crashed writer left in `dir` (not in its subfolders): regular files
/// named `.<name>.<pid>.<n>.tmp` not modified for `older_than` (use [`STALE_TEMP_AGE`]).
/// Nothing else is touched: not lock files, not other dot-files, not symlinks. A missing folder
/// holds nothing. Returns how many were removed.
pub fn remove_stale_temps(dir: &Path, older_than: std::time::Duration) -> io::Result<usize> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io::Error::new(e.kind(), format!("cannot list {}: {e}", dir.display()))),
    };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in rd {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if !is_temp_name(&name) {
            continue;
        }
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // renamed or removed meanwhile
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or_default();
        if age < older_than {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("cannot remove {}: {e}", path.display()))),
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed temp files left by an interrupted write");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile_dir();
        let p = dir.join("a.json");
        write_atomic(&p, b"1").unwrap();
        write_atomic(&p, b"2").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"2");
        assert_eq!(crate::list_names(&dir).unwrap(), ["a.json"]);
        let hidden = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(hidden, 1, "no temp file left behind");
    }

    #[test]
    fn noreplace_refuses_existing_and_reports_missing() {
        let dir = tempfile_dir();
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b").unwrap();
        assert_eq!(rename_noreplace(&a, &b).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
        assert_eq!(rename_noreplace(&dir.join("gone"), &dir.join("c")).unwrap_err().kind(), io::ErrorKind::NotFound);
        write_new(&dir.join("n"), b"x").unwrap();
        assert_eq!(write_new(&dir.join("n"), b"y").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(dir.join("n")).unwrap(), b"x");
    }

    #[test]
    fn swap_content_replaces_but_never_recreates() {
        let dir = tempfile_dir();
        let p = dir.join("a.json");
        std::fs::write(&p, "old").unwrap();
        let old = swap_content(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::read(&old).unwrap(), b"old");
        std::fs::remove_file(&old).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(swap_content(&p, b"again").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(!p.exists(), "a moved-away file is not recreated");
        assert_eq!(crate::list_names(&dir).unwrap().len(), 0);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no temp file left behind");
    }

    #[test]
    fn temp_names() {
        let p = temp_path(Path::new("/r/world/services.json")).unwrap();
        assert!(is_temp_name(p.file_name().unwrap().to_str().unwrap()));
        assert!(is_temp_name(".x--20260527T140311.123Z.json.12.0.tmp"));
        for other in ["services.json", ".locks", ".x.json.tmp", ".x.json.12.tmp", ".x.json.a.1.tmp", "..1.2.tmp", "x.json.1.2.tmp"] {
            assert!(!is_temp_name(other), "{other}");
        }
    }

    #[test]
    fn stale_temps_are_removed_fresh_ones_and_others_kept() {
        let dir = tempfile_dir();
        let old = dir.join(".a.json.999999.1.tmp");
        let fresh = dir.join(".b.json.999999.2.tmp");
        std::fs::write(&old, "partial").unwrap();
        std::fs::write(&fresh, "partial").unwrap();
        std::fs::write(dir.join("a.json"), "whole").unwrap();
        std::fs::write(dir.join(".hidden"), "keep").unwrap();
        std::fs::create_dir(dir.join(".c.json.1.3.tmp")).unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options().write(true).open(&old).unwrap().set_modified(hour_ago).unwrap();
        assert_eq!(remove_stale_temps(&dir, STALE_TEMP_AGE).unwrap(), 1);
        assert!(!old.exists());
        assert!(fresh.exists(), "a temp file younger than the age may be mid-write");
        assert!(dir.join("a.json").exists() && dir.join(".hidden").exists() && dir.join(".c.json.1.3.tmp").is_dir());
        assert_eq!(remove_stale_temps(&dir.join("missing"), STALE_TEMP_AGE).unwrap(), 0);
        assert_eq!(remove_stale_temps(&dir, std::time::Duration::ZERO).unwrap(), 1);
        assert!(!fresh.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn data_root_cleans_every_folder_it_writes() {
        let dir = tempfile_dir();
        let root = crate::DataRoot::open(&dir).unwrap();
        std::fs::create_dir_all(dir.join("events/2026-05-27")).unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let plant = |rel: &str| {
            let p = dir.join(rel);
            std::fs::write(&p, "partial").unwrap();
            File::options().write(true).open(&p).unwrap().set_modified(hour_ago).unwrap();
            p
        };
        let planted = [
            plant("events/2026-05-27/.20260527T140311.123Z-n1-abcdef01.json.7.0.tmp"),
            plant("world/.services.json.7.1.tmp"),
            plant("state/.supervisor.json.7.2.tmp"),
            plant("state/heartbeat/.executor.json.7.3.tmp"),
            plant("actions/completed/.x--20260527T140311.123Z.json.7.4.tmp"),
        ];
        assert_eq!(root.remove_stale_temps(STALE_TEMP_AGE), planted.len());
        assert!(planted.iter().all(|p| !p.exists()));
        assert!(dir.join("actions/.locks").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("store-atomic-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
