//! What the templates need to show times, status pills, icons and the 24 h history bar, as
//! small structs whose fields the macros of `templates/macros.html` format (and escape): times
//! relative in words with the exact UTC time on hover, pills with an icon *and* a word (readable
//! without colour). No HTML is built here.

use homelab_core::Timestamp;

use crate::history::{Bar, BarState};

/// `2026-05-27T14:03:11.123Z` → `2026-05-27 14:03:11 UTC`.
pub fn utc(t: Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time as a person reads it: `text` ("12 s ago"), with `datetime` (RFC 3339) and `title`
/// (the exact UTC time, on hover) for a `<time>` element; only `text` when `datetime` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct When {
    pub datetime: String,
    pub title: String,
    pub text: String,
    /// The `<time>` element's class ("" for none).
    pub class: &'static str,
}

impl When {
    /// Words with no time behind them ("never", "unreadable heartbeat").
    pub fn words(text: impl Into<String>) -> When {
        When { text: text.into(), ..When::default() }
    }

    fn at(t: Timestamp, text: String, class: &'static str) -> When {
        When { datetime: homelab_core::rfc3339(t), title: utc(t), text, class }
    }
}

/// "12 s ago" ("in 5 min" for a time ahead), exact UTC time on hover.
pub fn time_ago(t: Timestamp, now: Timestamp) -> When {
    When::at(t, homelab_core::words::ago(t, now), "")
}

/// The same for an RFC 3339 text (as `/summary` carries times); the text itself when it does not parse.
pub fn time_text(t: &str, now: Timestamp) -> When {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) => time_ago(t.with_timezone(&chrono::Utc), now),
        Err(_) => When::words(t),
    }
}

/// A clock time for "until": `until 17:58 UTC (ends in 3 h 10 min)`, exact time on hover.
pub fn until(t: Timestamp, now: Timestamp) -> When {
    let d = t.signed_duration_since(now);
    let rel = homelab_core::words::until(t, now);
    let clock = if d.num_hours() < 20 { t.format("%H:%M UTC").to_string() } else { t.format("%b %-d %H:%M UTC").to_string() };
    When::at(t, format!("until {clock} ({rel})"), "until")
}

/// The time of day (`14:03:11`), exact time on hover (the audit log, one day per page).
pub fn clock(t: Timestamp) -> When {
    When::at(t, t.format("%H:%M:%S").to_string(), "")
}

/// A piece of text, shown as `<code>` when `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    pub code: bool,
    pub text: String,
}

/// Text with `backtick` spans as code pieces; nothing for empty text.
pub fn code_ticks(s: &str) -> Vec<Tick> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split('`').enumerate().map(|(i, part)| Tick { code: i % 2 == 1, text: part.to_owned() }).collect()
}

/// "1 service", "3 services".
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

/// The tone of an action state (the pill's colour and icon).
pub fn state_tone(state: homelab_core::ActionState) -> &'static str {
    use homelab_core::ActionState::*;
    match state {
        Pending => "ask",
        Approved => "wait",
        Running => "run",
        Completed => "ok",
        Failed => "bad",
        Rejected | Cancelled => "none",
    }
}

/// A small inline icon (decorative: the word next to it says the same); drawn by the `icon`
/// macro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icon {
    Ok,
    Bad,
    Warn,
    Clock,
    None,
    Play,
    Hand,
    Dot,
}

/// The icon of a pill tone.
pub fn tone_icon(tone: &str) -> Icon {
    match tone {
        "ok" => Icon::Ok,
        "bad" => Icon::Bad,
        "warn" => Icon::Warn,
        "none" => Icon::None,
        "wait" => Icon::Clock,
        "run" => Icon::Play,
        "ask" => Icon::Hand,
        _ => Icon::Dot,
    }
}

/// A status pill: icon and word, coloured by `tone` (`ok`, `bad`, `warn`, `none`, `info`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pill {
    pub tone: &'static str,
    pub icon: Icon,
    pub word: String,
}

pub fn pill(tone: &'static str, word: &str) -> Pill {
    Pill { tone, icon: tone_icon(tone), word: word.to_owned() }
}

/// The pill of an action state.
pub fn state_pill(state: homelab_core::ActionState) -> Pill {
    pill(state_tone(state), state.as_str())
}

/// The tone of an event type.
pub fn event_tone(kind: &str) -> &'static str {
    match homelab_core::EventKind::of(kind) {
        homelab_core::EventKind::Positive => "ok",
        homelab_core::EventKind::Negative => "bad",
        homelab_core::EventKind::DiskPressure => "warn",
        _ => "info",
    }
}

/// The 24 h history bar (the `bar` macro draws it as inline SVG): one rect per half hour, its
/// counts on hover, and the whole summed up in `label` for screen readers.
#[derive(Debug, Clone)]
pub struct BarView {
    pub label: String,
    /// The SVG's viewBox width.
    pub width: usize,
    pub bars: Vec<Bar>,
}

pub fn bar_view(bars: Vec<Bar>) -> BarView {
    let (mut ok, mut bad, mut none) = (0, 0, 0);
    for b in &bars {
        match b.state {
            BarState::Healthy => ok += 1,
            BarState::NoData => none += 1,
            _ => bad += 1,
        }
    }
    let label = format!("Last 24 hours in half hours: {ok} healthy, {bad} with failures, {none} without events");
    BarView { label, width: bars.len() * 4, bars }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_carry_the_exact_utc_time() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-05-27T14:03:23Z").unwrap().with_timezone(&chrono::Utc);
        let t = now - chrono::Duration::seconds(12);
        let w = time_ago(t, now);
        assert_eq!((w.datetime.as_str(), w.title.as_str(), w.text.as_str()), ("2026-05-27T14:03:11.000Z", "2026-05-27 14:03:11 UTC", "12 s ago"));
        let u = until(now + chrono::Duration::minutes(75), now);
        assert_eq!((u.text.as_str(), u.class), ("until 15:18 UTC (ends in 1 h 15 min)", "until"));
        assert_eq!(time_text("<b>", now), When::words("<b>"));
    }

    #[test]
    fn pills_have_a_word_and_an_icon() {
        let p = pill("bad", "unhealthy");
        assert_eq!((p.tone, p.icon, p.word.as_str()), ("bad", Icon::Bad, "unhealthy"));
        assert_eq!(state_pill(homelab_core::ActionState::Running).icon, Icon::Play);
    }

    #[test]
    fn backticks_become_code_pieces() {
        let t = code_ticks("run `docker compose up` in `/srv`");
        assert_eq!(t.iter().filter(|t| t.code).map(|t| t.text.as_str()).collect::<Vec<_>>(), ["docker compose up", "/srv"]);
        assert!(code_ticks("").is_empty());
    }
}
