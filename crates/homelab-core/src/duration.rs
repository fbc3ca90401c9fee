//! Durations as operators write them: `2s`, `5m`, `1h`, `1d`, `250ms`, or plain seconds.

use std::time::Duration;

/// Parses `250ms`, `2s`, `5m`, `1h`, `1d` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected a number with an optional unit (ms, s, m, h, d), e.g. 30s or 5m"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
