//! The Docker Engine API calls the executor makes (bollard), the same for a local engine and for
//! a remote one whose socket is forwarded over SSH to a local unix socket.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, PruneBuildOptions, PruneContainersOptions, PruneImagesOptions, RestartContainerOptions,
};

/// Seconds Docker gives a container to stop before it kills it during a restart.
const STOP_GRACE_SECS: i32 = 10;

/// Connects to the engine behind a unix socket and negotiates the API version, so the same
/// code talks to Docker 20.10 (API 1.41) and to current engines.
pub async fn connect(socket: &Path, timeout: Duration) -> Result<Docker, String> {
    let shown = socket.display();
    let path = socket.to_str().ok_or_else(|| format!("docker socket path {shown} is not UTF-8"))?;
    let docker = Docker::connect_with_unix(path, timeout.as_secs().max(1), bollard::API_DEFAULT_VERSION)
        .map_err(|e| format!("cannot use the docker socket {shown}: {e}"))?;
    tokio::time::timeout(timeout, docker.negotiate_version())
        .await
        .map_err(|_| format!("docker engine at {shown} did not answer within {}s", timeout.as_secs()))?
        .map_err(|e| format!("docker engine at {shown} does not answer: {e}"))
}

/// What an action did, for `result`.
#[derive(Debug, Default)]
pub struct Done {
    pub output: String,
    pub bytes_reclaimed: Option<u64>,
}

/// The compose project name a compose tool derives from a folder (the core's rule, which the
/// action page shows too).
pub use homelab_core::action::compose_project;

/// Restarts a service's containers: those named in `containers`, else those carrying the
/// compose labels of the service (and of its project when `compose_dir` is known).
pub async fn restart_service(docker: &Docker, node: &str, service: &str, containers: &[String], compose_dir: Option<&str>) -> Result<Done, String> {
    let mut out = String::new();
    let targets: Vec<String> = if containers.is_empty() {
        let mut labels = vec![format!("com.docker.compose.service={service}")];
        if let Some(dir) = compose_dir {
            labels.push(format!("com.docker.compose.project={}", compose_project(dir)));
        }
        let filters = HashMap::from([("label".to_owned(), labels.clone())]);
        let found = docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await
            .map_err(|e| format!("cannot list containers on node {node}: {e}"))?;
        let names: Vec<String> = found
            .iter()
            .filter_map(|c| c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_owned()).or_else(|| c.id.clone()))
            .collect();
        if names.is_empty() {
            return Err(format!("no containers of service {service} found on node {node} (labels {})", labels.join(", ")));
        }
        out.push_str(&format!("found by labels {}: {}\n", labels.join(", "), names.join(", ")));
        names
    } else {
        // Check every listed container first, so a missing one fails the action before any restart.
        for name in containers {
            docker.inspect_container(name, None::<InspectContainerOptions>).await.map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError { status_code: 404, .. } => {
                    format!("container {name} of service {service} not found on node {node}")
                }
                e => format!("cannot inspect container {name} on node {node}: {e}"),
            })?;
        }
        containers.to_vec()
    };
    for name in &targets {
        docker
            .restart_container(name, Some(RestartContainerOptions { t: Some(STOP_GRACE_SECS), signal: None }))
            .await
            .map_err(|e| format!("restarting container {name} on node {node} failed: {e}"))?;
        out.push_str(&format!("restarted {name}\n"));
    }
    Ok(Done { output: out, bytes_reclaimed: None })
}

/// Prunes stopped containers, dangling images and the build cache; sums the bytes reclaimed.
/// `label` (when set) limits container and image pruning to objects carrying that label.
pub async fn prune(docker: &Docker, node: &str, label: Option<&str>) -> Result<Done, String> {
    let mut out = String::new();
    let mut total: u64 = 0;
    let label_filter = |mut f: HashMap<String, Vec<String>>| {
        if let Some(l) = label {
            f.insert("label".into(), vec![l.to_owned()]);
        }
        (!f.is_empty()).then_some(f)
    };

    let c = docker
        .prune_containers(Some(PruneContainersOptions { filters: label_filter(HashMap::new()) }))
        .await
        .map_err(|e| format!("pruning stopped containers on node {node} failed: {e}"))?;
    let bytes = c.space_reclaimed.unwrap_or(0).max(0) as u64;
    total += bytes;
    out.push_str(&format!("containers removed: {}, bytes reclaimed: {bytes}\n", c.containers_deleted.map_or(0, |d| d.len())));

    let dangling = HashMap::from([("dangling".to_owned(), vec!["true".to_owned()])]);
    let i = docker
        .prune_images(Some(PruneImagesOptions { filters: label_filter(dangling) }))
        .await
        .map_err(|e| format!("pruning dangling images on node {node} failed: {e}"))?;
    let bytes = i.space_reclaimed.unwrap_or(0).max(0) as u64;
    total += bytes;
    out.push_str(&format!("images removed: {}, bytes reclaimed: {bytes}\n", i.images_deleted.map_or(0, |d| d.len())));

    // The build cache has no labels; an engine without BuildKit support still answers. A failure
    // here is reported in the output but does not undo what was already reclaimed.
    match docker.prune_build(None::<PruneBuildOptions>).await {
        Ok(b) => {
            let bytes = b.space_reclaimed.unwrap_or(0).max(0) as u64;
            total += bytes;
            out.push_str(&format!("build cache entries removed: {}, bytes reclaimed: {bytes}\n", b.caches_deleted.map_or(0, |d| d.len())));
        }
        Err(e) => out.push_str(&format!("build cache prune skipped: {e}\n")),
    }
    out.push_str(&format!("total bytes reclaimed: {total}\n"));
    Ok(Done { output: out, bytes_reclaimed: Some(total) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn compose_project_names() {
        for (dir, want) in
            [("/srv/homelab/mosquitto", "mosquitto"), ("/srv/Zigbee2MQTT/", "zigbee2mqtt"), ("/tmp/redeploy-12.x", "redeploy-12x"), ("/srv/a_b", "a_b")]
        {
            assert_eq!(super::compose_project(dir), want, "{dir}");
        }
    }
}
