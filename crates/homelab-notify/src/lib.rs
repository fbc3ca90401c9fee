//! Incident notifications beyond Telegram: a generic webhook (JSON, signed with HMAC-SHA256 in
//! `X-Homelab-Signature: sha256=<hex>`), ntfy (its HTTP publish API) and e-mail over SMTP
//! ([`email`]: lettre, STARTTLS by default). Run by the UI process next to Telegram.
//!
//! Each pass reads `world/drift.json`, runs the pure [`homelab_core::notify::step`] (incidents
//! started, flapping, resolved; floods as digests) and writes every new message into the durable
//! outbox, one file per message and channel (`state/outbox/<seq>-<channel>.json`), **before**
//! saving `state/notify.json`. Senders deliver each channel's files oldest first and remove a
//! file only after the receiver took it (a 2xx, an SMTP 250); failures back off (1 s doubling to
//! 5 min) and keep the order. Only a mail server's permanent refusal of one mail (a 5xx that is
//! not about the login) moves that file to `quarantine/outbox/` instead, so it cannot hold up
//! the channel. A crash between the send and the removal sends that message again, with the
//! same `id` (the idempotency id, also in the `X-Homelab-Id` header and the mail's
//! `Message-ID`): receivers drop duplicates by it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use hmac::{Hmac, Mac};
use homelab_core::notify::{Message, NotifyPolicy, NotifyState, step};
use homelab_store::{DataRoot, Doc};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

pub mod email;

/// The signature header of the webhook.
pub const SIGNATURE_HEADER: &str = "X-Homelab-Signature";
/// The idempotency id header (webhook, ntfy and e-mail).
pub const ID_HEADER: &str = "X-Homelab-Id";

/// One channel's configuration. Secrets never leave this struct (Debug hides them).
#[derive(Clone)]
pub enum Channel {
    /// `NOTIFY_WEBHOOK_URL`, `NOTIFY_WEBHOOK_SECRET` (or `state/secrets/notify_webhook_secret`).
    Webhook { url: String, secret: String },
    /// `NTFY_URL` (`https://ntfy.sh/my-topic`), optional `NTFY_TOKEN`.
    Ntfy { url: String, token: Option<String> },
    /// `SMTP_HOST`, `SMTP_FROM`, `SMTP_TO`, … (see [`email::Email`]).
    Email(Box<email::Email>),
}

