//! Telegram approvals: every new pending action goes to the allowed chats with Approve / Reject
//! buttons; a press from an allowed chat (and user) moves the action in the data root exactly as
//! the web UI does (`telegram:<user id>` in its history); the message is edited to show the
//! outcome, and the executor's result follows in the same thread.
//!
//! The task runs next to the UI daemon: [`TelegramConfig::from_env`] says whether it is
//! configured, [`run`] runs it with long polling, and in webhook mode [`webhook_router`] gives
//! the UI a router to mount while [`run_webhook`] consumes what it receives. Bot API failures
//! only delay Telegram: approvals in the UI never wait for it.

pub mod api;
mod engine;
pub mod render;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use homelab_core::duration::parse_duration;
use homelab_ops::Ops;
use homelab_store::watch::Watcher;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use api::Update;
pub use engine::{FLOOD_LIMIT, FLOOD_WINDOW};

/// The public Bot API.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";
/// Where [`webhook_router`] listens.
pub const WEBHOOK_PATH: &str = "/telegram/webhook";
/// The header Telegram sends the webhook secret in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `getUpdates` long polling (the default: works behind NAT, needs no public URL).
    Polling,
    /// Telegram posts updates to [`WEBHOOK_PATH`] on the UI's listener.
    Webhook,
}

/// Configuration, from the environment.
#[derive(Clone)]
pub struct TelegramConfig {
    /// `TELEGRAM_BOT_TOKEN`. Never logged.
    pub bot_token: String,
    /// `TELEGRAM_CHAT_IDS`: the chats messages go to and presses are accepted from.
    pub chat_ids: Vec<i64>,
    /// `TELEGRAM_USER_IDS`: when set, only these users' presses count.
    pub user_ids: Option<Vec<i64>>,
    /// `TELEGRAM_API_BASE` (default the public Bot API).
    pub api_base: String,
    /// `TELEGRAM_MODE`: `polling` (default) or `webhook`.
    pub mode: Mode,
    /// `TELEGRAM_WEBHOOK_SECRET`: required in webhook mode. Never logged.
    pub webhook_secret: Option<String>,
    /// `TELEGRAM_WEBHOOK_URL`: when set in webhook mode, registered with `setWebhook` at start.
    pub webhook_url: Option<String>,
    /// `TELEGRAM_POLL_TIMEOUT` (default 30s): how long one `getUpdates` waits on the server.
    pub poll_timeout: Duration,
    /// `TELEGRAM_CALL_TIMEOUT` (default 10s): the timeout of every other Bot API call.
    pub call_timeout: Duration,
    /// `TELEGRAM_RESCAN` (default 30s): full rescan of `actions/` besides file notifications.
    pub rescan_every: Duration,
}

