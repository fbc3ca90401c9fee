//! Plain-text tables for the terminal: left-aligned columns, two spaces apart.

/// Renders `rows` under `header`, each column as wide as its widest cell.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(cell);
            let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
            l.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// "3s ago", "5m ago", "2h ago", "4d ago": how long ago, for a tired reader.
pub fn ago(then: homelab_core::Timestamp, now: homelab_core::Timestamp) -> String {
    let secs = now.signed_duration_since(then).num_seconds();
    if secs < 0 {
        return "in the future".into();
    }
    let secs = secs as u64;
    match secs {
        0..120 => format!("{secs}s ago"),
        120..7200 => format!("{}m ago", secs / 60),
        7200..172_800 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let t = render(&["ID", "STATE"], &[vec!["redeploy-a-b".into(), "pending".into()], vec!["x".into(), "approved".into()]]);
        assert_eq!(t, "ID            STATE\nredeploy-a-b  pending\nx             approved\n");
    }

    #[test]
    fn ago_table() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-05-27T14:00:00Z").unwrap().to_utc();
        let cases = [(5, "5s ago"), (119, "119s ago"), (600, "10m ago"), (7200, "2h ago"), (3 * 86400, "3d ago")];
        for (secs, want) in cases {
            assert_eq!(ago(now - chrono::Duration::seconds(secs), now), want, "{secs}s");
        }
        assert_eq!(ago(now + chrono::Duration::seconds(5), now), "in the future");
    }
}
