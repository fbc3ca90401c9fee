//! Crash-safe writes and ownership-deciding renames.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{CWD, RenameFlags, renameat_with};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp path next to `path`: `.<name>.<pid>.<n>.tmp`, ignored by every reader.
pub fn temp_path(path: &Path) -> io::Result<std::path::PathBuf> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no file name in {}", path.display())))?;
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

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("store-atomic-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
