//! Failing checks published on NATS subject `homelab_health_issue`, for whatever else on the
//! network wants to react (a notifier, a dashboard). Silent while everything is healthy.

use std::time::Duration;

use homelab_core::Timestamp;
use serde::Serialize;

pub const SUBJECT: &str = "homelab_health_issue";
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// The message, exactly these four fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthIssue {
    pub component_name: String,
    pub issue_detail: String,
    #[serde(with = "homelab_core::ts_format")]
    pub detected_at: Timestamp,
    /// `"<dependency> unreachable"` when a `depends_on` target is itself failing.
    pub root_cause: Option<String>,
}

/// The root cause of a failing service: its first `depends_on` target that is failing too.
pub fn root_cause<'a>(depends_on: impl IntoIterator<Item = &'a String>, is_failing: impl Fn(&str) -> bool) -> Option<String> {
    depends_on.into_iter().find(|d| is_failing(d)).map(|d| format!("{d} unreachable"))
}

/// A NATS connection that keeps reconnecting in the background.
#[derive(Clone)]
pub struct Publisher {
    client: async_nats::Client,
}

impl Publisher {
    /// Connects to `url`; when the server is not there yet the client keeps trying in the
    /// background and messages wait in its buffer (the agent never waits for NATS to start).
    pub async fn connect(url: &str) -> anyhow::Result<Publisher> {
        let client = async_nats::ConnectOptions::new()
            .name(concat!("homelab-node-agent/", env!("CARGO_PKG_VERSION")))
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("NATS_URL {url}: {e}"))?;
        Ok(Publisher { client })
    }

    pub async fn publish(&self, issue: &HealthIssue) {
        let payload = match serde_json::to_vec(issue) {
            Ok(p) => p,
            Err(e) => return tracing::error!(error = %e, "cannot encode a health issue"),
        };
        let sent = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            self.client.publish(SUBJECT, payload.into()).await.map_err(|e| e.to_string())?;
            self.client.flush().await.map_err(|e| e.to_string())
        })
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, component = %issue.component_name, "cannot publish a health issue on NATS"),
            Err(_) => tracing::warn!(component = %issue.component_name, "publishing a health issue on NATS timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_cause_table() {
        let deps = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let failing = |s: &str| s == "mosquitto";
        let cases = [
            ("no dependencies", deps(&[]), None),
            ("a healthy dependency", deps(&["mariadb"]), None),
            ("a failing dependency", deps(&["mosquitto"]), Some("mosquitto unreachable")),
            ("the failing one among several", deps(&["mariadb", "mosquitto"]), Some("mosquitto unreachable")),
        ];
        for (situation, d, want) in cases {
            assert_eq!(root_cause(&d, failing).as_deref(), want, "{situation}");
        }
    }

    #[test]
    fn message_has_exactly_four_fields() {
        let ts = chrono::DateTime::parse_from_rfc3339("2026-05-27T14:03:11.123Z").unwrap().with_timezone(&chrono::Utc);
        let issue = HealthIssue { component_name: "z2m".into(), issue_detail: "down".into(), detected_at: ts, root_cause: None };
        assert_eq!(
            serde_json::to_string(&issue).unwrap(),
            r#"{"component_name":"z2m","issue_detail":"down","detected_at":"2026-05-27T14:03:11.123Z","root_cause":null}"#
        );
    }
}
