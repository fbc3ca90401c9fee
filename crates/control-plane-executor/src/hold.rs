//! Holding a compose project's current generation before a change (redeploy, update,
//! rollback): what each container runs (image id and registry digest), the compose and env
//! files it was started from, and a `homelab-held/…` tag on each image so that no cleanup
//! removes it. The last `keep` generations of a service stay held; older ones are released.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions, RemoveImageOptions, TagImageOptions};
use homelab_core::Timestamp;
use homelab_core::deploy::{self, Generation, HeldContainer, HeldFile};
use homelab_store::DataRoot;
use homelab_store::deploys::HeldContents;
use sha2::{Digest, Sha256};

use crate::docker::compose_project;
use crate::remote::Remote;

/// Where a node's files are read: this machine, or the node over SSH.
pub enum NodeFiles {
    Local,
    Remote(Arc<Remote>),
}

impl NodeFiles {
    /// The content of `path` on the node; `Ok(None)` when there is no such file.
    pub async fn read(&self, path: &str) -> Result<Option<String>, String> {
        match self {
            NodeFiles::Local => match tokio::fs::read(path).await {
                Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| format!("{path} is not UTF-8 text")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {path}: {e}")),
            },
            NodeFiles::Remote(remote) => {
                // A fixed script; the path travels as a quoted positional parameter.
                let out = remote
                    .session
                    .command("sh")
                    .arg("-c")
                    .arg(r#"[ -e "$1" ] || exit 3; exec cat -- "$1""#)
                    .arg("sh")
                    .arg(path)
                    .output()
                    .await
                    .map_err(|e| format!("cannot read {path} over SSH ({}): {}", remote.shown, crate::remote::error_chain(&e)))?;
                match out.status.code() {
                    Some(0) => String::from_utf8(out.stdout).map(Some).map_err(|_| format!("{path} is not UTF-8 text")),
                    Some(3) => Ok(None),
                    _ => Err(format!("cannot read {path} on {}: {}", remote.shown, String::from_utf8_lossy(&out.stderr).trim())),
                }
            }
        }
    }
}

/// The compose files a project is started from when no container says: the first of these in
/// its folder (what compose itself looks for).
const DEFAULT_COMPOSE_FILES: [&str; 4] = ["docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml"];

/// The files a change starts the project from, read from the node before it.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub held: Vec<HeldFile>,
    pub contents: HeldContents,
}

/// What was held: the generation, whether it was held just now (or the newest held one, which
/// runs the same images, is reused), and the files on the node now (what the change will use).
pub struct Held {
    pub generation: Generation,
    pub new: bool,
    pub files: Files,
}

/// Where a change is made: the project of one service on one node.
pub struct Target<'a> {
    pub root: &'a DataRoot,
    pub docker: &'a Docker,
    pub files: &'a NodeFiles,
    pub node: &'a str,
    pub service: &'a str,
    pub compose_dir: &'a str,
    /// The action making the change.
    pub action_id: &'a str,
    /// How many generations stay held.
    pub keep: usize,
    /// A generation never released now, however old (a rollback's target).
    pub also_keep: Option<&'a str>,
    /// The compose project (see [`project_of`]).
    pub project: String,
}

