//! The keys of hosts/ files, as the serde structs state them: a struct's fields (or an enum's
//! variants) in declaration order, read from its `Deserialize` derive. The validator's key
//! tables are these, so a field added to a check struct is known to the validator at once.

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::{AlertCheck, BasicAuth, Check, ContainerCheck, DiskSpec, ExecCheck, HttpCheck, MqttCheck, SshTarget, SystemdCheck, TcpCheck};
use crate::window::MaintenanceWindow;

/// The names serde reads for `T`: the fields of a struct, or the variants of an enum.
fn serde_keys<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut keys = Keys(&[]);
    let _ = T::deserialize(&mut keys);
    keys.0
}

/// A deserializer that only notes the names it is asked for.
struct Keys(&'static [&'static str]);

impl<'de> Deserializer<'de> for &mut Keys {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only the names are read"))
    }

    fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, fields: &'static [&'static str], _: V) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(de::Error::custom("only the names are read"))
    }

    fn deserialize_enum<V: Visitor<'de>>(self, _: &'static str, variants: &'static [&'static str], _: V) -> Result<V::Value, Self::Error> {
        self.0 = variants;
        Err(de::Error::custom("only the names are read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map identifier ignored_any
    }
}

/// The check kinds: `http`, `tcp`, … (the variants of [`Check`]).
pub(super) fn check_kinds() -> &'static [&'static str] {
    serde_keys::<Check>()
}

/// The keys of one check kind (none for an unknown kind).
pub(super) fn check_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "http" => serde_keys::<HttpCheck>(),
        "tcp" => serde_keys::<TcpCheck>(),
        "container" => serde_keys::<ContainerCheck>(),
        "exec" => serde_keys::<ExecCheck>(),
        "systemd" => serde_keys::<SystemdCheck>(),
        "mqtt" => serde_keys::<MqttCheck>(),
        "alert" => serde_keys::<AlertCheck>(),
        _ => &[],
    }
}

pub(super) fn ssh_keys() -> &'static [&'static str] {
    serde_keys::<SshTarget>()
}

pub(super) fn disk_keys() -> &'static [&'static str] {
    serde_keys::<DiskSpec>()
}

pub(super) fn window_keys() -> &'static [&'static str] {
    serde_keys::<MaintenanceWindow>()
}

pub(super) fn auth_keys() -> &'static [&'static str] {
    serde_keys::<BasicAuth>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables the validator wrote out by hand before, in their order (its messages list them).
    #[test]
    fn the_keys_are_the_structs_fields_in_order() {
        assert_eq!(check_kinds(), ["http", "tcp", "container", "exec", "systemd", "mqtt", "alert"]);
        assert_eq!(
            check_keys("http"),
            ["url", "expect_status", "body_contains", "basic_auth", "insecure_skip_verify", "timeout_secs", "failure_threshold", "success_threshold"]
        );
        assert_eq!(check_keys("tcp"), ["port", "host", "timeout_secs", "failure_threshold", "success_threshold"]);
        assert_eq!(check_keys("container"), ["timeout_secs", "failure_threshold", "success_threshold"]);
        assert_eq!(check_keys("exec"), ["container", "command", "timeout_secs", "failure_threshold", "success_threshold"]);
        assert_eq!(check_keys("systemd"), ["unit", "timeout_secs", "failure_threshold", "success_threshold"]);
        assert_eq!(check_keys("mqtt"), ["port", "host", "timeout_secs", "failure_threshold", "success_threshold"]);
        assert_eq!(check_keys("alert"), ["alertname", "labels"]);
        assert!(check_keys("ping").is_empty());
        assert_eq!(ssh_keys(), ["host", "user", "port", "identity_file", "known_hosts", "docker_socket"]);
        assert_eq!(disk_keys(), ["pressure_medium_pct", "pressure_high_pct", "mounts", "cleanup"]);
        assert_eq!(window_keys(), ["days", "start", "end"]);
        assert_eq!(auth_keys(), ["user", "password_env", "password_file"]);
    }
}
