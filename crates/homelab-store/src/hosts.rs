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
    let mut load = HostsLoad::default();
    for (folder, parsed) in read_hosts(hosts_dir)? {
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
    Ok(load)
}
