//! The "Mute 1 h" button: a silence for the incident's node/service, by an allowed user only.

use std::sync::Arc;

use chrono::Utc;
use homelab_core::ActionState;
use homelab_telegram::{PressActor, PressCheck};

use crate::{CHAT, Harness, USER, eventually};

fn button(buttons: &[String], verb: &str) -> String {
    buttons.iter().find(|b| b.starts_with(&format!("{verb}:"))).cloned().unwrap_or_else(|| panic!("no {verb} button in {buttons:?}"))
}

/// Telegram user 7 is an operator of the `home` group (nodes `edge-*`), user 9 a viewer,
/// as the UI's users/roles rules would say.
fn roles() -> PressCheck {
    Arc::new(|user_id, action: &homelab_core::Action| match user_id {
        USER if action.node.starts_with("edge-") => Ok(PressActor { user: "alice".into(), role: "operator".into() }),
        USER => Err(format!("You may act only on nodes of your groups; {} is not one of them.", action.node)),
        9 => Err("Viewers cannot act.".into()),
        _ => Err("You are not a known user.".into()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_writes_a_one_hour_silence_and_edits_the_message() {
    let mut h = Harness::new().await;
    h.start_checked(roles());
    let a = h.pending("edge-1", "zigbee2mqtt");
    let card = h.card(CHAT, &a.id).await;
    let mute = button(&card.buttons, "mute");
    assert!(mute.len() <= 64, "callback data fits Telegram's 64 bytes");

    let before = Utc::now();
    let q = h.fake.press(CHAT, USER, card.message_id, &mute);
    assert_eq!(eventually("the press is answered", || h.fake.answer(&q)).await, "Muted edge-1/zigbee2mqtt for 1 h.");
    let silences = h.root.list_silences().unwrap();
    assert_eq!(silences.len(), 1, "{silences:?}");
    let s = &silences[0];
    assert_eq!((s.reason.as_str(), s.created_by.as_str(), s.target().as_str()), ("muted from Telegram", "alice", "edge-1/zigbee2mqtt"));
    assert!(s.matches("edge-1", Some("zigbee2mqtt"), None) && !s.matches("edge-1", Some("other"), None));
    let length = s.ends_at - s.created_at;
    assert_eq!(length, chrono::TimeDelta::hours(1), "one hour");
    assert!(s.is_active(Utc::now()) && s.created_at >= before - chrono::TimeDelta::seconds(1));

    // The message says so; the mute button is gone, approve/reject stay while it is pending.
    let (text, buttons) =
        eventually("the message says it is muted", || h.fake.latest(CHAT, card.message_id).filter(|(t, _)| t.contains("Muted for 1 h by"))).await;
    assert!(text.contains("muted from Telegram") && text.contains(&format!("until {} UTC", s.ends_at.format("%H:%M"))), "{text}");
    assert!(!buttons.iter().any(|b| b.starts_with("mute:")) && buttons.iter().any(|b| b.starts_with("ok:")), "{buttons:?}");
    assert_eq!(h.state_of(&a.id), Some(ActionState::Pending), "muting decides nothing about the action");

    // A second press (an old copy of the button) changes nothing.
    let q = h.fake.press(CHAT, USER, card.message_id, &mute);
    assert_eq!(eventually("answered", || h.fake.answer(&q)).await, "Nothing changed: edge-1/zigbee2mqtt is already muted.");
    assert_eq!(h.root.list_silences().unwrap().len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_or_an_operator_of_other_groups_cannot_mute() {
    let mut h = Harness::new().await;
    h.start_checked(roles());
    let nas = h.pending("nas-1", "samba");
    let card = h.card(CHAT, &nas.id).await;
    let mute = button(&card.buttons, "mute");
    let presses = [
        (9, "Viewers cannot act."),
        (USER, "You may act only on nodes of your groups; nas-1 is not one of them."),
        (USER, "You may act only on nodes of your groups; nas-1 is not one of them."),
    ];
    for (user, want) in presses {
        let q = h.fake.press(CHAT, user, card.message_id, &mute);
        assert_eq!(eventually("answered", || h.fake.answer(&q)).await, want);
    }
    assert!(h.root.list_silences().unwrap().is_empty(), "no silence written");
    // Made-up mute data matches nothing either.
    let q = h.fake.press(CHAT, USER, card.message_id, &format!("mute:{}", "0".repeat(32)));
    assert_eq!(eventually("answered", || h.fake.answer(&q)).await, "Unknown or expired button.");
    assert!(h.root.list_silences().unwrap().is_empty());
    let (_, buttons) = h.fake.latest(CHAT, card.message_id).unwrap();
    assert!(buttons.iter().any(|b| b.starts_with("mute:")), "still offered: {buttons:?}");
    h.stop().await;
}
