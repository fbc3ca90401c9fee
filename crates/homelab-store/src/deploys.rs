//! Held generations and the deploy history of each compose service.
//!
//! - `state/deploys/<node>/<service>/generations/<id>.json`: a held [`Generation`] (images,
//!   file hashes); shown to operators.
//! - `state/secrets/held/<node>/<service>/<id>.json`: the content of its compose and env files
//!   (mode 0600; an env file holds secrets), what a rollback starts the project from. Never shown.
//! - `state/deploys/<node>/<service>/history.json`: the [`DeployHistory`].
//!
//! A generation is saved content first, then its record: a record on disk always has its
//! content. It is removed record first.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use homelab_core::deploy::{DeployHistory, Generation};
use serde::{Deserialize, Serialize};

use crate::DataRoot;
use crate::atomic::write_atomic;
use crate::users::write_secret_atomic;

/// The content of a generation's files, by path on the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldContents {
    pub files: BTreeMap<String, String>,
}

/// A generation record that does not parse: listed so that it is shown, never used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableGeneration {
    pub file: String,
    pub reason: String,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// A generation id is a compact timestamp: nothing else may name a file.
fn check_generation_id(id: &str) -> io::Result<()> {
    homelab_core::parse_compact_ts(id).map(|_| ()).ok_or_else(|| invalid(format!("{id:?} is not a generation id (YYYYMMDDTHHMMSS.fffZ)")))
}

impl DataRoot {
    fn deploy_dir(&self, node: &str, service: &str) -> io::Result<PathBuf> {
        homelab_core::validate_name(node).map_err(invalid)?;
        homelab_core::validate_name(service).map_err(invalid)?;
        Ok(self.state_dir().join("deploys").join(node).join(service))
    }

    fn held_dir(&self, node: &str, service: &str) -> io::Result<PathBuf> {
        homelab_core::validate_name(node).map_err(invalid)?;
        homelab_core::validate_name(service).map_err(invalid)?;
        Ok(self.state_dir().join("secrets/held").join(node).join(service))
    }

    /// Where an operator finds a service's deploy records (for messages and docs).
    pub fn deploys_display_path(&self, node: &str, service: &str) -> PathBuf {
        self.state_dir().join("deploys").join(node).join(service)
    }

    /// Saves a held generation: the content of its files (0600), then its record.
    pub fn save_generation(&self, generation: &Generation, contents: &HeldContents) -> io::Result<()> {
        check_generation_id(&generation.id)?;
        let held = self.held_dir(&generation.node, &generation.service)?.join(format!("{}.json", generation.id));
        write_secret_atomic(&held, &serde_json::to_vec(contents).map_err(io::Error::other)?)?;
        let dir = self.deploy_dir(&generation.node, &generation.service)?.join("generations");
        std::fs::create_dir_all(&dir)?;
        write_atomic(&dir.join(format!("{}.json", generation.id)), &serde_json::to_vec_pretty(generation).map_err(io::Error::other)?)
    }

    /// The held generations of a service, oldest first, and the records that do not parse.
    pub fn list_generations(&self, node: &str, service: &str) -> io::Result<(Vec<Generation>, Vec<UnreadableGeneration>)> {
        let dir = self.deploy_dir(node, service)?.join("generations");
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for name in crate::list_names(&dir)? {
            let Some(id) = name.strip_suffix(".json") else { continue };
            if check_generation_id(id).is_err() {
                continue;
            }
            match crate::read_json_file::<Generation>(&dir.join(&name)) {
                Ok(Some(g)) if g.id == id && g.node == node && g.service == service => good.push(g),
                Ok(Some(_)) => bad.push(UnreadableGeneration { file: name, reason: "its id, node or service is not the file's".into() }),
                Ok(None) => {}
                Err(e) => bad.push(UnreadableGeneration { file: name, reason: e.to_string() }),
            }
        }
        good.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((good, bad))
    }

    /// One held generation; `Ok(None)` when there is none with that id.
    pub fn read_generation(&self, node: &str, service: &str, id: &str) -> io::Result<Option<Generation>> {
        check_generation_id(id)?;
        crate::read_json_file(&self.deploy_dir(node, service)?.join("generations").join(format!("{id}.json")))
    }

    /// The content of a held generation's files; `Ok(None)` when it is gone.
    pub fn read_held_contents(&self, node: &str, service: &str, id: &str) -> io::Result<Option<HeldContents>> {
        check_generation_id(id)?;
        crate::read_json_file(&self.held_dir(node, service)?.join(format!("{id}.json")))
    }