impl std::fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("bot_token", &"<redacted>")
            .field("chat_ids", &self.chat_ids)
            .field("user_ids", &self.user_ids)
            .field("api_base", &self.api_base)
            .field("mode", &self.mode)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "<redacted>"))
            .field("webhook_url", &self.webhook_url)
            .field("poll_timeout", &self.poll_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("rescan_every", &self.rescan_every)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl TelegramConfig {
    /// `None` when Telegram is not configured (neither `TELEGRAM_BOT_TOKEN` nor
    /// `TELEGRAM_CHAT_IDS` set); an error naming the variable when it is half or badly configured.
    pub fn from_env() -> Option<Result<TelegramConfig, ConfigError>> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The same, reading variables through `get` (empty values count as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<Result<TelegramConfig, ConfigError>> {
        let var = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let token = var("TELEGRAM_BOT_TOKEN");
        let chats = var("TELEGRAM_CHAT_IDS");
        if token.is_none() && chats.is_none() {
            return None;
        }
        Some((|| {
            let err = |var: &'static str, problem: String| ConfigError { var, problem };
            let bot_token = token
                .ok_or_else(|| err("TELEGRAM_BOT_TOKEN", "is not set, but TELEGRAM_CHAT_IDS is: set both to enable Telegram approvals, or neither".into()))?;
            if bot_token.chars().any(|c| c.is_whitespace() || c == '/') {
                return Err(err("TELEGRAM_BOT_TOKEN", "does not look like a bot token (it has a space or a slash)".into()));
            }
            let chat_ids = ids(chats.as_deref().ok_or_else(|| {
                err("TELEGRAM_CHAT_IDS", "is not set, but TELEGRAM_BOT_TOKEN is: set the chat ids to send approvals to (comma separated)".into())
            })?)
            .map_err(|p| err("TELEGRAM_CHAT_IDS", p))?;
            let user_ids = var("TELEGRAM_USER_IDS").map(|v| ids(&v)).transpose().map_err(|p| err("TELEGRAM_USER_IDS", p))?;
            let mode = match var("TELEGRAM_MODE").as_deref() {
                None | Some("polling") => Mode::Polling,
                Some("webhook") => Mode::Webhook,
                Some(other) => return Err(err("TELEGRAM_MODE", format!("{other:?} is not a mode: use polling or webhook"))),
            };
            let webhook_secret = var("TELEGRAM_WEBHOOK_SECRET");
            if mode == Mode::Webhook {
                match &webhook_secret {
                    None => return Err(err("TELEGRAM_WEBHOOK_SECRET", "is required in webhook mode (1-256 characters A-Z, a-z, 0-9, _ and -)".into())),
                    Some(s) if s.len() > 256 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {
                        return Err(err("TELEGRAM_WEBHOOK_SECRET", "may only hold 1-256 characters A-Z, a-z, 0-9, _ and -".into()));
                    }
                    Some(_) => {}
                }
            }
            let dur = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
                var(name).map(|v| parse_duration(&v).map_err(|p| err(name, p))).transpose().map(|d| d.unwrap_or(default))
            };
            Ok(TelegramConfig {
                bot_token,
                chat_ids,
                user_ids,
                api_base: var("TELEGRAM_API_BASE").unwrap_or_else(|| DEFAULT_API_BASE.to_owned()),
                mode,
                webhook_secret,
                webhook_url: var("TELEGRAM_WEBHOOK_URL"),
                poll_timeout: dur("TELEGRAM_POLL_TIMEOUT", Duration::from_secs(30))?,
                call_timeout: dur("TELEGRAM_CALL_TIMEOUT", Duration::from_secs(10))?,
                rescan_every: dur("TELEGRAM_RESCAN", Duration::from_secs(30))?.max(Duration::from_millis(100)),
            })
        })())
    }
}

fn ids(s: &str) -> Result<Vec<i64>, String> {
    let v: Vec<i64> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<i64>().map_err(|_| format!("{p:?} is not a numeric Telegram id (e.g. 123456789 or -1001234567890)")))
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err("no ids given".into());
    }
    Ok(v)
}

/// Runs the Telegram task with long polling until `shutdown`. Presses are operator commands
/// of `ops` (its data root, its node groups). In webhook mode use [`webhook_router`] and
/// [`run_webhook`] instead.
pub async fn run(cfg: TelegramConfig, ops: Ops, shutdown: CancellationToken) -> anyhow::Result<()> {
    if cfg.mode == Mode::Webhook {
        anyhow::bail!("TELEGRAM_MODE=webhook: mount homelab_telegram::webhook_router() and call run_webhook() instead of run()");
    }
    run_inner(cfg, ops, None, shutdown).await
}

/// Runs the Telegram task on the updates the webhook router receives.
pub async fn run_webhook(cfg: TelegramConfig, ops: Ops, webhook: Webhook, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_inner(cfg, ops, Some(webhook.rx), shutdown).await
}

/// The receiving end of [`webhook_router`].
pub struct Webhook {
    rx: mpsc::Receiver<Update>,
}

