//! Where events go: the local data root, or the control plane's ingest endpoint through a
//! durable spool.
//!
//! With a control plane, every event is first written to the spool folder (one file per event,
//! atomic write, named `<20-digit sequence>-<event file name>` so names sort in emission order),
//! then a single deliverer task POSTs the files oldest first and deletes each one only after a
//! 2xx answer. While the control plane is unreachable the files wait; the agent's restart keeps
//! them. A crash between the answer and the delete re-sends one event, which the ingest endpoint
//! recognises by its id: none lost, none duplicated.
//!
//! Every answer of the ingest endpoint lists this node's pending check-now requests. While the
//! spool is empty, the deliverer asks for them with an empty batch (`[]`) every
//! [`crate::CHECK_NOW_POLL_REMOTE`], on the same client (keep-alive), and publishes each list to
//! the agent ([`Deliverer::requests`]). A request served without an event to say so is
//! acknowledged in the next poll (`?served=<service>@<requested_at>`).
//!
//! An event the control plane will never take (a 4xx other than 401/403/408/429, e.g. 422 for a
//! time outside `MAX_CLOCK_SKEW` or the retention, or 400 for an invalid event) is moved to
//! `<spool>/rejected/` with a `<name>.reason` file holding the status and the control plane's
//! message, logged once at warn, and delivery goes on with the next event: one bad event never
//! blocks the spool and is never dropped silently.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use homelab_core::{Event, Timestamp};
use homelab_store::DataRoot;
use serde::Deserialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// How long one POST to the control plane may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Backoff between delivery attempts while the control plane is down.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// At most this many events wait in memory while the data root cannot be written (a full disk):
/// over an hour of a busy node's events. Past it the oldest are dropped, and the log says how many.
const BACKLOG_MAX: usize = 10_000;

/// Events that could not be written into the data root yet, oldest first.
#[derive(Default)]
pub struct Backlog {
    events: std::collections::VecDeque<Event>,
    dropped: u64,
}

/// Where the agent's events go.
#[derive(Clone)]
pub enum Sink {
    /// `--root`: event files written straight into the data root. An event that cannot be
    /// written (disk full, read-only) waits in a bounded in-memory backlog and is written, in
    /// order, before the next event: a state change seen during the outage still arrives (late,
    /// which the observer folds like any other).
    Root(DataRoot, Arc<std::sync::Mutex<Backlog>>, homelab_store::WriteErrors),
    /// `--control-plane`: spooled, then delivered by [`Deliverer`].
    Remote { spool: Arc<Spool>, wake: Arc<Notify> },
}

impl Sink {
    /// Hands one event over durably: on disk in the data root or in the spool.
    pub async fn emit(&self, event: Event) -> anyhow::Result<()> {
        match self {
            Sink::Root(root, backlog, errors) => {
                let (root, backlog, errors) = (root.clone(), backlog.clone(), errors.clone());
                tokio::task::spawn_blocking(move || write_with_backlog(&root, &backlog, &errors, event)).await?;
            }
            Sink::Remote { spool, wake } => {
                let spool = spool.clone();
                tokio::task::spawn_blocking(move || spool.push(&event)).await??;
                wake.notify_one();
            }
        }
        Ok(())
    }
}

impl Sink {
    /// Events straight into a data root.
    pub fn root(root: DataRoot) -> Sink {
        Sink::Root(root, Default::default(), homelab_store::WriteErrors::new("node-agent"))
    }
}

/// Writes the backlog, then `event`, in order; whatever cannot be written stays in the backlog.
fn write_with_backlog(root: &DataRoot, backlog: &std::sync::Mutex<Backlog>, errors: &homelab_store::WriteErrors, event: Event) {
    let mut b = backlog.lock().unwrap_or_else(|e| e.into_inner());
    b.events.push_back(event);
    while let Some(next) = b.events.front() {
        match root.write_event(next) {
            Ok(_) => {
                b.events.pop_front();
            }
            Err(e) => {
                errors.failed_io(&format!("an event into events/ ({} waiting in memory)", b.events.len()), &e);
                if b.events.len() > BACKLOG_MAX {
                    let over = b.events.len() - BACKLOG_MAX;
                    b.events.drain(..over);
                    b.dropped += over as u64;
                    tracing::error!(dropped_total = b.dropped, "event backlog full while the data root cannot be written: oldest events dropped");
                }
                return;
            }
        }
    }
    if errors.is_failing() {
        errors.succeeded();
    }
}

/// The spool folder: events waiting for the control plane, one file each.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    next: AtomicU64,
}

