//! Generations and the deploy history of a compose service: what a project ran before a
//! redeploy, an update or a rollback changed it, so that the change can be undone.
//!
//! A **generation** is the project as it was at one moment: for each container the image it
//! was created from (by id, with the registry digest when the image came from one) and the
//! compose files and env file it was started from (hashes here; their content is a secret the
//! store keeps apart). Before a change the executor *holds* the current generation: it tags
//! the images under `homelab-held/…` so that no cleanup removes them, and records it. The last
//! [`KEEP_GENERATIONS`] generations of a service stay held; older ones are released.
//!
//! The **deploy history** of a service is one record per change: which generation it started
//! from, the images before and after, who approved it, and how it ended.

use serde::{Deserialize, Serialize};

use crate::{ActionType, Timestamp};

/// How many generations of a service stay held, by default (`HOLD_GENERATIONS`).
pub const KEEP_GENERATIONS: usize = 3;

/// At most this many records stay in a service's deploy history (the oldest go first).
pub const HISTORY_LIMIT: usize = 50;

/// One container of a held generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct HeldContainer {
    /// The compose service it belongs to (`com.docker.compose.service`).
    pub compose_service: String,
    /// The container's name.
    pub container: String,
    /// The image reference it was configured with (`repo:tag`, as in the compose file).
    pub image: String,
    /// The image it actually ran (`sha256:…`).
    pub image_id: String,
    /// `repo@sha256:…` when the image came from a registry; `None` for a local build or import.
    pub repo_digest: Option<String>,
    /// The tag that holds the image (`homelab-held/<project>-<service>:<generation>`).
    pub hold_tag: String,
}

/// A file a generation was started from. Its content is kept by the store apart from this
/// record (it may hold secrets: an env file) and is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct HeldFile {
    /// The path on the node, as compose was given it.
    pub path: String,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    pub bytes: u64,
}

/// The project of a service as it was at one moment (`state/deploys/<node>/<service>/generations/<id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct Generation {
    /// The moment it was taken, in the compact file-name form (`20261207T230102.123Z`).
    pub id: String,
    pub node: String,
    pub service: String,
    /// The compose project (`com.docker.compose.project`).
    pub project: String,
    pub compose_dir: String,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub taken_at: Timestamp,
    /// The action that held it before changing the project.
    pub held_by: Option<String>,
    pub containers: Vec<HeldContainer>,
    /// The compose files, then the env file when there is one.
    pub files: Vec<HeldFile>,
}

impl Generation {
    /// Whether `other` runs the same image for each compose service (whatever the containers
    /// are called and whatever the files on disk say now).
    pub fn runs_same_images(&self, other: &Generation) -> bool {
        fn images(g: &Generation) -> Vec<(&str, &str)> {
            let mut v: Vec<(&str, &str)> = g.containers.iter().map(|c| (c.compose_service.as_str(), c.image_id.as_str())).collect();
            v.sort();
            v
        }
        self.project == other.project && images(self) == images(other)
    }

    /// The images in words: `web sha256:1a2b3c4d5e6f, db postgres@sha256:…`.
    pub fn images_in_words(&self) -> String {
        self.containers.iter().map(|c| format!("{} {}", c.compose_service, short_image(c))).collect::<Vec<_>>().join(", ")
    }
}

/// An image as a person reads it: the digest when there is one, else the id, shortened.
pub fn short_image(c: &HeldContainer) -> String {
    let digest = c.repo_digest.as_deref().and_then(|d| d.rsplit_once('@')).map(|(_, d)| d);
    let full = digest.unwrap_or(&c.image_id);
    let hex = full.strip_prefix("sha256:").unwrap_or(full);
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

/// The tag that holds a generation's image: `homelab-held/<project>-<compose service>:<generation>`.
/// Docker's rules: a lowercase repository of `[a-z0-9]` runs joined by `.`, `_` or `-`; a
/// tag of word characters, `.` and `-`, at most 128.
pub fn hold_tag(project: &str, compose_service: &str, generation: &str) -> String {
    let repo: String = format!("{project}-{compose_service}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let tag: String = generation.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).take(128).collect();
    format!("homelab-held/{repo}:{tag}")
}

/// The generations to release: all but the newest `keep` (by id, which sorts by time), never
/// one named in `pinned` (a rollback target or the start of a change still running).
pub fn to_release<'a>(generations: &'a [Generation], keep: usize, pinned: &[&str]) -> Vec<&'a Generation> {
    let mut sorted: Vec<&Generation> = generations.iter().collect();
    sorted.sort_by(|a, b| b.id.cmp(&a.id));
    sorted.into_iter().skip(keep.max(1)).filter(|g| !pinned.contains(&g.id.as_str())).collect()
}

