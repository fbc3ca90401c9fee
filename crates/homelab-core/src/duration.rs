//! Durations as operators write them: `2s`, `5m`, `1h`, `1d`, `250ms`, or plain seconds.

use std::time::Duration;

/// Parses `250ms`, `2s`, `5m`, `1h`, `1d` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}: expected a number with an optional unit (ms, s, m, h, d), e.g. 30s or 5m"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "d" => Duration::from_secs(n * 86400),
        _ => return Err(format!("invalid duration {s:?}: unknown unit {unit:?} (use ms, s, m, h or d)")),
    };
    Ok(d)
}

/// Formats a duration for people, to its largest unit: `3d 4h`, `5m 2s`, `750ms`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (big, small) = match secs {
        0 => return format!("{}ms", d.subsec_millis()),
        s if s >= 86400 => ((s / 86400, "d"), (s % 86400 / 3600, "h")),
        s if s >= 3600 => ((s / 3600, "h"), (s % 3600 / 60, "m")),
        s if s >= 60 => ((s / 60, "m"), (s % 60, "s")),
        s => return format!("{s}s"),
    };
    if small.0 == 0 { format!("{}{}", big.0, big.1) } else { format!("{}{} {}{}", big.0, big.1, small.0, small.1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_table() {
        let cases = [(0, "0ms"), (5, "5s"), (60, "1m"), (302, "5m 2s"), (3600, "1h"), (90061, "1d 1h"), (5 * 365 * 86400, "1825d")];
        for (secs, want) in cases {
            assert_eq!(format_duration(Duration::from_secs(secs)), want);
        }
        assert_eq!(format_duration(Duration::from_millis(750)), "750ms");
    }

    #[test]
    fn durations_table() {
        let cases = [
            ("2s", Some(2)),
            ("5m", Some(300)),
            ("1h", Some(3600)),
            ("1d", Some(86400)),
            ("90", Some(90)),
            (" 7s ", Some(7)),
            ("", None),
            ("5x", None),
            ("m", None),
            ("-1", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input).ok().map(|d| d.as_secs()), want, "{input:?}");
        }
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    }
}