impl Spool {
    /// Opens (creating) the spool folder and continues its sequence after the newest file.
    pub fn open(dir: &Path) -> anyhow::Result<Spool> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the spool folder {}", dir.display()))?;
        let spool = Spool { dir: dir.to_owned(), next: AtomicU64::new(0) };
        let last = spool.pending()?.iter().filter_map(|n| n.split('-').next()?.parse::<u64>().ok()).max();
        spool.next.store(last.map_or(1, |n| n + 1), Ordering::SeqCst);
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one event into the spool, atomically and durably.
    pub fn push(&self, event: &Event) -> anyhow::Result<PathBuf> {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("{seq:020}-{}", event.file_name()));
        let bytes = serde_json::to_vec(event)?;
        homelab_store::write_atomic(&path, &bytes).with_context(|| format!("cannot spool event into {}", path.display()))?;
        Ok(path)
    }

    /// File names waiting for delivery, oldest first.
    pub fn pending(&self) -> anyhow::Result<Vec<String>> {
        let names = homelab_store::list_names(&self.dir).with_context(|| format!("cannot list the spool folder {}", self.dir.display()))?;
        Ok(names.into_iter().filter(|n| n.ends_with(".json") && n.as_bytes().first().is_some_and(u8::is_ascii_digit)).collect())
    }

    fn remove(&self, name: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.dir.join(name))?;
        homelab_store::atomic::sync_dir(&self.dir)
    }

    /// Where refused events are kept: `<spool>/rejected/`.
    pub fn rejected_dir(&self) -> PathBuf {
        self.dir.join("rejected")
    }

    /// Moves an event the control plane will never accept out of the queue, so it cannot block
    /// the events behind it. It stays on disk for the operator, with `<name>.reason` beside it
    /// (written first, so a moved event never lacks its reason).
    fn reject(&self, name: &str, why: &str) -> std::io::Result<PathBuf> {
        let dir = self.rejected_dir();
        std::fs::create_dir_all(&dir)?;
        homelab_store::write_atomic(&dir.join(format!("{name}.reason")), format!("{}\n", why.trim_end()).as_bytes())?;
        let to = dir.join(name);
        std::fs::rename(self.dir.join(name), &to)?;
        homelab_store::atomic::sync_dir(&self.dir)?;
        Ok(to)
    }
}

/// The `error` of a JSON error answer (else the start of the body), on one line, at most 500
/// characters.
async fn error_message(resp: reqwest::Response) -> String {
    let body = resp.text().await.unwrap_or_default();
    let text = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned)).unwrap_or(body);
    let line = homelab_core::one_line(&text, 500);
    let line = line.trim();
    if line.is_empty() { "(no message)".into() } else { line.to_owned() }
}

/// Why a delivery round stopped before the spool was empty.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the control plane at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the control plane refused the agent token ({status}): check AGENT_TOKEN for this node")]
    Unauthorized { status: u16 },
    #[error("spool error: {0}")]
    Spool(#[from] anyhow::Error),
}

/// A check-now request of this node, as the ingest answer lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PendingCheckNow {
    pub service: String,
    pub requested_by: String,
    #[serde(with = "homelab_core::ts_format")]
    pub requested_at: Timestamp,
}

/// What the agent reads in an ingest answer (a control plane without check-now has no list).
#[derive(Deserialize)]
struct Answer {
    check_now: Option<Vec<PendingCheckNow>>,
}

/// Check-now requests served without an event: `(service, requested_at)`, sent as `served`.
pub type Acks = Arc<std::sync::Mutex<Vec<(String, Timestamp)>>>;

/// Sends spooled events to `<control plane>/api/v1/events`, oldest first, one at a time.
pub struct Deliverer {
    spool: Arc<Spool>,
    client: reqwest::Client,
    url: String,
    token: String,
    requests: watch::Sender<Vec<PendingCheckNow>>,
    acks: Acks,
}

impl Deliverer {
    pub fn new(spool: Arc<Spool>, control_plane: &str, token: String) -> anyhow::Result<Deliverer> {
        let url = format!("{}/api/v1/events", control_plane.trim_end_matches('/'));
        let client = reqwest::Client::builder().timeout(POST_TIMEOUT).build()?;
        Ok(Deliverer { spool, client, url, token, requests: watch::Sender::new(Vec::new()), acks: Acks::default() })
    }

    /// The node's pending check-now requests, as of the latest ingest answer.
    pub fn requests(&self) -> watch::Receiver<Vec<PendingCheckNow>> {
        self.requests.subscribe()
    }

    /// Where the agent puts requests it served without an event; sent with the next poll.
    pub fn acks(&self) -> Acks {
        self.acks.clone()
    }

    /// Publishes the check-now list of a 2xx answer (reading the body also frees the
    /// connection for the next request).
    async fn read_answer(&self, resp: reqwest::Response) {
        if let Ok(Answer { check_now: Some(list) }) = resp.json::<Answer>().await {
            self.requests.send_replace(list);
        }
    }

