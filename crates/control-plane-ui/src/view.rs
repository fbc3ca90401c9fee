//! Small pieces of HTML the templates share: times (relative, exact UTC on hover), status pills
//! with an icon *and* a word (readable without colour), icons and the 24 h history bar. Every
//! piece escapes what it puts in; templates insert them with `|safe`.

use std::fmt::Write as _;

use homelab_core::Timestamp;

use crate::history::Bar;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-05-27T14:03:11.123Z` → `2026-05-27 14:03:11 UTC`.
pub fn utc(t: Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `<time datetime="…" title="2026-05-27 14:03:11 UTC">12 s ago</time>`; "in 5 min" for a time
/// ahead.
pub fn time_ago(t: Timestamp, now: Timestamp) -> String {
    let rel = homelab_core::words::ago(t, now);
    format!("<time datetime=\"{}\" title=\"{}\">{}</time>", homelab_core::rfc3339(t), utc(t), rel)
}

/// The same for an RFC 3339 text (as `/summary` carries times); the text itself when it does not parse.
pub fn time_text(t: &str, now: Timestamp) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) => time_ago(t.with_timezone(&chrono::Utc), now),
        Err(_) => esc(t),
    }
}

/// A clock time for "until": `until 17:58 UTC (ends in 3 h 10 min)`, exact time on hover.
pub fn until_html(t: Timestamp, now: Timestamp) -> String {
    let d = t.signed_duration_since(now);
    let rel = homelab_core::words::until(t, now);
    let clock = if d.num_hours() < 20 { t.format("%H:%M UTC").to_string() } else { t.format("%b %-d %H:%M UTC").to_string() };
    format!("<time class=\"until\" datetime=\"{}\" title=\"{}\">until {clock} ({rel})</time>", homelab_core::rfc3339(t), utc(t))
}

/// Text with `backtick` spans as `<code>`, escaped.
pub fn code_ticks(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{}</code>", esc(part)));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
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

/// The icon of a pill tone.
pub fn tone_icon(tone: &str) -> &'static str {
    match tone {
        "ok" => icon("ok"),
        "bad" => icon("bad"),
        "warn" => icon("warn"),
        "none" => icon("none"),
        "wait" => icon("clock"),
        "run" => icon("play"),
        "ask" => icon("hand"),
        _ => icon("dot"),
    }
}

/// A small inline icon (decorative: the word next to it says the same).
pub fn icon(name: &str) -> &'static str {
    match name {
        "ok" => {
            r#"<svg class="i" viewBox="0 0 16 16" aria-hidden="true" focusable="false"><path d="M3 8.5l3 3 7-7" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round"/></svg>"#
        }
        "bad" => {
            r#"<svg class="i" viewBox="0 0 16 16" aria-hidden="true" focusable="false"><path d="M4 4l8 8M12 4l-8 8" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round"/></svg>"#
        }
        "warn" => {
            r#"<svg class="i" viewBox="0 0 16 16" aria-hidden="true" focusable="false"><path d="M8 2L15 14H1z" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linejoin="round"/><path d="M8 6.5v3.5M8 12v.1" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg>"#
        }
        "clock" => {
            r#"<svg class="i" viewBox="0 0 16 16" aria-hidden="true" focusable="false"><circle cx="8" cy="8" r="6.2" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M8 4.5V8l2.5 1.8" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg>"#
        }
        "none" => {
            r#"<svg class="i" viewBox="0 0 16 16" aria-hidden="true" focusable="false"><circle cx="8" cy="8" r="6.2" fill="none" stroke="currentColor" stroke-width="1.8" stroke-dasharray="2.5 2"/></svg>"#
        }
        "play" => r#"<svg class="i" viewBox="0 0 16 16" aria-hidden="true" focusable="false"><path d="M5 3l8 5-8 5z" fill="currentColor"/></svg>"#,
        "hand" => {
            r#"<svg class="i" viewBox="0 0 16 16" aria-hidden="true" focusable="false"><circle cx="8" cy="8" r="6.2" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M8 4.5v4M8 11v.1" stroke="currentColor" stroke-width="1.9" stroke-linecap="round"/></svg>"#
        }
        _ => r#"<svg class="i" viewBox="0 0 16 16" aria-hidden="true" focusable="false"><circle cx="8" cy="8" r="3" fill="currentColor"/></svg>"#,
    }
}

/// A status pill: icon and word, coloured by `tone` (`ok`, `bad`, `warn`, `none`, `info`).
pub fn pill(tone: &str, word: &str) -> String {
    let ic = tone_icon(tone);
    format!("<span class=\"pill {tone}\">{ic}<span>{}</span></span>", esc(word))
}

/// The pill of an action state.
pub fn state_pill(state: homelab_core::ActionState) -> String {
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

/// The 24 h history bar as inline SVG: one rect per half hour, its counts on hover, and the
/// whole summed up for screen readers.
pub fn bar_svg(bars: &[Bar]) -> String {
    let (mut ok, mut bad, mut none) = (0, 0, 0);
    for b in bars {
        match b.state {
            crate::history::BarState::Healthy => ok += 1,
            crate::history::BarState::NoData => none += 1,
            _ => bad += 1,
        }
    }
    let label = format!("Last 24 hours in half hours: {ok} healthy, {bad} with failures, {none} without events");
    let mut s = format!(
        "<svg class=\"hb\" viewBox=\"0 0 {} 20\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{label}\"><title>{label}</title>",
        bars.len() * 4
    );
    for b in bars {
        let _ =
            write!(s, "<rect x=\"{}\" y=\"0\" width=\"3\" height=\"20\" rx=\"1\" class=\"{}\"><title>{}</title></rect>", b.x, b.state.class(), esc(&b.title));
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_carry_the_exact_utc_time() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-05-27T14:03:23Z").unwrap().with_timezone(&chrono::Utc);
        let t = now - chrono::Duration::seconds(12);
        assert_eq!(time_ago(t, now), "<time datetime=\"2026-05-27T14:03:11.000Z\" title=\"2026-05-27 14:03:11 UTC\">12 s ago</time>");
        assert!(until_html(now + chrono::Duration::minutes(75), now).contains("until 15:18 UTC (ends in 1 h 15 min)"));
        assert_eq!(time_text("<b>", now), "&lt;b&gt;");
    }

    #[test]
    fn pills_have_a_word() {
        let p = pill("bad", "unhealthy");
        assert!(p.contains("<span>unhealthy</span>") && p.contains("aria-hidden=\"true\""), "{p}");
        assert!(pill("ok", "<x>").contains("&lt;x&gt;"));
    }
}
