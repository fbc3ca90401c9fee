//! Recreating a compose project from a held generation: its compose and env files as they were
//! held, written to a private temp folder on the node, and its images pinned to their hold tags
//! by an override file, then `up -d --force-recreate --remove-orphans` with the project's own
//! name and folder (so relative paths in the files mean what they meant).

use std::sync::Arc;

use bollard::Docker;
use homelab_core::HostSpec;
use homelab_core::deploy::Generation;
use homelab_store::DataRoot;

use crate::compose::{Tail, compose_local, compose_remote};
use crate::remote::Remote;

/// The compose argv that starts `g` from files in `dir` (as named by [`write_files`]).
pub fn rollback_argv(host: &HostSpec, g: &Generation, compose_files: &[String], env_file: Option<&str>, override_file: &str) -> Vec<String> {
    let mut argv = host.compose_command.clone();
    argv.extend(["-p".to_owned(), g.project.clone(), "--project-directory".to_owned(), g.compose_dir.clone()]);
    for f in compose_files.iter().map(String::as_str).chain([override_file]) {
        argv.extend(["-f".to_owned(), f.to_owned()]);
    }
    if let Some(env) = env_file {
        argv.extend(["--env-file".to_owned(), env.to_owned()]);
    }
    argv.extend(["up", "-d", "--force-recreate", "--remove-orphans"].map(String::from));
    argv
}

/// The override that pins each compose service to its held image, in the compose file's own
/// `version:` (compose v1 refuses to merge files of different versions).
pub fn override_yaml(g: &Generation, first_compose_file: &str) -> String {
    let version = first_compose_file.lines().find(|l| l.starts_with("version:")).map(|l| format!("{l}\n")).unwrap_or_default();
    let mut out = format!("{version}services:\n");
    let mut seen = Vec::new();
    for c in &g.containers {
        if seen.contains(&c.compose_service) {
            continue;
        }
        seen.push(c.compose_service.clone());
        out.push_str(&format!("  {}:\n    image: \"{}\"\n", serde_json::to_string(&c.compose_service).unwrap_or_default(), c.hold_tag));
    }
    out
}

