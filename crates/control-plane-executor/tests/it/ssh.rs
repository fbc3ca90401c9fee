//! A "remote" node behind a real sshd on 127.0.0.1: throwaway host and user keys, strict host-key
//! checking against a known_hosts written by the test, the Docker socket forwarded over SSH.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use homelab_core::{ActionState, ActionType};
use testkit::{TempRoot, wait_for};

use crate::*;

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = tempfile::Builder::new().prefix("hx-sshd-").tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "user_key"] {
            sh("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", "homelab-test", "-f", d.join(key).to_str().unwrap()], None);
        }
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        std::fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             AllowStreamLocalForwarding yes\nAllowTcpForwarding yes\nLogLevel ERROR\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        // sshd insists on its privilege-separation folder.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot start /usr/sbin/sshd (install openssh-server)");
        let sshd = Sshd { dir, port, child };
        wait_for("sshd to listen", Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).ok());
        sshd
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `ssh:` block of a host file reaching this sshd as the current user.
    pub fn ssh_yaml(&self) -> String {
        let user = sh("id", &["-un"], None);
        format!(
            "ssh: {{ host: 127.0.0.1, user: {user}, port: {}, identity_file: {}, known_hosts: {} }}\n",
            self.port,
            self.path("user_key").display(),
            self.path("known_hosts").display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn remote_host(t: &TempRoot, sshd: &Sshd, compose_dir: &Path) {
    t.write_host("remote", &format!("{}compose_command: docker-compose\nservices:\n  app:\n    compose_dir: {}\n", sshd.ssh_yaml(), compose_dir.display()));
}

#[test]
fn remote_node_redeploy_and_container_restart_over_ssh() {
    let sshd = Sshd::start();
    let t = TempRoot::new();
    let project = ComposeProject::up();
    remote_host(&t, &sshd, project.dir.path());
    crate::gate::world_up(&t.root(), "remote");

    // Redeploy: docker-compose runs on the "remote" node through SSH; the container is recreated.
    let before = project.container_id();
    let redeploy = approved(ActionType::Redeploy, "remote", Some("app"));
    approve(&t.root(), &redeploy);
    run_once(config(t.root(), t.hosts()));
    let result = ended(&t.root(), &redeploy.id, ActionState::Completed).result.unwrap();
    assert_eq!(result.exit_status, Some(0), "{result:?}");
    let after = project.container_id();
    assert_ne!(before, after, "recreated over SSH");

    // Container restart: the Docker API through the forwarded socket finds it by compose labels.
    docker(&["kill", &after]);
    let restart = approved(ActionType::ContainerRestart, "remote", Some("app"));
    approve(&t.root(), &restart);
    run_once(config(t.root(), t.hosts()));
    let result = ended(&t.root(), &restart.id, ActionState::Completed).result.unwrap();
    assert!(result.ok, "{result:?}");
    assert_eq!(project.container_id(), after, "the same container runs again");
}

#[test]
fn unknown_host_key_is_refused_and_named() {
    let sshd = Sshd::start();
    let t = TempRoot::new();
    // A known_hosts that knows some other key for this address: strict checking must refuse.
    sh("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", sshd.path("other_key").to_str().unwrap()], None);
    let other = std::fs::read_to_string(sshd.path("other_key.pub")).unwrap();
    std::fs::write(sshd.path("known_hosts"), format!("[127.0.0.1]:{} {other}", sshd.port)).unwrap();
    let compose_dir = t.path().join("app");
    std::fs::create_dir_all(&compose_dir).unwrap();
    remote_host(&t, &sshd, &compose_dir);
    let restart = approved(ActionType::ContainerRestart, "remote", Some("app"));
    approve(&t.root(), &restart);
    run_once(config(t.root(), t.hosts()));
    let error = ended(&t.root(), &restart.id, ActionState::Failed).result.unwrap().error.unwrap();
    assert!(error.contains("cannot reach node remote over SSH") && error.contains(&format!("127.0.0.1:{}", sshd.port)), "{error}");
}

#[test]
fn unreachable_node_fails_naming_the_host() {
    let t = TempRoot::new();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    t.write_host("remote", &format!("ssh: {{ host: 127.0.0.1, port: {port} }}\nservices:\n  app:\n    containers: [app]\n"));
    let restart = approved(ActionType::ContainerRestart, "remote", Some("app"));
    approve(&t.root(), &restart);
    run_once(config(t.root(), t.hosts()));
    let error = ended(&t.root(), &restart.id, ActionState::Failed).result.unwrap().error.unwrap();
    assert!(error.contains(&format!("cannot reach node remote over SSH (127.0.0.1:{port})")), "{error}");
}
