//! The "Mute 1 h" button: a silence for the incident's node/service, by an allowed user only.

use std::sync::Arc;

use chrono::Utc;
use homelab_core::ActionState;

use crate::{CHAT, Harness, USER, eventually};

fn button(buttons: &[String], verb: &str) -> String {
    buttons.iter().find(|b| b.starts_with(&format!("{verb}:"))).cloned().unwrap_or_else(|| panic!("no {verb} button in {buttons:?}"))
}

/// Nodes `edge-*` are in group `home`, `nas-*` in `nas`.
struct Groups;

impl homelab_ops::Fleet for Groups {
    fn groups_of(&self, node: &str) -> Vec<String> {
        match node {
            n if n.starts_with("edge-") => vec!["home".into()],
            n if n.starts_with("nas-") => vec!["nas".into()],
            _ => Vec::new(),
        }
    }

    fn checks_service(&self, _: &str, _: &str) -> Option<bool> {
        None
    }
}

/// Telegram user 7 is alice, an operator of the `home` group (nodes `edge-*`); user 9 is vic,
/// a viewer (users.json, as `hcp user add --telegram-id` writes it).
fn roles(h: &mut Harness) {
    use homelab_store::users::{Role, User};
    let now = Utc::now();
    let user = |role, groups: &[&str], telegram_id| User {
        role,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        password_hash: None,
        telegram_ids: vec![telegram_id],
        created_at: now,
        updated_at: now,
        sessions_not_before: None,
    };
    h.root
        .update_users(|f| -> std::io::Result<()> {
            f.users.insert("alice".into(), user(Role::Operator, &["home"], USER));
            f.users.insert("vic".into(), user(Role::Viewer, &[], 9));
            Ok(())
        })
        .unwrap();
    h.start_with_groups(Arc::new(Groups));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_writes_a_one_hour_silence_and_edits_the_message() {
    let mut h = Harness::new().await;
    roles(&mut h);
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
    roles(&mut h);
    let nas = h.pending("nas-1", "samba");
    let card = h.card(CHAT, &nas.id).await;
    let mute = button(&card.buttons, "mute");
    let presses = [
        (9, "Nothing changed: vic is a viewer and may only read."),
        (USER, "Nothing changed: operator alice acts on groups [home]; node nas-1 is in [nas]."),
        (USER, "Nothing changed: operator alice acts on groups [home]; node nas-1 is in [nas]."),
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
