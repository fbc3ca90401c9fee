//! What every daemon binary shares: logging setup, one shutdown token for Ctrl-C and SIGTERM,
//! and the fields every heartbeat fills in alike.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

/// This process's heartbeat as `daemon`: started at `started_at`, its loop done at `now`,
/// written at least every `interval` (counted as at least 1 s). The daemon fills in its
/// counters, configuration errors and facts of its own.
pub fn heartbeat(daemon: &str, started_at: homelab_core::Timestamp, now: homelab_core::Timestamp, interval: std::time::Duration) -> homelab_core::Heartbeat {
    homelab_core::Heartbeat {
        daemon: daemon.to_owned(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at,
        last_loop_at: now,
        interval_secs: interval.as_secs().max(1),
        counters: Default::default(),
        config_errors: Vec::new(),
        extra: serde_json::Value::Null,
    }
}

/// The data root when neither `--root` nor `HOMELAB_ROOT` names one: the deployment's.
pub const DEFAULT_ROOT: &str = "/opt/homelab";

/// The flags every daemon (and `hcp`) takes, flattened into its `Config`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CommonArgs {
    /// The data root.
    #[arg(long, env = "HOMELAB_ROOT", default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One line per event for people; coloured only when stderr is a terminal and `NO_COLOR`
    /// is unset, so a log file or `journalctl` never holds ANSI escape codes.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, spans) for log shippers.
    Json,
}

impl LogFormat {
    /// Reads a `LOG_FORMAT` value: `text` (or unset/empty) or `json`, in any case.
    pub fn parse(value: Option<&str>) -> Result<LogFormat, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(format!("LOG_FORMAT={other:?} is not a log format: use text or json; writing text")),
        }
    }
}

/// Whether text logs get colour: only on a terminal, and never with `NO_COLOR` set (no-color.org).
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&str>) -> bool {
    stderr_is_terminal && no_color.is_none_or(str::is_empty)
}

/// Sets up `tracing` to stderr, filtered by `RUST_LOG` (default `info`), in the format of
/// `LOG_FORMAT` (`text`, the default, or `json`). Text is coloured only when stderr is a
/// terminal (and `NO_COLOR` is unset). Safe to call twice.
pub fn init_tracing() {
    init_tracing_at("info")
}

/// [`init_tracing`] with another default level when `RUST_LOG` is unset (`warn` for one-shot
/// commands, whose own output says what happened).
pub fn init_tracing_at(default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let format = LogFormat::parse(std::env::var("LOG_FORMAT").ok().as_deref()).unwrap_or_else(|e| {
        eprintln!("{e}");
        LogFormat::Text
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => {
            let colour = use_colour(std::io::stderr().is_terminal(), std::env::var("NO_COLOR").ok().as_deref());
            builder.with_ansi(colour).try_init()
        }
    };
}

/// A token cancelled on the first SIGTERM or Ctrl-C. Must be called inside a tokio runtime.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
        t.cancel();
    });
    token
}

/// The body of every daemon's `main`: logging, the shutdown token, the run, and the exit code
/// (with the error chain on stderr, prefixed by the program name).
pub async fn main<F, Fut, E>(name: &str, run: F) -> std::process::ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    init_tracing();
    match run(shutdown_token()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A daemon's whole `main.rs`: a clap parser named `$name` with `$about`, flattening `$config`,
/// and a tokio `main` that runs `$run(config, shutdown)` through [`main`]. The calling crate
/// depends on clap and tokio.
///
/// ```text
/// homelab_store::daemon_main!("control-plane-observer", "Folds event files into world state.", control_plane_observer::Config, control_plane_observer::run);
/// ```
#[macro_export]
macro_rules! daemon_main {
    ($name:literal, $about:literal, $config:ty, $run:path) => {
        #[derive(clap::Parser)]
        #[command(name = $name, version, about = $about)]
        struct Cli {
            #[command(flatten)]
            config: $config,
        }

        #[tokio::main]
        async fn main() -> std::process::ExitCode {
            let cli = <Cli as clap::Parser>::parse();
            $crate::daemon::main($name, |shutdown| $run(cli.config, shutdown)).await
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_values() {
        let cases = [
            (None, Some(LogFormat::Text)),
            (Some(""), Some(LogFormat::Text)),
            (Some("text"), Some(LogFormat::Text)),
            (Some("JSON"), Some(LogFormat::Json)),
            (Some(" json "), Some(LogFormat::Json)),
            (Some("logfmt"), None),
        ];
        for (value, want) in cases {
            assert_eq!(LogFormat::parse(value).ok(), want, "{value:?}");
        }
        assert!(LogFormat::parse(Some("logfmt")).unwrap_err().contains("use text or json"));
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some("")));
        assert!(!use_colour(true, Some("1")));
        assert!(!use_colour(false, None));
    }
}