/// Rolls the project of `g` back: checks that every held image is still there, writes the held
/// files to a private temp folder on the node, runs compose, and removes the folder.
pub async fn roll_back(root: &DataRoot, docker: &Docker, host: &HostSpec, remote: Option<&Arc<Remote>>, g: &Generation, tail: &Tail) -> Result<(), String> {
    let node = &host.node;
    if g.containers.is_empty() {
        return Err(format!("generation {} held no container: there is nothing to roll back to", g.id));
    }
    for c in &g.containers {
        if docker.inspect_image(&c.hold_tag).await.is_err() {
            return Err(format!("the held image {} of generation {} is gone from node {node} (removed by hand?): cannot roll back", c.hold_tag, g.id));
        }
    }
    let contents = crate::hold::held_files(root, g)?;
    let env_path = g.files.iter().map(|f| f.path.as_str()).find(|p| p.ends_with(".env"));
    let compose_paths: Vec<&str> = g.files.iter().map(|f| f.path.as_str()).filter(|p| Some(*p) != env_path).collect();
    let first = compose_paths.first().and_then(|p| contents.get(*p)).ok_or_else(|| format!("generation {} held no compose file", g.id))?;
    // The files go under names of our own: 0-docker-compose.yml, 1-…, override.yml, held.env.
    let mut files: Vec<(String, String)> = Vec::new();
    let mut compose_names = Vec::new();
    for (i, p) in compose_paths.iter().enumerate() {
        let base = p.rsplit('/').next().unwrap_or("compose.yml");
        let name = format!("{i}-{base}");
        files.push((name.clone(), contents.get(*p).cloned().unwrap_or_default()));
        compose_names.push(name);
    }
    files.push(("override.yml".into(), override_yaml(g, first)));
    if let Some(env) = env_path.and_then(|p| contents.get(p)) {
        files.push(("held.env".into(), env.clone()));
    }
    tail.push(format!("rolling back {}/{} to generation {}: {}\n", g.node, g.service, g.id, g.images_in_words()).as_bytes());
    let status = match remote {
        None => {
            let dir = tempfile::Builder::new().prefix("homelab-rollback-").tempdir().map_err(|e| format!("cannot make a temp folder: {e}"))?;
            for (name, text) in &files {
                write_private(&dir.path().join(name), text).map_err(|e| format!("cannot write the held files: {e}"))?;
            }
            let at = |n: &str| dir.path().join(n).display().to_string();
            let argv = rollback_argv(
                host,
                g,
                &compose_names.iter().map(|n| at(n)).collect::<Vec<_>>(),
                env_path.map(|_| at("held.env")).as_deref(),
                &at("override.yml"),
            );
            compose_local(&argv, &g.compose_dir, node, tail).await?
        }
        Some(remote) => {
            let dir = remote_temp_dir(remote).await?;
            let result = async {
                for (name, text) in &files {
                    remote_write(remote, &format!("{dir}/{name}"), text).await?;
                }
                let at = |n: &str| format!("{dir}/{n}");
                let argv = rollback_argv(
                    host,
                    g,
                    &compose_names.iter().map(|n| at(n)).collect::<Vec<_>>(),
                    env_path.map(|_| at("held.env")).as_deref(),
                    &at("override.yml"),
                );
                compose_remote(remote, &argv, &g.compose_dir, node, tail).await
            }
            .await;
            let _ = remote.session.command("rm").arg("-rf").arg("--").arg(&dir).status().await;
            result?
        }
    };
    match status {
        (0, _) => Ok(()),
        (code, errors) => Err(format!("compose could not start generation {} (exit status {code}): {}", g.id, errors.lines().last().unwrap_or("").trim())),
    }
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

async fn remote_temp_dir(remote: &Remote) -> Result<String, String> {
    let out = remote
        .session
        .command("mktemp")
        .arg("-d")
        .arg("/tmp/homelab-rollback-XXXXXX")
        .output()
        .await
        .map_err(|e| format!("cannot make a temp folder over SSH ({}): {}", remote.shown, crate::remote::error_chain(&e)))?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || dir.is_empty() {
        return Err(format!("cannot make a temp folder on {}: {}", remote.shown, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(dir)
}

/// Writes `text` to `path` on the node (0600), through stdin of a fixed script.
async fn remote_write(remote: &Remote, path: &str, text: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = remote
        .session
        .command("sh")
        .arg("-c")
        .arg(r#"umask 077; cat > "$1""#)
        .arg("sh")
        .arg(path)
        .stdin(openssh::Stdio::piped())
        .stdout(openssh::Stdio::null())
        .stderr(openssh::Stdio::piped())
        .spawn()
        .await
        .map_err(|e| format!("cannot write {path} over SSH ({}): {}", remote.shown, crate::remote::error_chain(&e)))?;
    if let Some(mut stdin) = child.stdin().take() {
        stdin.write_all(text.as_bytes()).await.map_err(|e| format!("cannot write {path} over SSH: {e}"))?;
        drop(stdin);
    }
    let status = child.wait().await.map_err(|e| format!("cannot write {path} over SSH: {}", crate::remote::error_chain(&e)))?;
    if status.success() { Ok(()) } else { Err(format!("cannot write {path} on {}", remote.shown)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homelab_core::deploy::{HeldContainer, hold_tag};

    fn generation() -> Generation {
        let c = |svc: &str, name: &str| HeldContainer {
            compose_service: svc.into(),
            container: name.into(),
            image: format!("127.0.0.1:5000/{svc}:v2"),
            image_id: "sha256:aa".into(),
            repo_digest: None,
            hold_tag: hold_tag("web", svc, "20261207T230102.123Z"),
        };
        Generation {
            id: "20261207T230102.123Z".into(),
            node: "edge-1".into(),
            service: "web".into(),
            project: "web".into(),
            compose_dir: "/srv/web".into(),
            taken_at: homelab_core::parse_compact_ts("20261207T230102.123Z").unwrap(),
            held_by: None,
            containers: vec![c("app", "web_app_1"), c("app", "web_app_2"), c("db", "web_db_1")],
            files: vec![],
        }
    }

    #[test]
    fn the_override_pins_each_service_once_in_the_files_version() {
        let g = generation();
        assert_eq!(
            override_yaml(&g, "version: \"2.4\"\nservices:\n  app: {}\n"),
            "version: \"2.4\"\nservices:\n  \"app\":\n    image: \"homelab-held/web-app:20261207T230102.123Z\"\n  \"db\":\n    image: \"homelab-held/web-db:20261207T230102.123Z\"\n"
        );
        assert!(override_yaml(&g, "services:\n  app: {}\n").starts_with("services:\n"), "no version: none written");
    }

    #[test]
    fn the_argv_names_the_project_its_folder_and_every_file() {
        let host = homelab_core::desired::parse_host_file("f", "edge-1", "compose_command: docker-compose\nservices: {}\n").unwrap().spec;
        let argv = rollback_argv(&host, &generation(), &["/t/0-docker-compose.yml".into()], Some("/t/held.env"), "/t/override.yml");
        assert_eq!(
            argv.join(" "),
            "docker-compose -p web --project-directory /srv/web -f /t/0-docker-compose.yml -f /t/override.yml --env-file /t/held.env up -d --force-recreate --remove-orphans"
        );
    }
}