impl Channel {
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Ntfy { .. } => "ntfy",
            Channel::Email(_) => "email",
        }
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Channel::Webhook { url, .. } => write!(f, "Webhook {{ url: {url:?}, secret: <redacted> }}"),
            Channel::Ntfy { url, token } => write!(f, "Ntfy {{ url: {url:?}, token: {:?} }}", token.as_ref().map(|_| "<redacted>")),
            Channel::Email(e) => e.fmt(f),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub channels: Vec<Channel>,
    pub policy: NotifyPolicy,
    /// `NOTIFY_TICK` (5 s): how often the drift file and the outbox are looked at.
    pub tick: Duration,
    /// `NOTIFY_TIMEOUT` (10 s) per HTTP call; for e-mail the connect, and three times it the
    /// whole delivery.
    pub timeout: Duration,
    /// Backoff bounds for a failing channel.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl NotifyConfig {
    /// `None` when no channel is configured; an error naming the variable when one is half set.
    pub fn from_env(root: &DataRoot) -> Option<anyhow::Result<NotifyConfig>> {
        Self::from_lookup(|k| std::env::var(k).ok(), |name| root.read_secret(name))
    }

    /// The same through `get` (variables) and `secret_file` (files in `state/secrets/`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>, secret_file: impl Fn(&str) -> Option<String>) -> Option<anyhow::Result<NotifyConfig>> {
        let var = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let file = |k: &str| secret_file(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let (webhook, ntfy, email) = (var("NOTIFY_WEBHOOK_URL"), var("NTFY_URL"), email::Email::from_lookup(&var, &file));
        if webhook.is_none() && ntfy.is_none() && email.is_none() {
            return None;
        }
        Some((|| {
            let mut channels = Vec::new();
            if let Some(url) = webhook {
                check_url("NOTIFY_WEBHOOK_URL", &url)?;
                let secret = var("NOTIFY_WEBHOOK_SECRET").or_else(|| file("notify_webhook_secret")).context(
                    "NOTIFY_WEBHOOK_SECRET: is not set (nor state/secrets/notify_webhook_secret), but NOTIFY_WEBHOOK_URL is: the payload is always signed",
                )?;
                channels.push(Channel::Webhook { url, secret });
            }
            if let Some(url) = ntfy {
                check_url("NTFY_URL", &url)?;
                channels.push(Channel::Ntfy { url, token: var("NTFY_TOKEN").or_else(|| file("ntfy_token")) });
            }
            if let Some(e) = email {
                channels.push(Channel::Email(Box::new(e?)));
            }
            let dur = |k: &str, d: Duration| -> anyhow::Result<Duration> {
                var(k).map(|v| homelab_core::duration::parse_duration(&v).map_err(|e| anyhow::anyhow!("{k}: {e}"))).transpose().map(|v| v.unwrap_or(d))
            };
            let defaults = NotifyPolicy::default();
            let policy = NotifyPolicy {
                resolve_after: dur("NOTIFY_RESOLVE_AFTER", defaults.resolve_after)?,
                flood_limit: var("NOTIFY_FLOOD_LIMIT")
                    .map(|v| v.parse().context("NOTIFY_FLOOD_LIMIT: not a number"))
                    .transpose()?
                    .unwrap_or(defaults.flood_limit),
                flood_window: dur("NOTIFY_FLOOD_WINDOW", defaults.flood_window)?,
            };
            Ok(NotifyConfig {
                channels,
                policy,
                tick: dur("NOTIFY_TICK", Duration::from_secs(5))?.max(Duration::from_millis(50)),
                timeout: dur("NOTIFY_TIMEOUT", Duration::from_secs(10))?,
                min_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(300),
            })
        })())
    }
}

fn check_url(var: &str, url: &str) -> anyhow::Result<()> {
    if url.starts_with("http://") || url.starts_with("https://") { Ok(()) } else { anyhow::bail!("{var}: {url:?} is not an http(s) URL") }
}

/// One outbox file: the message and the channel it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub channel: String,
    pub message: Message,
}

