//! Maintenance windows: weekly UTC windows in which guarded actions may start.

use chrono::{Datelike, NaiveTime, Timelike, Weekday};
use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A weekly window in UTC when guarded actions may start, e.g. `{ days: [sat, sun], start: "02:00", end: "05:00" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Three-letter lowercase day names (`mon` … `sun`); empty or absent means every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// `HH:MM` UTC.
    pub start: String,
    /// `HH:MM` UTC; may be before `start` to wrap past midnight.
    pub end: String,
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

fn parse_time(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("{s:?} is not a time of day as HH:MM"))
}

fn parse_day(s: &str) -> Result<Weekday, String> {
    DAYS.iter().find(|(name, _)| *name == s).map(|(_, d)| *d).ok_or_else(|| format!("{s:?} is not a day (use mon, tue, wed, thu, fri, sat, sun)"))
}

pub fn validate(w: &MaintenanceWindow) -> Result<(), String> {
    parse_time(&w.start)?;
    parse_time(&w.end)?;
    for d in &w.days {
        parse_day(d)?;
    }
    if w.start == w.end {
        return Err("start and end are equal: the window would be empty".into());
    }
    Ok(())
}

/// True when `now` falls in one of the windows, or there are none (no restriction).
/// A window whose end is before its start wraps past midnight; its day is the day it starts.
pub fn is_open(windows: &[MaintenanceWindow], now: Timestamp) -> bool {
    windows.is_empty() || windows.iter().any(|w| in_window(w, now))
}

fn in_window(w: &MaintenanceWindow, now: Timestamp) -> bool {
    let (Ok(start), Ok(end)) = (parse_time(&w.start), parse_time(&w.end)) else {
        return false;
    };
    let t = NaiveTime::from_hms_opt(now.hour(), now.minute(), now.second()).unwrap_or_default();
    let day_ok = |day: Weekday| w.days.is_empty() || w.days.iter().any(|d| parse_day(d) == Ok(day));
    let today = now.weekday();
    if start < end { day_ok(today) && start <= t && t < end } else { (day_ok(today) && t >= start) || (day_ok(today.pred()) && t < end) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(days: &[&str], start: &str, end: &str) -> MaintenanceWindow {
        MaintenanceWindow { days: days.iter().map(|d| d.to_string()).collect(), start: start.into(), end: end.into() }
    }

    fn at(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
    }

    #[test]
    fn windows_table() {
        // 2026-11-28 is a Saturday.
        let cases = [
            (vec![], "2026-11-25T12:00:00Z", true),
            (vec![w(&["sat"], "02:00", "05:00")], "2026-11-28T03:00:00Z", true),
            (vec![w(&["sat"], "02:00", "05:00")], "2026-11-28T05:00:00Z", false),
            (vec![w(&["sat"], "02:00", "05:00")], "2026-11-27T03:00:00Z", false),
            (vec![w(&[], "02:00", "05:00")], "2026-11-25T02:30:00Z", true),
            (vec![w(&["sat"], "23:00", "02:00")], "2026-11-29T01:00:00Z", true),
            (vec![w(&["sat"], "23:00", "02:00")], "2026-11-28T01:00:00Z", false),
        ];
        for (windows, now, want) in cases {
            assert_eq!(is_open(&windows, at(now)), want, "{windows:?} at {now}");
        }
        assert!(validate(&w(&["xyz"], "02:00", "05:00")).is_err());
        assert!(validate(&w(&[], "25:00", "05:00")).is_err());
    }
}
