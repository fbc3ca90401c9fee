//! Integration tests: the Telegram task against a loopback Bot API server, on a fresh temp
//! data root per test.

mod approvals;
mod fake;
mod mute;

use std::time::{Duration, Instant};

use chrono::Utc;
use homelab_core::{Action, ActionState, ActionType, HistoryEntry, Risk};
use homelab_store::DataRoot;
use homelab_telegram::{Mode, TelegramConfig};
use testkit::TempRoot;
use tokio_util::sync::CancellationToken;

use fake::FakeBot;

/// The allowed chat, a chat that is not allowed, and the person pressing.
pub const CHAT: i64 = 1001;
pub const OTHER_CHAT: i64 = 666;
pub const USER: i64 = 7;

pub const DEADLINE: Duration = Duration::from_secs(15);

/// Polls `cond` until it returns `Some` (without blocking the runtime), failing after [`DEADLINE`].
pub async fn eventually<T>(what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out after {DEADLINE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A data root, a fake Bot API, and the Telegram task running against both.
pub struct Harness {
    _tmp: TempRoot,
    pub root: DataRoot,
    pub fake: FakeBot,
    pub cfg: TelegramConfig,
    task: Option<(CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>)>,
}

impl Harness {
    pub async fn new() -> Harness {
        let tmp = TempRoot::new();
        let root = DataRoot::open(tmp.root()).unwrap();
        let fake = FakeBot::start().await;
        let cfg = TelegramConfig {
            bot_token: fake::TOKEN.into(),
            chat_ids: vec![CHAT],
            user_ids: None,
            api_base: fake.base.clone(),
            mode: Mode::Polling,
            webhook_secret: None,
            webhook_url: None,
            poll_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
            rescan_every: Duration::from_secs(2),
        };
        Harness { _tmp: tmp, root, fake, cfg, task: None }
    }

    pub fn start(&mut self) {
        assert!(self.task.is_none());
        let token = CancellationToken::new();
        let handle = tokio::spawn(homelab_telegram::run(self.cfg.clone(), homelab_ops::Ops::new(self.root.clone()), token.clone()));
        self.task = Some((token, handle));
    }

    /// Like [`Harness::start`], with node groups known, as the UI runs it (users.json maps
    /// Telegram accounts to users; the role × node-group rule applies to every press).
    pub fn start_with_groups(&mut self, fleet: std::sync::Arc<dyn homelab_ops::Fleet>) {
        assert!(self.task.is_none());
        let token = CancellationToken::new();
        let ops = homelab_ops::Ops::new(self.root.clone()).with_fleet(fleet);
        let handle = tokio::spawn(homelab_telegram::run(self.cfg.clone(), ops, token.clone()));
        self.task = Some((token, handle));
    }

    pub async fn stop(&mut self) {
        let (token, handle) = self.task.take().expect("running");
        token.cancel();
        tokio::time::timeout(DEADLINE, handle).await.expect("the task stops on shutdown").unwrap().unwrap();
    }

    /// Writes a pending action as the supervisor would.
    pub fn pending(&self, node: &str, service: &str) -> Action {
        let now = Utc::now();
        let kind = ActionType::ContainerRestart;
        let a = Action {
            id: kind.id(node, Some(service)),
            kind,
            risk: Risk::Low,
            node: node.into(),
            service: Some(service.into()),
            drift: "unhealthy_service".into(),
            trigger: "containers_not_running".into(),
            root_cause: Some("mqtt down".into()),
            state: ActionState::Pending,
            created_at: now,
            updated_at: now,
            history: vec![HistoryEntry { state: ActionState::Pending, at: now, by: "supervisor".into(), note: None }],
            result: None,
            generation: None,
        };
        self.root.create_action(&a).unwrap();
        a
    }

    /// Waits for the card about `action_id` in `chat` and returns it.
    pub async fn card(&self, chat: i64, action_id: &str) -> fake::Sent {
        eventually(&format!("a message about {action_id}"), || {
            self.fake.sent().into_iter().find(|s| s.chat_id == chat && s.reply_to.is_none() && s.text.contains(action_id))
        })
        .await
    }

    pub fn state_of(&self, id: &str) -> Option<ActionState> {
        self.root.find_action(id).unwrap().map(|s| s.state)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some((token, _)) = &self.task {
            token.cancel();
        }
    }
}
