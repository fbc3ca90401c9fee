//! Times and durations in words, for people: "5 min ago", "ends in 3 h 10 min", "after 2 d".
//! One form for every page, table, message and notification. Pure: `now` is a parameter.

use std::time::Duration;

use crate::Timestamp;

/// A duration in words, to its largest unit (hours with their minutes): "42 s", "5 min",
/// "3 h 10 min", "3 h", "2 d".
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        ..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 if s % 3600 >= 60 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        3600..=86_399 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// How long ago `then` was, in one unit: "just now" (under 5 s), "42 s ago", "5 min ago",
/// "3 h ago", "2 d ago". A time ahead (by 5 s or more) reads "in 5 min".
pub fn ago(then: Timestamp, now: Timestamp) -> String {
    let s = now.signed_duration_since(then).num_seconds();
    match s {
        ..=-5 => format!("in {}", duration(Duration::from_secs(s.unsigned_abs()))),
        -4..=4 => "just now".into(),
        5..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// How long until `end`: "ends in 42 s", "ends in 5 min", "ends in 3 h 59 min", "ends in 2 d";
/// an end past (or now) reads "ended 5 min ago".
pub fn until(end: Timestamp, now: Timestamp) -> String {
    let s = end.signed_duration_since(now).num_seconds();
    if s <= 0 {
        return format!("ended {}", ago(end, now));
    }
    format!("ends in {}", duration(Duration::from_secs(s as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-05-27T14:00:00Z").unwrap().to_utc()
    }

    #[test]
    fn duration_table() {
        let cases = [
            (0, "0 s"),
            (42, "42 s"),
            (60, "1 min"),
            (119, "1 min"),
            (3599, "59 min"),
            (3600, "1 h"),
            (3659, "1 h"),
            (3660, "1 h 1 min"),
            (4500, "1 h 15 min"),
            (86_399, "23 h 59 min"),
            (86_400, "1 d"),
            (3 * 86_400 + 7200, "3 d"),
        ];
        for (secs, want) in cases {
            assert_eq!(duration(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn ago_table() {
        let cases = [
            (0, "just now"),
            (4, "just now"),
            (-4, "just now"),
            (5, "5 s ago"),
            (59, "59 s ago"),
            (119, "1 min ago"),
            (600, "10 min ago"),
            (3599, "59 min ago"),
            (7200, "2 h ago"),
            (7260, "2 h ago"),
            (3 * 86_400, "3 d ago"),
            (-5, "in 5 s"),
            (-300, "in 5 min"),
            (-(3 * 3600 + 600), "in 3 h 10 min"),
        ];
        for (secs, want) in cases {
            assert_eq!(ago(now() - chrono::Duration::seconds(secs), now()), want, "{secs}s");
        }
    }

    #[test]
    fn until_table() {
        let cases = [
            (600, "ends in 10 min"),
            (42, "ends in 42 s"),
            (3 * 3600 + 59 * 60, "ends in 3 h 59 min"),
            (3600, "ends in 1 h"),
            (2 * 86_400, "ends in 2 d"),
            (0, "ended just now"),
            (-30, "ended 30 s ago"),
            (-300, "ended 5 min ago"),
        ];
        for (secs, want) in cases {
            assert_eq!(until(now() + chrono::Duration::seconds(secs), now()), want, "{secs}s");
        }
    }

    /// Moved from hcp's `actions::until` (assertions changed to the shared form: "in 10m" →
    /// "ends in 10 min", "ended 30s ago" → "ended 30 s ago").
    #[test]
    fn until_reads_forward() {
        let now = now();
        assert_eq!(until(now + chrono::Duration::seconds(600), now), "ends in 10 min");
        assert_eq!(until(now - chrono::Duration::seconds(30), now), "ended 30 s ago");
    }

    /// Moved from hcp's `table::ago` (assertions changed to the shared form).
    #[test]
    fn hcp_ago_table() {
        let now = now();
        let cases = [(5, "5 s ago"), (119, "1 min ago"), (600, "10 min ago"), (7200, "2 h ago"), (3 * 86400, "3 d ago")];
        for (secs, want) in cases {
            assert_eq!(ago(now - chrono::Duration::seconds(secs), now), want, "{secs}s");
        }
        assert_eq!(ago(now + chrono::Duration::seconds(5), now), "in 5 s");
    }
}
