//! Serde helpers: timestamps are written as RFC 3339 with milliseconds and a `Z`, alone
//! (`#[serde(with = "crate::ts_format")]`) or in an `Option`, a `Vec` or a map.

use crate::Timestamp;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    let s = String::deserialize(d)?;
    chrono::DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&chrono::Utc)).map_err(serde::de::Error::custom)
}

/// The same for `Option<Timestamp>`.
pub mod option {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(ts) => super::serialize(ts, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| chrono::DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&chrono::Utc)).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Serde for `BTreeMap<String, Timestamp>` with the house timestamp format.
pub mod map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Timestamp;

    #[derive(Serialize, Deserialize)]
    struct W(#[serde(with = "crate::ts_format")] Timestamp);

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        m.iter().map(|(k, v)| (k, W(*v))).collect::<BTreeMap<_, _>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Timestamp>, D::Error> {
        Ok(BTreeMap::<String, W>::deserialize(d)?.into_iter().map(|(k, W(v))| (k, v)).collect())
    }
}

/// Serde for `Vec<Timestamp>` with the house timestamp format.
pub mod vec {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Timestamp;

    #[derive(Serialize, Deserialize)]
    struct W(#[serde(with = "crate::ts_format")] Timestamp);

    pub fn serialize<S: Serializer>(v: &[Timestamp], s: S) -> Result<S::Ok, S::Error> {
        v.iter().map(|t| W(*t)).collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Timestamp>, D::Error> {
        Ok(Vec::<W>::deserialize(d)?.into_iter().map(|W(t)| t).collect())
    }
}

/// Serde for `BTreeMap<String, Vec<Timestamp>>` with the house timestamp format.
pub mod vec_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Timestamp;

    #[derive(Serialize, Deserialize)]
    struct W(#[serde(with = "crate::ts_format")] Timestamp);

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, Vec<Timestamp>>, s: S) -> Result<S::Ok, S::Error> {
        m.iter().map(|(k, v)| (k, v.iter().map(|t| W(*t)).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<Timestamp>>, D::Error> {
        Ok(BTreeMap::<String, Vec<W>>::deserialize(d)?.into_iter().map(|(k, v)| (k, v.into_iter().map(|W(t)| t).collect())).collect())
    }
}