    /// Forgets a released generation: its record first, then its content.
    pub fn remove_generation(&self, node: &str, service: &str, id: &str) -> io::Result<()> {
        check_generation_id(id)?;
        let record = self.deploy_dir(node, service)?.join("generations").join(format!("{id}.json"));
        let held = self.held_dir(node, service)?.join(format!("{id}.json"));
        for path in [record, held] {
            match std::fs::remove_file(&path) {
                Ok(()) => crate::atomic::sync_parent(&path)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A service's deploy history (empty when it has none).
    pub fn read_deploy_history(&self, node: &str, service: &str) -> io::Result<DeployHistory> {
        Ok(crate::read_json_file(&self.deploy_dir(node, service)?.join("history.json"))?.unwrap_or_default())
    }

    /// Read-modify-write of a service's deploy history under its lock (executors on several
    /// machines of one data root may end changes of one service at once).
    pub fn update_deploy_history<T>(&self, node: &str, service: &str, f: impl FnOnce(&mut DeployHistory) -> T) -> io::Result<T> {
        let dir = self.deploy_dir(node, service)?;
        std::fs::create_dir_all(&dir)?;
        let lock = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(dir.join("history.json.lock"))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(io::Error::from)?;
        let path = dir.join("history.json");
        let mut history: DeployHistory = crate::read_json_file(&path)?.unwrap_or_default();
        let out = f(&mut history);
        write_atomic(&path, &serde_json::to_vec_pretty(&history).map_err(io::Error::other)?)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use homelab_core::deploy::{DeployOutcome, DeployRecord, HeldContainer, HeldFile};
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn generation(id: &str) -> Generation {
        Generation {
            id: id.into(),
            node: "edge-1".into(),
            service: "web".into(),
            project: "web".into(),
            compose_dir: "/srv/web".into(),
            taken_at: homelab_core::parse_compact_ts(id).unwrap(),
            held_by: Some("redeploy-edge-1-web".into()),
            containers: vec![HeldContainer {
                compose_service: "app".into(),
                container: "web_app_1".into(),
                image: "127.0.0.1:5000/app:v1".into(),
                image_id: "sha256:aa".into(),
                repo_digest: None,
                hold_tag: homelab_core::deploy::hold_tag("web", "app", id),
            }],
            files: vec![HeldFile { path: "/srv/web/.env".into(), sha256: "00".into(), bytes: 12 }],
        }
    }

    #[test]
    fn generations_keep_their_contents_private_and_go_record_first() {
        let tmp = tempfile::tempdir().unwrap();
        let root = DataRoot::open(tmp.path()).unwrap();
        let (a, b) = (generation("20261207T230102.123Z"), generation("20261207T231102.123Z"));
        let contents = HeldContents { files: BTreeMap::from([("/srv/web/.env".to_owned(), "PASSWORD=hunter2\n".to_owned())]) };
        root.save_generation(&b, &contents).unwrap();
        root.save_generation(&a, &contents).unwrap();
        let (listed, bad) = root.list_generations("edge-1", "web").unwrap();
        assert_eq!(listed, [a.clone(), b.clone()], "oldest first");
        assert!(bad.is_empty());
        assert_eq!(root.read_held_contents("edge-1", "web", &a.id).unwrap(), Some(contents));
        let held = tmp.path().join("state/secrets/held/edge-1/web").join(format!("{}.json", a.id));
        assert_eq!(std::fs::metadata(&held).unwrap().permissions().mode() & 0o777, 0o600);
        let shown = std::fs::read_to_string(tmp.path().join("state/deploys/edge-1/web/generations").join(format!("{}.json", a.id))).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");

        root.remove_generation("edge-1", "web", &a.id).unwrap();
        assert_eq!(root.read_generation("edge-1", "web", &a.id).unwrap(), None);
        assert!(!held.exists());
        root.remove_generation("edge-1", "web", &a.id).unwrap();

        // A corrupt record is listed as unreadable, never used; ids that are not timestamps
        // and names that could escape the folder are refused.
        std::fs::write(tmp.path().join("state/deploys/edge-1/web/generations/20261207T232102.123Z.json"), "{").unwrap();
        let (listed, bad) = root.list_generations("edge-1", "web").unwrap();
        assert_eq!((listed.len(), bad.len()), (1, 1));
        assert_eq!(root.read_generation("edge-1", "web", "../../x").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(root.list_generations("../etc", "web").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn history_is_updated_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let root = DataRoot::open(tmp.path()).unwrap();
        assert_eq!(root.read_deploy_history("edge-1", "web").unwrap(), DeployHistory::default());
        let t = homelab_core::parse_compact_ts("20261207T230102.123Z").unwrap();
        let mut record = DeployRecord {
            action_id: "redeploy-edge-1-web".into(),
            kind: homelab_core::ActionType::Redeploy,
            started_at: t,
            ended_at: None,
            approved_by: Some("ui:ann".into()),
            held: "20261207T230102.123Z".into(),
            images_before: "app sha256:aa".into(),
            images_after: None,
            outcome: DeployOutcome::Running,
            rolled_back_to: None,
            detail: None,
        };
        root.update_deploy_history("edge-1", "web", |h| h.upsert(record.clone())).unwrap();
        record.outcome = DeployOutcome::Verified;
        root.update_deploy_history("edge-1", "web", |h| h.upsert(record.clone())).unwrap();
        assert_eq!(root.read_deploy_history("edge-1", "web").unwrap().records, [record]);
    }
}