impl Target<'_> {
    /// Records the project's current generation and holds its images, then releases the
    /// generations beyond the newest `keep` (never one a running change still needs).
    ///
    /// The newest held generation that runs the same images as now was recorded with the
    /// files it was started from (by the change that made it): it is reused, whatever was
    /// edited on disk since. Otherwise (a first change, or a change made outside the control
    /// plane) the files on disk now stand in for them.
    pub async fn hold(&self, now: Timestamp) -> Result<Held, String> {
        let id = homelab_core::compact_ts(now);
        let (containers, paths) = containers_of(self.docker, self.node, &self.project, &id).await?;
        let files = self.read_files(paths).await?;
        let current = self.generation(id, now, containers, files.held.clone());
        let (generation, new) = match self.newest()?.filter(|g| g.runs_same_images(&current)) {
            Some(last) => (last, false),
            None => (current, true),
        };
        self.keep_held(&generation, new.then_some(&files.contents)).await?;
        Ok(Held { generation, new, files })
    }

    /// After a change ran: records and holds the project's new generation, with the files the
    /// change started it from.
    pub async fn record_after(&self, used: &Files, now: Timestamp) -> Result<Generation, String> {
        let id = homelab_core::compact_ts(now);
        let (containers, _) = containers_of(self.docker, self.node, &self.project, &id).await?;
        let generation = self.generation(id, now, containers, used.held.clone());
        // Nothing changed (a redeploy of the same images from the same files): no new generation.
        if let Some(last) = self.newest()?.filter(|g| g.runs_same_images(&generation) && g.files == generation.files) {
            self.keep_held(&last, None).await?;
            return Ok(last);
        }
        self.keep_held(&generation, Some(&used.contents)).await?;
        Ok(generation)
    }

    /// The newest held generation of the service, if any.
    fn newest(&self) -> Result<Option<Generation>, String> {
        let (held, _) = self
            .root
            .list_generations(self.node, self.service)
            .map_err(|e| format!("cannot list the held generations of {}/{}: {e}", self.node, self.service))?;
        Ok(held.into_iter().last())
    }

    fn generation(&self, id: String, now: Timestamp, containers: Vec<HeldContainer>, files: Vec<HeldFile>) -> Generation {
        Generation {
            id,
            node: self.node.to_owned(),
            service: self.service.to_owned(),
            project: self.project.clone(),
            compose_dir: self.compose_dir.to_owned(),
            taken_at: now,
            held_by: Some(self.action_id.to_owned()),
            containers,
            files,
        }
    }

    /// Tags the generation's images (idempotent: a reused generation gets back a tag someone
    /// removed by hand), saves it when `contents` is given, and releases old generations.
    async fn keep_held(&self, generation: &Generation, contents: Option<&HeldContents>) -> Result<(), String> {
        let node = self.node;
        for c in &generation.containers {
            let (repo, tag) = c.hold_tag.rsplit_once(':').expect("a hold tag has a tag");
            self.docker
                .tag_image(&c.image_id, Some(TagImageOptions { repo: Some(repo.to_owned()), tag: Some(tag.to_owned()) }))
                .await
                .map_err(|e| format!("cannot tag image {} of {} as {} on node {node}: {e}", c.image_id, c.container, c.hold_tag))?;
        }
        if let Some(contents) = contents {
            self.root.save_generation(generation, contents).map_err(|e| format!("cannot record the held generation of {node}/{}: {e}", self.service))?;
        }
        release_old(self.root, self.docker, node, self.service, self.keep, self.also_keep).await;
        Ok(())
    }

    /// The files compose starts the project from: those its containers name, else the first
    /// compose file of the folder and its `.env`. A file that is not there is left out.
    async fn read_files(&self, mut paths: Vec<String>) -> Result<Files, String> {
        let dir = self.compose_dir.trim_end_matches('/');
        if paths.is_empty() {
            for name in DEFAULT_COMPOSE_FILES {
                let path = format!("{dir}/{name}");
                if self.files.read(&path).await?.is_some() {
                    paths.push(path);
                    break;
                }
            }
            paths.push(format!("{dir}/.env"));
        }
        let mut out = Files::default();
        for path in paths {
            if let Some(text) = self.files.read(&path).await? {
                out.held.push(HeldFile { sha256: format!("{:x}", Sha256::digest(text.as_bytes())), bytes: text.len() as u64, path: path.clone() });
                out.contents.files.insert(path, text);
            }
        }
        Ok(out)
    }
}

/// The compose project of the folder `dir` on the node: the project label of the containers
/// compose started from that folder (`com.docker.compose.project.working_dir`), else
/// `COMPOSE_PROJECT_NAME` in the folder's `.env`, else the folder's name (what compose derives).
pub async fn project_of(docker: &Docker, files: &NodeFiles, dir: &str) -> Result<String, String> {
    let dir = dir.trim_end_matches('/');
    let filters = HashMap::from([("label".to_owned(), vec![format!("com.docker.compose.project.working_dir={dir}")])]);
    let found = docker
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await
        .map_err(|e| format!("cannot list the containers of {dir}: {e}"))?;
    if let Some(p) = found.iter().find_map(|c| c.labels.as_ref()?.get("com.docker.compose.project").cloned()) {
        return Ok(p);
    }
    if let Some(env) = files.read(&format!("{dir}/.env")).await? {
        let named =
            env.lines().find_map(|l| l.trim().strip_prefix("COMPOSE_PROJECT_NAME=")).map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned());
        if let Some(p) = named.filter(|p| !p.is_empty()) {
            return Ok(p);
        }
    }
    Ok(compose_project(dir))
}