/// How a change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeployOutcome {
    /// Still running (or the executor stopped in the middle: see `interrupted`).
    Running,
    /// Up and healthy on its own checks over the verify window.
    Verified,
    /// Up; verification was off or did not finish.
    Done,
    /// It failed its checks and was rolled back to the held generation, healthy again.
    RolledBack,
    /// It failed and was not (or could not be) rolled back.
    Failed,
    /// The executor stopped in the middle; the held generation is still held.
    Interrupted,
}

impl DeployOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployOutcome::Running => "running",
            DeployOutcome::Verified => "verified",
            DeployOutcome::Done => "done",
            DeployOutcome::RolledBack => "rolled_back",
            DeployOutcome::Failed => "failed",
            DeployOutcome::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for DeployOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct DeployRecord {
    /// The action that made the change.
    pub action_id: String,
    #[serde(rename = "type")]
    pub kind: ActionType,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[serde(default, with = "crate::ts_format::option")]
    #[schemars(with = "Option<crate::Timestamp>")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    /// Who approved the action (`ui:alice`, `policy`, …).
    pub approved_by: Option<String>,
    /// The generation held before the change: what a rollback returns to.
    pub held: String,
    /// The images before, in words (`web sha256:1a2b3c4d5e6f`).
    pub images_before: String,
    /// The images after, in words, once known.
    pub images_after: Option<String>,
    pub outcome: DeployOutcome,
    /// With `rolled_back`: the generation it returned to.
    pub rolled_back_to: Option<String>,
    /// Why it failed or was rolled back, in a line.
    pub detail: Option<String>,
}

/// A service's deploy history, newest last (`state/deploys/<node>/<service>/history.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct DeployHistory {
    pub records: Vec<DeployRecord>,
}

impl DeployHistory {
    /// Adds or replaces (same action id and start) a record, keeping at most [`HISTORY_LIMIT`].
    pub fn upsert(&mut self, record: DeployRecord) {
        match self.records.iter_mut().find(|r| r.action_id == record.action_id && r.started_at == record.started_at) {
            Some(r) => *r = record,
            None => self.records.push(record),
        }
        let over = self.records.len().saturating_sub(HISTORY_LIMIT);
        self.records.drain(..over);
    }