/// `sha256=<hex>` of `body` with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The webhook body: the message as JSON plus a short `title` and `text`.
pub fn webhook_body(m: &Message) -> Vec<u8> {
    let mut v = serde_json::to_value(m).unwrap_or_default();
    v["title"] = serde_json::Value::String(m.title());
    v["text"] = serde_json::Value::String(m.text());
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The producer: one pass over the drift file into the outbox. Returns the messages written.
pub fn produce(root: &DataRoot, cfg: &NotifyConfig, state: &mut NotifyState, now: homelab_core::Timestamp) -> anyhow::Result<usize> {
    let Some(drift) = root.read_drift().context("reading world/drift.json")? else { return Ok(0) };
    let before = state.clone();
    let messages = step(state, &drift, &cfg.policy, now);
    for m in &messages {
        for c in &cfg.channels {
            let seq = m.id.rsplit('-').next().unwrap_or("0");
            let entry = OutboxEntry { channel: c.name().to_owned(), message: m.clone() };
            root.write_outbox(&format!("{seq}-{}.json", c.name()), &entry).with_context(|| format!("writing the outbox for {}", m.id))?;
        }
    }
    if *state != before {
        // After the outbox: a crash in between makes the same messages again, with the same ids.
        root.write_notify_state(state).with_context(|| format!("saving {}", Doc::NotifyState))?;
    }
    Ok(messages.len())
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later (with back-off, keeping the order): the receiver is down, busy, or
    /// refuses the channel's configuration (a wrong URL, secret, token or login), which holds
    /// for every message alike.
    Retry(String),
    /// The receiver refused this message for good (a mail server's 5xx to it): retrying cannot
    /// help, so it goes to `quarantine/outbox/` and the channel goes on.
    Refused(String),
}

/// What the senders talk through: one HTTP client, and the SMTP transport when e-mail is on.
pub struct Clients {
    pub http: reqwest::Client,
    pub smtp: Option<email::Mailer>,
}

impl Clients {
    pub fn new(cfg: &NotifyConfig) -> anyhow::Result<Clients> {
        let http = reqwest::Client::builder().timeout(cfg.timeout).build().context("building the HTTP client")?;
        let smtp = cfg.channels.iter().find_map(|c| if let Channel::Email(e) = c { Some(e.mailer(cfg.timeout)) } else { None }).transpose()?;
        Ok(Clients { http, smtp })
    }
}

/// Sends one entry on its channel. `Ok` only when the receiver took it (2xx, SMTP 250). The
/// webhook and ntfy retry every other answer: a 4xx there means a wrong URL, secret or token,
/// the same for every message.
pub async fn send(clients: &Clients, channel: &Channel, m: &Message) -> Result<(), SendError> {
    let http = &clients.http;
    let req = match channel {
        Channel::Webhook { url, secret } => {
            let body = webhook_body(m);
            http.post(url).header("content-type", "application/json").header(SIGNATURE_HEADER, sign(secret, &body)).header(ID_HEADER, &m.id).body(body)
        }
        Channel::Ntfy { url, token } => {
            let priority = if m.all_resolved() { "default" } else { "high" };
            let tags = if m.all_resolved() { "white_check_mark" } else { "rotating_light" };
            // Header values are ASCII on the wire; the emoji come from the tags.
            let title: String = m.title().chars().filter(char::is_ascii).collect();
            let mut r = http.post(url).header("Title", title.trim()).header("Priority", priority).header("Tags", tags).header(ID_HEADER, &m.id).body(m.text());
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r
        }
        Channel::Email(e) => {
            let smtp = clients.smtp.as_ref().ok_or_else(|| SendError::Retry("no SMTP transport was set up".into()))?;
            return email::send(smtp, e, m).await;
        }
    };
    match req.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(SendError::Retry(format!("answered {}", r.status()))),
        // Without the URL: it may carry a topic or credentials.
        Err(e) => Err(SendError::Retry(format!("{}", e.without_url()))),
    }
}

/// Per channel: when it may be tried again, and the current backoff.
#[derive(Default)]
struct Backoffs(BTreeMap<String, (tokio::time::Instant, Duration)>);

/// Delivers what is in the outbox, per channel oldest first; stops a channel at its first
/// failure (order is kept); a message refused for good is quarantined and the channel goes on.
/// Returns how many were sent.
async fn deliver(root: &DataRoot, cfg: &NotifyConfig, clients: &Clients, backoffs: &mut Backoffs, counters: &mut BTreeMap<String, u64>) -> usize {
    let names = match root.list_outbox() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list state/outbox/");
            return 0;
        }
    };
    let mut sent = 0;
    let mut blocked: std::collections::BTreeSet<String> = Default::default();
    for name in names {
        let entry: OutboxEntry = match root.read_outbox(&name) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "unreadable outbox file; left for a person to look at");
                continue;
            }
        };
        if blocked.contains(&entry.channel) {
            continue;
        }
        let Some(channel) = cfg.channels.iter().find(|c| c.name() == entry.channel) else { continue };
        if backoffs.0.get(&entry.channel).is_some_and(|(at, _)| tokio::time::Instant::now() < *at) {
            blocked.insert(entry.channel.clone());
            continue;
        }
        match send(clients, channel, &entry.message).await {
            Ok(()) => {
                if let Err(e) = root.remove_outbox(&name) {
                    tracing::error!(file = %name, error = %e, "sent, but cannot remove it from the outbox: it will be sent again (same id)");
                }
                backoffs.0.remove(&entry.channel);
                *counters.entry(format!("{}_sent", entry.channel)).or_default() += 1;
                sent += 1;
            }
            Err(failure) => {
                let retry = match failure {
                    SendError::Retry(e) => e,
                    SendError::Refused(e) => match root.quarantine_outbox(&name, &format!("{} refused {} for good: {e}", entry.channel, entry.message.id)) {
                        Ok(to) => {
                            // The receiver answered, so the channel works: on to the next one.
                            *counters.entry(format!("{}_refused", entry.channel)).or_default() += 1;
                            tracing::error!(channel = %entry.channel, id = %entry.message.id, error = %e, to = %to, "notification refused for good; moved to quarantine, the channel goes on");
                            backoffs.0.remove(&entry.channel);
                            continue;
                        }
                        Err(qe) => format!("{e} (refused for good, but it cannot be moved to quarantine: {qe})"),
                    },
                };
                let prev = backoffs.0.get(&entry.channel).map(|(_, d)| *d);
                let wait = prev.map_or(cfg.min_backoff, |d| (d * 2).min(cfg.max_backoff));
                backoffs.0.insert(entry.channel.clone(), (tokio::time::Instant::now() + wait, wait));
                *counters.entry(format!("{}_failures", entry.channel)).or_default() += 1;
                tracing::warn!(channel = %entry.channel, id = %entry.message.id, error = %retry, retry_in_secs = wait.as_secs_f32(), "notification not delivered; will retry");
                blocked.insert(entry.channel.clone());
            }
        }
    }
    sent
}