/// The project's containers, each with the image it runs, and the files they were started
/// from (compose files, then the env file), from compose's labels.
async fn containers_of(docker: &Docker, node: &str, project: &str, generation: &str) -> Result<(Vec<HeldContainer>, Vec<String>), String> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("com.docker.compose.project={project}")])]);
    let found = docker
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await
        .map_err(|e| format!("cannot list the containers of project {project} on node {node}: {e}"))?;
    let mut out = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    for c in found {
        let Some(cid) = c.id else { continue };
        let info =
            docker.inspect_container(&cid, None::<InspectContainerOptions>).await.map_err(|e| format!("cannot inspect container {cid} on node {node}: {e}"))?;
        let name = info.name.as_deref().unwrap_or(&cid).trim_start_matches('/').to_owned();
        let config = info.config.unwrap_or_default();
        let labels = config.labels.unwrap_or_default();
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let image_id = info.image.ok_or_else(|| format!("container {name} on node {node} has no image id"))?;
        let image = config.image.unwrap_or_else(|| image_id.clone());
        let inspect = docker.inspect_image(&image_id).await.map_err(|e| format!("cannot inspect image {image_id} of {name} on node {node}: {e}"))?;
        let repo = image.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or(image.as_str(), |(r, _)| r);
        let repo_digest = inspect.repo_digests.unwrap_or_default().into_iter().find(|d| d.split('@').next() == Some(repo));
        let compose_service = label("com.docker.compose.service");
        out.push(HeldContainer {
            hold_tag: deploy::hold_tag(project, &compose_service, generation),
            compose_service,
            container: name,
            image,
            image_id,
            repo_digest,
        });
        // Compose v1 writes the files as it was given them: relative to the project's folder
        // without `-f`; the default `.env` gets no label.
        let working_dir = label("com.docker.compose.project.working_dir");
        let absolute = |p: &str| if p.starts_with('/') || working_dir.is_empty() { p.to_owned() } else { format!("{}/{p}", working_dir.trim_end_matches('/')) };
        let mut from: Vec<String> = label("com.docker.compose.project.config_files").split(',').filter(|p| !p.is_empty()).map(absolute).collect();
        let env = label("com.docker.compose.project.environment_file");
        if !env.is_empty() {
            from.push(env);
        } else if !working_dir.is_empty() {
            from.push(format!("{}/.env", working_dir.trim_end_matches('/')));
        }
        for p in from {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
    }
    out.sort_by(|a, b| (&a.compose_service, &a.container).cmp(&(&b.compose_service, &b.container)));
    Ok((out, paths))
}

/// Releases the generations beyond the newest `keep`: removes their hold tags (the images
/// themselves stay while a container uses them) and forgets them. Failures are logged and
/// retried at the next hold: a release never fails a change.
async fn release_old(root: &DataRoot, docker: &Docker, node: &str, service: &str, keep: usize, also_keep: Option<&str>) {
    let Ok((generations, _)) = root.list_generations(node, service) else { return };
    let history = root.read_deploy_history(node, service).unwrap_or_default();
    let mut pinned = history.pinned();
    pinned.extend(also_keep);
    for g in deploy::to_release(&generations, keep, &pinned) {
        let mut untagged = true;
        for c in &g.containers {
            match docker.remove_image(&c.hold_tag, Some(RemoveImageOptions { force: false, noprune: true }), None).await {
                Ok(_) => {}
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(e) => {
                    // The last tag of an image a container uses: untagging it would need force;
                    // the image stays either way, so keep the hold and try again next time.
                    tracing::info!(node, service, tag = %c.hold_tag, error = %e, "hold tag not released yet");
                    untagged = false;
                }
            }
        }
        if untagged && let Err(e) = root.remove_generation(node, service, &g.id) {
            tracing::warn!(node, service, generation = %g.id, error = %e, "cannot forget a released generation");
        }
    }
}

/// The files of a generation as they were held, for a rollback.
pub fn held_files(root: &DataRoot, g: &Generation) -> Result<BTreeMap<String, String>, String> {
    match root.read_held_contents(&g.node, &g.service, &g.id) {
        Ok(Some(c)) => Ok(c.files),
        Ok(None) => Err(format!("the files of generation {} of {}/{} are gone", g.id, g.node, g.service)),
        Err(e) => Err(format!("cannot read the files of generation {} of {}/{}: {e}", g.id, g.node, g.service)),
    }
}