#[derive(Clone)]
struct WebhookState {
    tx: mpsc::Sender<Update>,
    secret: Arc<str>,
}

/// A router for the UI to mount: `POST /telegram/webhook`, accepted only with the right
/// `X-Telegram-Bot-Api-Secret-Token` header. Fails when no webhook secret is configured.
pub fn webhook_router(cfg: &TelegramConfig) -> anyhow::Result<(Router, Webhook)> {
    let secret = cfg.webhook_secret.clone().context("TELEGRAM_WEBHOOK_SECRET is required for the webhook")?;
    let (tx, rx) = mpsc::channel(256);
    let router = Router::new().route(WEBHOOK_PATH, post(webhook)).with_state(WebhookState { tx, secret: secret.into() });
    Ok((router, Webhook { rx }))
}

async fn webhook(State(st): State<WebhookState>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if !constant_time_eq(given, st.secret.as_bytes()) {
        tracing::warn!("Telegram webhook call without the right secret token; ignored");
        return StatusCode::UNAUTHORIZED;
    }
    let update: Update = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "Telegram webhook body is not an update; ignored");
            return StatusCode::BAD_REQUEST;
        }
    };
    match st.tx.try_send(update) {
        Ok(()) => StatusCode::OK,
        // Telegram retries later; nothing is lost.
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn run_inner(cfg: TelegramConfig, ops: Ops, updates: Option<mpsc::Receiver<Update>>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let root = ops.root().clone();
    let bot = api::Bot::new(&cfg.api_base, &cfg.bot_token, cfg.call_timeout).map_err(|e| e.without_url()).context("building the HTTP client")?;
    let mut engine = engine::Engine::load(cfg.clone(), ops, bot.clone())?;
    let tasks = TaskTracker::new();
    // Stops the helper tasks; a child, so that stopping here never stops the rest of the process.
    let stop = shutdown.child_token();

    // File notifications are hints; a flag the loop waits on (a stored permit, so none is lost).
    let dirty = Arc::new(Notify::new());
    let mut watcher = Watcher::new(&[(root.actions_dir().as_path(), true)], cfg.rescan_every).context("watching actions/")?;
    {
        let (dirty, shutdown) = (dirty.clone(), stop.clone());
        tasks.spawn(async move { watcher.each_batch(Duration::from_millis(100), &shutdown, || dirty.notify_one()).await });
    }

    let mut updates = match updates {
        Some(rx) => {
            if let (Some(url), Some(secret)) = (&cfg.webhook_url, &cfg.webhook_secret) {
                match bot.set_webhook(url, secret).await {
                    Ok(()) => tracing::info!(url, "Telegram webhook registered"),
                    Err(e) => tracing::warn!(error = %e, "could not register the Telegram webhook; register it by hand or restart"),
                }
            }
            rx
        }
        None => {
            let (tx, rx) = mpsc::channel(256);
            tasks.spawn(poll(bot.clone(), engine.state.update_offset, cfg.poll_timeout, tx, stop.clone()));
            rx
        }
    };

    tracing::info!(chats = cfg.chat_ids.len(), mode = ?cfg.mode, "Telegram approvals running");
    engine.reconcile().await;
    loop {
        let retry_at = engine.retry_at;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = dirty.notified() => engine.reconcile().await,
            u = updates.recv() => match u {
                Some(u) => engine.handle_update(u).await,
                None => {
                    tracing::warn!("Telegram update source closed");
                    break;
                }
            },
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => engine.reconcile().await,
        }
    }
    tasks.close();
    // The watcher and the poller stop on `shutdown`; the poller may be inside one HTTP call.
    stop.cancel();
    if tokio::time::timeout(cfg.call_timeout, tasks.wait()).await.is_err() {
        tracing::warn!("Telegram tasks did not stop in time");
    }
    Ok(())
}

