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

/// A name parsed once where it enters (an HTTP path, a Telegram callback, a CLI argument, a
/// file name): holding one means it is valid, so nothing inside checks it again.
macro_rules! parsed_name {
    ($(#[$doc:meta])* $ty:ident, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            pub fn parse(value: &str) -> Result<$ty, NameError> {
                $check(value)?;
                Ok($ty(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<$ty, NameError> {
                $ty::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<$ty, NameError> {
                $check(&s)?;
                Ok($ty(s))
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $ty {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                $ty::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

parsed_name!(
    /// An action id (`redeploy-edge-1-web`): the characters of a name, at most 160.
    ActionId,
    validate_action_id
);
parsed_name!(
    /// A node name (`edge-1`).
    NodeName,
    validate_name
);
parsed_name!(
    /// A service name (`web`).
    ServiceName,
    validate_name
);

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

    #[test]
    fn parsed_names_hold_only_valid_values() {
        assert_eq!(ActionId::parse("redeploy-edge-1-web").unwrap(), "redeploy-edge-1-web");
        assert!(ActionId::parse("../etc").is_err());
        assert!(NodeName::parse(&"a".repeat(64)).is_err());
        assert!("web".parse::<ServiceName>().is_ok());
        // Deserializing parses too: a file or body cannot smuggle a bad name in.
        assert!(serde_json::from_str::<NodeName>("\"a/b\"").is_err());
        let id: ActionId = serde_json::from_str("\"restart-n-s\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"restart-n-s\"");
    }
}
