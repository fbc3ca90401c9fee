//! Running a compose command on a node (locally, or over SSH with a fixed script) and keeping
//! the tail of its output.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use homelab_core::action::output_tail;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::remote;

/// The output of a run, kept to its tail as it arrives (a chatty compose cannot fill memory).
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<Vec<u8>>>);

impl Tail {
    pub fn push(&self, bytes: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        buf.extend_from_slice(bytes);
        let keep = 2 * homelab_core::action::OUTPUT_TAIL_BYTES;
        if buf.len() > keep {
            let cut = buf.len() - keep;
            buf.drain(..cut);
        }
    }

    pub fn text(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        output_tail(&String::from_utf8_lossy(&buf))
    }
}

async fn pump(mut r: impl AsyncRead + Unpin, tails: &[&Tail]) {
    let mut chunk = [0u8; 8192];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        for tail in tails {
            tail.push(&chunk[..n]);
        }
    }
}

/// Copies a child's stdout and stderr into the tail at the same time, until both close.
/// Returns what came on stderr (its tail), where a failing command says why.
async fn pump_output(out: Option<impl AsyncRead + Unpin>, err: Option<impl AsyncRead + Unpin>, tail: &Tail) -> String {
    let errors = Tail::default();
    tokio::join!(
        async {
            if let Some(o) = out {
                pump(o, &[tail]).await
            }
        },
        async {
            if let Some(e) = err {
                pump(e, &[tail, &errors]).await
            }
        }
    );
    errors.text()
}

/// Runs the compose argv in `dir` on this host; returns its exit status.
/// Returns the exit status and what the command wrote to stderr.
pub async fn compose_local(argv: &[String], dir: &str, node: &str, tail: &Tail) -> Result<(i64, String), String> {
    if !Path::new(dir).is_dir() {
        return Err(format!("compose_dir {dir} of node {node} does not exist"));
    }
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run `{}` in {dir} on node {node}: {e}", argv.join(" ")))?;
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let (status, errors) = tokio::join!(child.wait(), pump_output(out, err, tail));
    let status = status.map_err(|e| format!("waiting for `{}` on node {node}: {e}", argv.join(" ")))?;
    Ok((status.code().map(i64::from).unwrap_or(-1), errors))
}

/// Runs the compose argv in `dir` on a remote node. The remote shell only ever sees a fixed
/// script; the folder and every argument travel as separate, quoted positional parameters.
pub async fn compose_remote(remote: &remote::Remote, argv: &[String], dir: &str, node: &str, tail: &Tail) -> Result<(i64, String), String> {
    let mut cmd = remote.session.command("sh");
    cmd.arg("-c")
        .arg(r#"cd -- "$1" || exit 125; shift; exec "$@""#)
        .arg("sh")
        .arg(dir)
        .args(argv)
        .stdin(openssh::Stdio::null())
        .stdout(openssh::Stdio::piped())
        .stderr(openssh::Stdio::piped());
    let mut child = cmd.spawn().await.map_err(|e| format!("cannot run compose on node {node} over SSH ({}): {}", remote.shown, remote::error_chain(&e)))?;
    let (out, err) = (child.stdout().take(), child.stderr().take());
    let (status, errors) = tokio::join!(child.wait(), pump_output(out, err, tail));
    let status = status.map_err(|e| format!("compose on node {node} over SSH ({}): {}", remote.shown, remote::error_chain(&e)))?;
    let code = status.code().map(i64::from).unwrap_or(-1);
    if code == 125 {
        return Err(format!("compose_dir {dir} does not exist on node {node}"));
    }
    Ok((code, errors))
}