    /// `POST []` (writes nothing): the answer lists the pending check-now requests; `served`
    /// acknowledges the ones served without an event.
    pub async fn poll(&self) -> Result<(), DeliveryError> {
        let acks = self.acks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut req = self.client.post(&self.url).bearer_auth(&self.token).header(reqwest::header::CONTENT_TYPE, "application/json").body("[]");
        if !acks.is_empty() {
            let served: Vec<String> = acks.iter().map(|(service, at)| format!("{service}@{}", homelab_core::rfc3339(*at))).collect();
            req = req.query(&[("served", served.join(","))]);
        }
        let resp = req.send().await.map_err(|e| DeliveryError::Unreachable { url: self.url.clone(), reason: e.without_url().to_string() })?;
        let status = resp.status();
        if status.is_success() || status.as_u16() == 400 {
            // 400: the control plane will never take these acknowledgements; do not resend them.
            self.acks.lock().unwrap_or_else(|e| e.into_inner()).retain(|a| !acks.contains(a));
        }
        match status.as_u16() {
            _ if status.is_success() => {
                self.read_answer(resp).await;
                Ok(())
            }
            400 => {
                let reason = error_message(resp).await;
                tracing::warn!(%reason, "the control plane refused the check-now poll");
                Ok(())
            }
            401 | 403 => Err(DeliveryError::Unauthorized { status: status.as_u16() }),
            _ => Err(DeliveryError::Unreachable { url: self.url.clone(), reason: format!("answered {status}") }),
        }
    }

    /// Delivers everything in the spool, in order. Returns how many were delivered; stops at the
    /// first event that cannot be delivered now (it and everything after it stay spooled).
    pub async fn deliver_all(&self) -> Result<usize, DeliveryError> {
        let mut delivered = 0;
        loop {
            let spool = self.spool.clone();
            let names = tokio::task::spawn_blocking(move || spool.pending()).await.map_err(anyhow::Error::from)??;
            if names.is_empty() {
                return Ok(delivered);
            }
            for name in names {
                let path = self.spool.dir().join(&name);
                let body = match tokio::fs::read(&path).await {
                    Ok(b) => b,
                    // Someone removed it (an operator): nothing to send.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display()).into()),
                };
                let resp =
                    self.client.post(&self.url).bearer_auth(&self.token).header(reqwest::header::CONTENT_TYPE, "application/json").body(body).send().await;
                let resp = match resp {
                    Ok(r) => r,
                    Err(e) => return Err(DeliveryError::Unreachable { url: self.url.clone(), reason: e.without_url().to_string() }),
                };
                let status = resp.status();
                let spool = self.spool.clone();
                if status.is_success() {
                    tokio::task::spawn_blocking(move || spool.remove(&name)).await.map_err(anyhow::Error::from)?.map_err(anyhow::Error::from)?;
                    delivered += 1;
                    self.read_answer(resp).await;
                } else if status.as_u16() == 401 || status.as_u16() == 403 {
                    return Err(DeliveryError::Unauthorized { status: status.as_u16() });
                } else if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
                    let message = error_message(resp).await;
                    let why = format!("the control plane answered {status} for this event: {message}");
                    let reason = why.clone();
                    let moved = tokio::task::spawn_blocking(move || spool.reject(&name, &reason))
                        .await
                        .map_err(anyhow::Error::from)?
                        .with_context(|| format!("cannot move a refused event out of the spool {}", self.spool.dir().display()))?;
                    tracing::warn!(status = %status, file = %moved.display(), reason = %why, "the control plane refused a spooled event; kept it in rejected/ with the reason and went on with the next one");
                } else {
                    return Err(DeliveryError::Unreachable { url: self.url.clone(), reason: format!("answered {status}") });
                }
            }
        }
    }

    /// Delivers whenever woken, and polls for check-now requests once the spool is empty (or
    /// acknowledgements wait) at most [`crate::CHECK_NOW_POLL_REMOTE`] after the last round,
    /// retrying with backoff while the control plane is down, until shutdown. What is still
    /// spooled at shutdown is sent after the next start.
    pub async fn run(self, wake: Arc<Notify>, shutdown: CancellationToken) {
        let mut backoff = RETRY_MIN;
        let mut was_down = false;
        loop {
            let round = match self.deliver_all().await {
                Ok(n) if n == 0 || !self.acks.lock().unwrap_or_else(|e| e.into_inner()).is_empty() => self.poll().await.map(|()| n),
                r => r,
            };
            let wait = match round {
                Ok(n) => {
                    if was_down || n > 0 {
                        tracing::debug!(delivered = n, "spool delivered");
                    }
                    if was_down {
                        tracing::info!(url = %self.url, "control plane reachable again; spool delivered");
                        was_down = false;
                    }
                    backoff = RETRY_MIN;
                    None
                }
                Err(e) => {
                    if !was_down {
                        tracing::warn!(error = %e, spool = %self.spool.dir().display(), "cannot deliver events; they stay spooled and are retried");
                        was_down = true;
                    }
                    let wait = backoff;
                    backoff = (backoff * 2).min(RETRY_MAX);
                    Some(wait)
                }
            };
            match wait {
                // Up: wait for the next event, or the next poll.
                None => tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(crate::CHECK_NOW_POLL_REMOTE) => {}
                },
                // Down: retry after the backoff; a new event does not make it retry sooner.
                Some(wait) => tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                },
            }
        }
    }
}