    /// Generations a record still needs held: the start of a change not yet ended.
    pub fn pinned(&self) -> Vec<&str> {
        self.records.iter().filter(|r| r.outcome == DeployOutcome::Running).map(|r| r.held.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(id: &str, images: &[(&str, &str)], files: &[(&str, &str)]) -> Generation {
        Generation {
            id: id.into(),
            node: "edge-1".into(),
            service: "web".into(),
            project: "web".into(),
            compose_dir: "/srv/web".into(),
            taken_at: crate::parse_compact_ts(id).unwrap(),
            held_by: None,
            containers: images
                .iter()
                .map(|(svc, id)| HeldContainer {
                    compose_service: (*svc).into(),
                    container: format!("web_{svc}_1"),
                    image: format!("registry.local/{svc}:latest"),
                    image_id: (*id).into(),
                    repo_digest: None,
                    hold_tag: hold_tag("web", svc, id),
                })
                .collect(),
            files: files.iter().map(|(p, h)| HeldFile { path: (*p).into(), sha256: (*h).into(), bytes: 1 }).collect(),
        }
    }

    #[test]
    fn hold_tags_are_valid_docker_references() {
        let table = [
            ("web", "app", "20261207T230102.123Z", "homelab-held/web-app:20261207T230102.123Z"),
            ("my_proj", "App_Server", "20261207T230102.123Z", "homelab-held/my-proj-app-server:20261207T230102.123Z"),
            ("a..b", "--c--", "x/y:z", "homelab-held/a-b-c:xyz"),
        ];
        for (project, service, generation, want) in table {
            assert_eq!(hold_tag(project, service, generation), want, "{project} {service}");
        }
    }

    #[test]
    fn the_same_images_are_the_same_generation_whatever_the_order_and_the_files() {
        let a = generation("20261207T230102.123Z", &[("app", "sha256:aa"), ("db", "sha256:bb")], &[("/srv/web/docker-compose.yml", "h1")]);
        let b = generation("20261207T231102.123Z", &[("db", "sha256:bb"), ("app", "sha256:aa")], &[("/srv/web/docker-compose.yml", "h1")]);
        let edited = generation("20261207T233102.123Z", &[("app", "sha256:aa"), ("db", "sha256:bb")], &[("/srv/web/docker-compose.yml", "h2")]);
        let other_image = generation("20261207T232102.123Z", &[("app", "sha256:cc"), ("db", "sha256:bb")], &[("/srv/web/docker-compose.yml", "h1")]);
        let fewer = generation("20261207T234102.123Z", &[("app", "sha256:aa")], &[]);
        assert!(a.runs_same_images(&b));
        assert!(a.runs_same_images(&edited), "files edited on disk since do not make another generation");
        assert!(!a.runs_same_images(&other_image));
        assert!(!a.runs_same_images(&fewer));
    }

    #[test]
    fn release_keeps_the_newest_and_the_pinned() {
        let ids = ["20261201T000000.000Z", "20261202T000000.000Z", "20261203T000000.000Z", "20261204T000000.000Z", "20261205T000000.000Z"];
        let gens: Vec<Generation> = ids.iter().map(|id| generation(id, &[("app", "sha256:aa")], &[])).collect();
        let released = |keep, pinned: &[&str]| to_release(&gens, keep, pinned).into_iter().map(|g| g.id.as_str()).collect::<Vec<_>>();
        assert_eq!(released(3, &[]), [ids[1], ids[0]]);
        assert_eq!(released(3, &[ids[0]]), [ids[1]]);
        assert_eq!(released(0, &[]), [ids[3], ids[2], ids[1], ids[0]], "at least one stays held");
        assert!(released(9, &[]).is_empty());
    }

    #[test]
    fn history_replaces_a_record_and_keeps_the_last_fifty() {
        let t = crate::parse_compact_ts("20261207T230102.123Z").unwrap();
        let record = |n: i64, outcome| DeployRecord {
            action_id: "redeploy-edge-1-web".into(),
            kind: ActionType::Redeploy,
            started_at: t + chrono::Duration::minutes(n),
            ended_at: None,
            approved_by: Some("ui:ann".into()),
            held: format!("g{n}"),
            images_before: "app sha256:aa".into(),
            images_after: None,
            outcome,
            rolled_back_to: None,
            detail: None,
        };
        let mut h = DeployHistory::default();
        h.upsert(record(0, DeployOutcome::Running));
        assert_eq!(h.pinned(), ["g0"]);
        h.upsert(record(0, DeployOutcome::Verified));
        assert_eq!(h.records.len(), 1);
        assert!(h.pinned().is_empty());
        for n in 1..=60 {
            h.upsert(record(n, DeployOutcome::Done));
        }
        assert_eq!(h.records.len(), HISTORY_LIMIT);
        assert_eq!(h.records[0].held, "g11");
    }

    #[test]
    fn images_are_shown_short() {
        let mut c = generation("20261207T230102.123Z", &[("app", "sha256:0123456789abcdef0123")], &[]).containers.remove(0);
        assert_eq!(short_image(&c), "sha256:0123456789ab");
        c.repo_digest = Some("127.0.0.1:5000/app@sha256:fedcba9876543210".into());
        assert_eq!(short_image(&c), "sha256:fedcba987654");
    }
}
