//! Reading `hosts/<folder>/services.yaml`, with the last good version of each file kept in
//! force when a file stops validating (a typo must never read as "every service removed").

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use homelab_core::desired::{ConfigError, DesiredState, HostFile, parse_host_file};

use crate::list_names;

/// The outcome of reading hosts/: what is in force, and what is wrong.
#[derive(Debug, Clone, Default)]
pub struct HostsLoad {
    /// In force: every valid file, plus the last good version of each invalid one.
    pub desired: DesiredState,
    /// Per folder, the file in force (for persisting as the new "last good").
    pub in_force: BTreeMap<String, HostFile>,
    /// Every problem, with file, line and column.
    pub errors: Vec<ConfigError>,
}

/// Parses every `services.yaml` below `hosts_dir` without any fallback. Folders without a
/// `services.yaml` and dot-folders are ignored. Per folder: the parsed file or its errors.
pub fn read_hosts(hosts_dir: &Path) -> io::Result<BTreeMap<String, Result<HostFile, Vec<ConfigError>>>> {
    if !hosts_dir.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("hosts folder {} does not exist", hosts_dir.display())));
    }
    let mut out = BTreeMap::new();
    for folder in list_names(hosts_dir)? {
        let path = hosts_dir.join(&folder).join("services.yaml");
        if !path.is_file() {
            continue;
        }
        let shown = path.display().to_string();
        let parsed = match std::fs::read_to_string(&path) {
            Ok(text) => parse_host_file(&shown, &folder, &text),
            Err(e) => Err(vec![ConfigError { file: shown, line: 0, column: 0, message: format!("cannot read: {e}"), hint: None }]),
        };
        out.insert(folder, parsed);
    }
    Ok(out)
}

/// Reads hosts/ and merges with `last_good` (per folder): an invalid file keeps its last good
/// version in force; a folder whose file was deleted is gone. Two folders claiming the same
/// node name are an error; the first (by folder name) stays.
pub fn load_hosts(hosts_dir: &Path, last_good: &BTreeMap<String, HostFile>) -> io::Result<HostsLoad> {
    Ok(merge_hosts(read_hosts(hosts_dir)?, last_good))
}

/// The merge step of [`load_hosts`], for callers that parsed the files themselves (e.g.
/// through a [`HostsCache`]).
pub fn merge_hosts(parsed: BTreeMap<String, Result<HostFile, Vec<ConfigError>>>, last_good: &BTreeMap<String, HostFile>) -> HostsLoad {
    let mut load = HostsLoad::default();
    for (folder, parsed) in parsed {
        let file = match parsed {
            Ok(file) => Some(file),
            Err(errors) => {
                load.errors.extend(errors);
                last_good.get(&folder).cloned()
            }
        };
        let Some(file) = file else { continue };
        if let Some(other) = load.desired.hosts.get(&file.spec.node) {
            let _ = other;
            load.errors.push(ConfigError {
                file: file.file.clone(),
                line: 1,
                column: 1,
                message: format!("node {:?} is already described by another folder", file.spec.node),
                hint: Some("each node has exactly one services.yaml".into()),
            });
            continue;
        }
        load.desired.hosts.insert(file.spec.node.clone(), file.spec.clone());
        load.in_force.insert(folder, file);
    }
    load
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

/// Reads hosts/ like [`read_hosts`], but parses a file again only when its size, mtime, ctime
/// or inode changed since the last call. With hundreds of host files, parsing is most of a
/// reconcile; a stat per file is not.
#[derive(Debug, Default)]
pub struct HostsCache {
    files: BTreeMap<String, (FileStamp, Result<HostFile, Vec<ConfigError>>)>,
}

impl HostsCache {
    pub fn new() -> HostsCache {
        HostsCache::default()
    }

    /// Per folder, the parsed file or its errors (as [`read_hosts`]).
    pub fn read(&mut self, hosts_dir: &Path) -> io::Result<BTreeMap<String, Result<HostFile, Vec<ConfigError>>>> {
        if !hosts_dir.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("hosts folder {} does not exist", hosts_dir.display())));
        }
        let mut seen = BTreeMap::new();
        for folder in list_names(hosts_dir)? {
            let path = hosts_dir.join(&folder).join("services.yaml");
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if !meta.is_file() {
                continue;
            }
            let stamp = FileStamp::of(&meta);
            // File times have a coarse tick: two same-size writes within one tick look alike,
            // so a file changed in the last two seconds is always parsed again.
            let settled = meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > std::time::Duration::from_secs(2));
            let cached = self.files.remove(&folder).filter(|(s, _)| *s == stamp && settled);
            let entry = match cached {
                Some(entry) => entry,
                None => {
                    let shown = path.display().to_string();
                    let parsed = match std::fs::read_to_string(&path) {
                        Ok(text) => parse_host_file(&shown, &folder, &text),
                        Err(e) => Err(vec![ConfigError { file: shown, line: 0, column: 0, message: format!("cannot read: {e}"), hint: None }]),
                    };
                    (stamp, parsed)
                }
            };
            seen.insert(folder, entry);
        }
        self.files = seen;
        Ok(self.files.iter().map(|(k, (_, v))| (k.clone(), v.clone())).collect())
    }

    /// [`load_hosts`] through the cache.
    pub fn load(&mut self, hosts_dir: &Path, last_good: &BTreeMap<String, HostFile>) -> io::Result<HostsLoad> {
        Ok(merge_hosts(self.read(hosts_dir)?, last_good))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_parses_again_only_what_changed() {
        let dir = std::env::temp_dir().join(format!("store-hosts-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let write = |folder: &str, text: &str| {
            std::fs::create_dir_all(dir.join(folder)).unwrap();
            std::fs::write(dir.join(folder).join("services.yaml"), text).unwrap();
        };
        write("a", "services:\n  web: {}\n");
        write("b", "services: {}\n");
        let mut cache = HostsCache::new();
        let first = cache.read(&dir).unwrap();
        assert_eq!(first.len(), 2);
        assert!(first["a"].as_ref().unwrap().spec.services.contains_key("web"));
        write("a", "services:\n  web: {}\n  db: {}\n");
        std::fs::remove_dir_all(dir.join("b")).unwrap();
        write("c", "services: [\n");
        let second = cache.read(&dir).unwrap();
        assert_eq!(second.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert!(second["a"].as_ref().unwrap().spec.services.contains_key("db"));
        assert!(second["c"].is_err());
        assert_eq!(cache.load(&dir, &BTreeMap::new()).unwrap().desired.hosts.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