/// Runs the notifier until `shutdown`: produce from drift.json, deliver the outbox.
pub async fn run(cfg: NotifyConfig, root: DataRoot, shutdown: CancellationToken) -> anyhow::Result<()> {
    let clients = Clients::new(&cfg)?;
    let mut state: NotifyState =
        root.read_notify_state().with_context(|| format!("reading {} (delete it to start afresh)", Doc::NotifyState))?.unwrap_or_default();
    if state.epoch.is_empty() {
        state.epoch = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    }
    let started_at = chrono::Utc::now();
    let mut backoffs = Backoffs::default();
    let mut counters: BTreeMap<String, u64> = BTreeMap::new();
    tracing::info!(channels = ?cfg.channels.iter().map(Channel::name).collect::<Vec<_>>(), "notifications on");
    loop {
        let now = chrono::Utc::now();
        if let Err(e) = produce(&root, &cfg, &mut state, now) {
            tracing::warn!(error = format!("{e:#}"), "notification pass failed; will retry");
        }
        deliver(&root, &cfg, &clients, &mut backoffs, &mut counters).await;
        let hb = homelab_core::Heartbeat {
            counters: counters.clone(),
            extra: serde_json::json!({ "outbox": root.list_outbox().map(|v| v.len()).unwrap_or(0), "open_incidents": state.open.len() }),
            ..homelab_store::daemon::heartbeat("notify", started_at, now, cfg.tick)
        };
        let _ = root.write_heartbeat("notify", &hb);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(cfg.tick) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(sign("Jefe", b"what do ya want for nothing?"), "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn configuration_table() {
        let cfg = |vars: &[(&str, &str)], files: &[(&str, &str)]| {
            let v: BTreeMap<String, String> = vars.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
            let f: BTreeMap<String, String> = files.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
            NotifyConfig::from_lookup(|k| v.get(k).cloned(), |k| f.get(k).cloned()).map(|r| r.map_err(|e| e.to_string()))
        };
        assert!(cfg(&[], &[]).is_none());
        let e = cfg(&[("NOTIFY_WEBHOOK_URL", "http://x/")], &[]).unwrap().unwrap_err();
        assert!(e.starts_with("NOTIFY_WEBHOOK_SECRET: is not set"), "{e}");
        let c = cfg(&[("NOTIFY_WEBHOOK_URL", "http://x/"), ("NTFY_URL", "http://n/topic")], &[("notify_webhook_secret", "s3cret\n")]).unwrap().unwrap();
        assert_eq!(c.channels.iter().map(Channel::name).collect::<Vec<_>>(), ["webhook", "ntfy"]);
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(cfg(&[("NTFY_URL", "ntfy.sh/x")], &[]).unwrap().is_err());
    }
}