/// Long polling: hands every update to the loop; retries with backoff while the API is away.
async fn poll(bot: api::Bot, mut offset: i64, wait: Duration, tx: mpsc::Sender<Update>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let res = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = bot.get_updates(offset, wait) => r,
        };
        match res {
            Ok(updates) => {
                backoff = Duration::from_secs(1);
                for u in updates {
                    offset = offset.max(u.update_id + 1);
                    let sent = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = tx.send(u) => r,
                    };
                    if sent.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let pause = e.retry_after().unwrap_or(backoff);
                tracing::warn!(error = %e, retry_in_secs = pause.as_secs_f32(), "getUpdates failed; polling again later");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(vars: &[(&str, &str)]) -> Option<Result<TelegramConfig, String>> {
        let map: std::collections::HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TelegramConfig::from_lookup(|k| map.get(k).cloned()).map(|r| r.map_err(|e| e.to_string()))
    }

    #[test]
    fn configuration_table() {
        // Not configured at all: no Telegram, no error.
        assert!(check(&[]).is_none());
        assert!(check(&[("TELEGRAM_BOT_TOKEN", ""), ("TELEGRAM_API_BASE", "http://x")]).is_none());

        let c = check(&[("TELEGRAM_BOT_TOKEN", "123:abc"), ("TELEGRAM_CHAT_IDS", "42, -1001")]).unwrap().unwrap();
        assert_eq!((c.chat_ids.as_slice(), c.user_ids.clone(), c.mode), (&[42, -1001][..], None, Mode::Polling));
        assert_eq!((c.api_base.as_str(), c.poll_timeout), (DEFAULT_API_BASE, Duration::from_secs(30)));

        let c =
            check(&[("TELEGRAM_BOT_TOKEN", "t"), ("TELEGRAM_CHAT_IDS", "1"), ("TELEGRAM_USER_IDS", "7,8"), ("TELEGRAM_POLL_TIMEOUT", "2s")]).unwrap().unwrap();
        assert_eq!((c.user_ids, c.poll_timeout), (Some(vec![7, 8]), Duration::from_secs(2)));

        let errors = [
            (vec![("TELEGRAM_BOT_TOKEN", "t")], "TELEGRAM_CHAT_IDS: is not set"),
            (vec![("TELEGRAM_CHAT_IDS", "1")], "TELEGRAM_BOT_TOKEN: is not set"),
            (vec![("TELEGRAM_BOT_TOKEN", "t"), ("TELEGRAM_CHAT_IDS", "me")], "TELEGRAM_CHAT_IDS: \"me\" is not a numeric"),
            (vec![("TELEGRAM_BOT_TOKEN", "t"), ("TELEGRAM_CHAT_IDS", "1"), ("TELEGRAM_MODE", "push")], "TELEGRAM_MODE: \"push\" is not a mode"),
            (vec![("TELEGRAM_BOT_TOKEN", "t"), ("TELEGRAM_CHAT_IDS", "1"), ("TELEGRAM_MODE", "webhook")], "TELEGRAM_WEBHOOK_SECRET: is required"),
            (vec![("TELEGRAM_BOT_TOKEN", "t"), ("TELEGRAM_CHAT_IDS", "1"), ("TELEGRAM_CALL_TIMEOUT", "soon")], "TELEGRAM_CALL_TIMEOUT: invalid duration"),
        ];
        for (vars, want) in errors {
            let got = check(&vars).unwrap().unwrap_err();
            assert!(got.starts_with(want), "{vars:?}: {got}");
        }
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let c = check(&[
            ("TELEGRAM_BOT_TOKEN", "123:SECRETTOKEN"),
            ("TELEGRAM_CHAT_IDS", "1"),
            ("TELEGRAM_MODE", "webhook"),
            ("TELEGRAM_WEBHOOK_SECRET", "hush-hush"),
        ])
        .unwrap()
        .unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("SECRETTOKEN") && !s.contains("hush-hush"), "{s}");
    }
}
