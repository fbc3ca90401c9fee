//! Name validation at every boundary: node and service names, and action ids built from them.
//! A valid name can never escape a folder (no `/`, no leading `.`).

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} {value:?} is longer than {max} characters")]
    TooLong { what: &'static str, value: String, max: usize },
    #[error("{what} {value:?} must start with a lowercase letter or digit and use only a-z, 0-9, '.', '_' and '-'")]
    BadCharacters { what: &'static str, value: String },
}

fn check(what: &'static str, value: &str, max: usize) -> Result<(), NameError> {
    let bytes = value.as_bytes();
    let Some(first) = bytes.first() else {
        return Err(NameError::Empty { what });
    };
    if value.len() > max {
        return Err(NameError::TooLong { what, value: value.chars().take(200).collect(), max });
    }
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(first) || !bytes.iter().all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-')) {
        return Err(NameError::BadCharacters { what, value: value.chars().take(200).collect() });
    }
    Ok(())
}

/// A node or service name: `^[a-z0-9][a-z0-9._-]{0,62}$`.
pub fn validate_name(value: &str) -> Result<(), NameError> {
    check("name", value, 63)
}

/// An action id: the same characters as names, at most 160 of them.
pub fn validate_action_id(value: &str) -> Result<(), NameError> {
    check("action id", value, 160)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_table() {
        let cases: &[(&str, bool)] = &[
            ("edge-1", true),
            ("a", true),
            ("0node", true),
            ("svc.v2_x-y", true),
            (&"a".repeat(63), true),
            (&"a".repeat(64), false),
            ("", false),
            ("-lead", false),
            (".hidden", false),
            ("..", false),
            ("a/b", false),
            ("Upper", false),
            ("sp ace", false),
            ("ü", false),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_name(name).is_ok(), *ok, "{name:?}");
        }
        assert!(validate_action_id(&"a".repeat(160)).is_ok());
        assert!(validate_action_id(&"a".repeat(161)).is_err());
        assert!(validate_action_id("../etc").is_err());
    }
}
