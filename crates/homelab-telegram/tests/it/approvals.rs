//! Situations an operator meets in the chat: a pending action arrives, someone presses a
//! button, someone else presses too, the bot restarts, a burst of actions, the action ends.

use std::time::Duration;

use chrono::Utc;
use homelab_core::ActionState;
use homelab_core::action::ActionResult;

use crate::fake::FakeBot;
use crate::{CHAT, Harness, OTHER_CHAT, USER, eventually};

fn token_of(buttons: &[String], verb: &str) -> String {
    buttons.iter().find(|b| b.starts_with(&format!("{verb}:"))).cloned().unwrap_or_else(|| panic!("no {verb} button in {buttons:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_action_is_sent_with_buttons_and_a_press_approves_it() {
    let mut h = Harness::new().await;
    h.start();
    let a = h.pending("edge-1", "zigbee2mqtt");
    let card = h.card(CHAT, &a.id).await;
    for part in ["edge-1", "zigbee2mqtt", "unhealthy_service", "containers_not_running", "mqtt down", "Risk: low"] {
        assert!(card.text.contains(part), "{part} missing from {}", card.text);
    }
    assert_eq!(card.buttons.len(), 3, "Approve, Reject and Mute 1 h: {:?}", card.buttons);
    assert!(card.buttons.iter().all(|b| b.len() <= 64), "callback data fits Telegram's 64 bytes");

    let q = h.fake.press(CHAT, USER, card.message_id, &token_of(&card.buttons, "ok"));
    let answer = eventually("the press is answered", || h.fake.answer(&q)).await;
    assert_eq!(answer, "Approved.");
    let approved = h.root.read_active(ActionState::Approved, &a.id).unwrap().expect("the action is in approved/");
    let last = approved.history.last().unwrap();
    assert_eq!((last.state, last.by.as_str()), (ActionState::Approved, "telegram:7"));

    // The message now shows who approved it and when, without buttons.
    let (text, buttons) =
        eventually("the message shows the outcome", || h.fake.latest(CHAT, card.message_id).filter(|(t, _)| t.contains("Approved by @alice at "))).await;
    assert!(buttons.is_empty(), "no buttons once decided: {buttons:?}");
    assert!(text.contains(&format!("{} UTC", last.at.format("%H:%M"))), "{text}");
    assert_eq!(h.fake.sent().len(), 1, "nothing else was sent");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presses_from_elsewhere_or_with_made_up_data_change_nothing() {
    let mut h = Harness::new().await;
    h.cfg.user_ids = Some(vec![USER]);
    h.start();
    let a = h.pending("edge-1", "nginx");
    let card = h.card(CHAT, &a.id).await;
    let ok = token_of(&card.buttons, "ok");

    let presses = [
        (OTHER_CHAT, USER, card.message_id, ok.clone(), "This chat is not allowed to decide on actions."),
        (CHAT, 8, card.message_id, ok.clone(), "You are not allowed to decide on actions."),
        (CHAT, USER, card.message_id, format!("ok:{}", "0".repeat(32)), "Unknown or expired button."),
        (CHAT, USER, card.message_id, format!("{}x", ok), "Unknown or expired button."),
        (CHAT, USER, card.message_id, "approve everything".to_owned(), "Unknown button."),
        (CHAT, USER, card.message_id + 100, ok.clone(), "Unknown button."),
    ];
    for (chat, user, message_id, data, want) in presses {
        let q = h.fake.press(chat, user, message_id, &data);
        let answer = eventually("the press is answered", || h.fake.answer(&q)).await;
        assert_eq!(answer, want, "press from chat {chat} user {user} on {message_id} with {data:?}");
        assert_eq!(h.state_of(&a.id), Some(ActionState::Pending), "{data:?} changed nothing");
    }
    // The same button from the right person in the right chat does work.
    let q = h.fake.press(CHAT, USER, card.message_id, &ok);
    assert_eq!(eventually("answered", || h.fake.answer(&q)).await, "Approved.");
    assert_eq!(h.state_of(&a.id), Some(ActionState::Approved));
    // The heartbeat counts them for the dashboard.
    eventually("the heartbeat counts the presses", || {
        let hb: homelab_core::Heartbeat = h.root.read_heartbeat("telegram").ok()??;
        (hb.counters.get("presses_refused") == Some(&6) && hb.counters.get("presses_accepted") == Some(&1)).then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_press_after_approval_is_answered_and_changes_nothing() {
    let mut h = Harness::new().await;
    h.start();
    let a = h.pending("edge-2", "grafana");
    let card = h.card(CHAT, &a.id).await;
    let q = h.fake.press(CHAT, USER, card.message_id, &token_of(&card.buttons, "ok"));
    assert_eq!(eventually("answered", || h.fake.answer(&q)).await, "Approved.");
    let before = h.root.read_active(ActionState::Approved, &a.id).unwrap().unwrap();

    // A late Reject (and a replay of the Approve) from the same message.
    for data in [token_of(&card.buttons, "no"), token_of(&card.buttons, "ok")] {
        let q = h.fake.press(CHAT, USER, card.message_id, &data);
        let answer = eventually("the late press is answered", || h.fake.answer(&q)).await;
        assert_eq!(answer, "Nothing changed: this action is already approved.");
    }
    let after = h.root.read_active(ActionState::Approved, &a.id).unwrap().expect("still approved");
    assert_eq!(after.history, before.history, "no new history entry");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_for_an_action_decided_in_the_ui_says_what_happened() {
    let mut h = Harness::new().await;
    h.start();
    let a = h.pending("edge-3", "jellyfin");
    let card = h.card(CHAT, &a.id).await;
    h.root.transition(&a.id, ActionState::Pending, ActionState::Rejected, Utc::now(), "ui:bob", Some("not during the film".into()), |_| {}).unwrap();
    let (text, buttons) = eventually("the message shows the rejection", || {
        h.fake.latest(CHAT, card.message_id).filter(|(t, _)| t.contains("Rejected by ui:bob at ") && t.contains("not during the film"))
    })
    .await;
    assert!(buttons.is_empty(), "{text}");
    let q = h.fake.press(CHAT, USER, card.message_id, &token_of(&card.buttons, "ok"));
    assert_eq!(eventually("answered", || h.fake.answer(&q)).await, "Nothing changed: this action is already rejected.");
    assert_eq!(h.state_of(&a.id), Some(ActionState::Rejected));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_neither_resends_nor_forgets() {
    let mut h = Harness::new().await;
    h.start();
    let first = h.pending("edge-1", "homeassistant");
    let card = h.card(CHAT, &first.id).await;
    h.stop().await;

    h.start();
    // A new action after the restart proves the new task is up and has scanned.
    let second = h.pending("edge-1", "mosquitto");
    h.card(CHAT, &second.id).await;
    let about_first = h.fake.sent().iter().filter(|s| s.text.contains(&first.id)).count();
    assert_eq!(about_first, 1, "the first action was not sent again");
    assert_eq!(h.fake.sent().len(), 2);

    // The button sent before the restart still works.
    let q = h.fake.press(CHAT, USER, card.message_id, &token_of(&card.buttons, "no"));
    assert_eq!(eventually("answered", || h.fake.answer(&q)).await, "Rejected.");
    let rejected = h.root.find_action(&first.id).unwrap().unwrap();
    assert_eq!(rejected.state, ActionState::Rejected);
    assert_eq!(rejected.action.history.last().unwrap().by, "telegram:7");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_actions_becomes_a_digest() {
    let mut h = Harness::new().await;
    h.start();
    let services: Vec<String> = (1..=8).map(|i| format!("svc{i}")).collect();
    let ids: Vec<String> = services.iter().map(|s| h.pending("edge-1", s).id).collect();
    // Every action ends up in some message, in at most 5 + 1 messages.
    let messages = eventually("all 8 actions shown", || {
        let sent = h.fake.sent();
        let latest: Vec<(i64, String, Vec<String>)> =
            sent.iter().map(|s| h.fake.latest(CHAT, s.message_id).map(|(t, b)| (s.message_id, t, b)).unwrap()).collect();
        services
            .iter()
            .all(|s| latest.iter().any(|(_, t, _)| t.contains(&format!("edge-1 / {s}\n")) || t.contains(&format!("edge-1 / {s} "))))
            .then_some(latest)
    })
    .await;
    assert!(messages.len() <= 6, "{} messages for 8 actions: {:?}", messages.len(), messages.iter().map(|m| &m.1).collect::<Vec<_>>());
    let (digest_id, digest, buttons) = messages.iter().find(|(_, t, _)| t.contains("new actions within a minute")).cloned().expect("a digest");
    assert!(buttons.len() >= 4, "Approve / Reject per action in the digest: {buttons:?}");

    // A digest button approves just that action.
    let q = h.fake.press(CHAT, USER, digest_id, &buttons[0]);
    assert_eq!(eventually("answered", || h.fake.answer(&q)).await, "Approved.");
    let approved: Vec<&String> = ids.iter().filter(|id| h.state_of(id) == Some(ActionState::Approved)).collect();
    assert_eq!(approved.len(), 1, "exactly one approved: {approved:?}");
    eventually("the digest shows the approval", || h.fake.latest(CHAT, digest_id).filter(|(t, _)| t.contains("approved by @alice"))).await;
    assert!(digest.contains("⏳ waiting"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_follows_in_the_thread_and_a_resolved_drift_edits_the_message() {
    let mut h = Harness::new().await;
    h.start();
    let a = h.pending("edge-1", "zigbee2mqtt");
    let b = h.pending("edge-1", "node-red");
    let card_a = h.card(CHAT, &a.id).await;
    let card_b = h.card(CHAT, &b.id).await;

    // a: approved in the UI, run and verified by the executor.
    let now = Utc::now();
    h.root.transition(&a.id, ActionState::Pending, ActionState::Approved, now, "ui:alice", None, |_| {}).unwrap();
    h.root.transition(&a.id, ActionState::Approved, ActionState::Running, now, "executor", None, |_| {}).unwrap();
    h.root
        .transition(&a.id, ActionState::Running, ActionState::Completed, Utc::now(), "executor", None, |x| {
            x.result = Some(ActionResult { ok: true, exit_status: Some(0), verified: Some(true), ..Default::default() })
        })
        .unwrap();
    let follow = eventually("a follow-up in the thread", || h.fake.sent().into_iter().find(|s| s.reply_to == Some(card_a.message_id))).await;
    assert!(follow.text.contains("completed and verified"), "{}", follow.text);
    eventually("the card shows completion", || {
        h.fake.latest(CHAT, card_a.message_id).filter(|(t, _)| t.contains("Approved by ui:alice") && t.contains("Completed"))
    })
    .await;

    // b: the drift went away; the supervisor cancelled it.
    h.root.transition(&b.id, ActionState::Pending, ActionState::Cancelled, Utc::now(), "supervisor", Some("drift resolved".into()), |_| {}).unwrap();
    let (_, buttons) =
        eventually("the card says the drift resolved", || h.fake.latest(CHAT, card_b.message_id).filter(|(t, _)| t.contains("drift resolved on its own")))
            .await;
    assert!(buttons.is_empty());
    assert!(h.fake.sent().iter().all(|s| s.reply_to != Some(card_b.message_id)), "no follow-up for a cancelled action");

    // One follow-up only, also after a restart.
    h.stop().await;
    h.start();
    let c = h.pending("edge-1", "after-restart");
    h.card(CHAT, &c.id).await;
    assert_eq!(h.fake.sent().iter().filter(|s| s.reply_to == Some(card_a.message_id)).count(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_takes_presses_only_with_the_secret() {
    let mut h = Harness::new().await;
    h.cfg.mode = homelab_telegram::Mode::Webhook;
    h.cfg.webhook_secret = Some("s3cret-token".into());
    let (router, webhook) = homelab_telegram::webhook_router(&h.cfg).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{}", listener.local_addr().unwrap(), homelab_telegram::WEBHOOK_PATH);
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let token = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(homelab_telegram::run_webhook(h.cfg.clone(), homelab_ops::Ops::new(h.root.clone()), webhook, token.clone()));

    let a = h.pending("edge-1", "vaultwarden");
    let card = h.card(CHAT, &a.id).await;
    let update = FakeBot::update_json(1, "wh-1", CHAT, USER, card.message_id, &token_of(&card.buttons, "ok"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for secret in [None, Some("wrong")] {
        let mut req = http.post(&url).json(&update);
        if let Some(s) = secret {
            req = req.header(homelab_telegram::SECRET_HEADER, s);
        }
        assert_eq!(req.send().await.unwrap().status(), 401, "secret {secret:?}");
    }
    assert_eq!(h.state_of(&a.id), Some(ActionState::Pending));
    let resp = http.post(&url).header(homelab_telegram::SECRET_HEADER, "s3cret-token").json(&update).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(eventually("answered", || h.fake.answer("wh-1")).await, "Approved.");
    assert_eq!(h.state_of(&a.id), Some(ActionState::Approved));
    token.cancel();
    tokio::time::timeout(crate::DEADLINE, task).await.unwrap().unwrap().unwrap();
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_blocks_nothing_and_never_shows_the_token() {
    let mut h = Harness::new().await;
    // A port where nobody listens: connections are refused.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    h.cfg.api_base = format!("http://{dead}");
    let bot = homelab_telegram::api::Bot::new(&h.cfg.api_base, &h.cfg.bot_token, Duration::from_secs(2)).unwrap();
    let err = bot.send_message(CHAT, "hi", None, None).await.unwrap_err();
    let shown = format!("{err} / {err:?} / {:?}", std::error::Error::source(&err));
    assert!(!shown.contains("SECRET") && !shown.contains("fake-bot-token"), "{shown}");

    // Now a broken API there: it reads the request line and hangs up, counting the sends.
    let broken = tokio::net::TcpListener::bind(dead).await.unwrap();
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hangup = {
        let attempts = attempts.clone();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = broken.accept().await.unwrap();
                let attempts = attempts.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt as _;
                    let mut buf = vec![0u8; 512];
                    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await.ok().and_then(Result::ok).unwrap_or(0);
                    if String::from_utf8_lossy(&buf[..n]).contains("/sendMessage ") {
                        attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        })
    };
    h.start();
    let a = h.pending("edge-1", "pihole");
    let b = h.pending("edge-1", "unbound");
    // The UI (here: the store directly) still approves while Telegram is away.
    h.root.transition(&a.id, ActionState::Pending, ActionState::Approved, Utc::now(), "ui:bob", None, |_| {}).unwrap();
    assert_eq!(h.state_of(&a.id), Some(ActionState::Approved));

    eventually("the task tried to send through the broken API", || (attempts.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(())).await;
    hangup.abort();
    let _ = hangup.await;

    // The API comes back on the same address: the retry delivers what is still pending.
    let back = FakeBot::start_at(dead).await;
    let card = eventually("the pending action is sent once the API is back", || back.sent().into_iter().find(|s| s.text.contains(&b.id))).await;
    assert_eq!(card.buttons.len(), 3, "approve, reject, mute");
    assert!(back.sent().iter().all(|s| !s.text.contains(&a.id)), "an action decided meanwhile is not offered for a decision");
    let hb: homelab_core::Heartbeat = h.root.read_heartbeat("telegram").unwrap().expect("a heartbeat");
    assert!(hb.counters.get("api_failures").is_some_and(|n| *n >= 1), "{hb:?}");
    let hb_text = serde_json::to_string(&hb).unwrap();
    assert!(!hb_text.contains("fake-bot-token"), "the token stays out of the heartbeat: {hb_text}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_the_api_refuses_is_tried_once_and_does_not_hold_up_the_others() {
    let mut h = Harness::new().await;
    h.cfg.chat_ids = vec![crate::fake::MISSING_CHAT, CHAT];
    h.start();
    let a = h.pending("edge-1", "paperless");
    h.card(CHAT, &a.id).await;
    // More passes: a second action, then its decision.
    let b = h.pending("edge-1", "immich");
    let card_b = h.card(CHAT, &b.id).await;
    let q = h.fake.press(CHAT, USER, card_b.message_id, &token_of(&card_b.buttons, "ok"));
    assert_eq!(eventually("answered", || h.fake.answer(&q)).await, "Approved.");
    eventually("the card shows the approval", || h.fake.latest(CHAT, card_b.message_id).filter(|(t, _)| t.contains("Approved by @alice"))).await;
    assert_eq!(h.fake.with(|r| r.refused), 2, "one refused send per action, no retries");
    h.stop().await;
}
