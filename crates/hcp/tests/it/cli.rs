//! The command line itself: global flags anywhere, one default data root, help for every
//! argument, and `hcp up --help` naming the environment the daemons read.

use clap::CommandFactory;
use testkit::TempRoot;

use crate::{hcp, text};

fn init(t: &TempRoot) -> String {
    let r = t.root().to_str().unwrap().to_owned();
    let out = hcp(&["init", "--root", &r]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    r
}

#[test]
fn root_goes_anywhere_on_the_line() {
    let t = TempRoot::new();
    let r = init(&t);
    for args in [
        vec!["actions", "list", "--root", &r],
        vec!["--root", &r, "actions", "list"],
        vec!["actions", "--root", &r, "list"],
        vec!["actions", "list", "--state", "pending", "--root", &r],
        vec!["drift", "--root", &r],
    ] {
        let out = hcp(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
    let out = hcp(&["actions", "list", "--root", &r]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no actions\n");
}

#[test]
fn one_default_root_for_every_subcommand_and_homelab_root_in_between() {
    let t = TempRoot::new();
    let r = init(&t);
    // HOMELAB_ROOT when there is no --root.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hcp")).args(["actions", "list"]).env("HOMELAB_ROOT", &r).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Neither: /opt/homelab, the same for every subcommand, and the help says so.
    let cli = hcp::Cli::command();
    let root = cli.get_arguments().find(|a| a.get_id() == "root").unwrap();
    assert!(root.is_global_set());
    let defaults: Vec<&str> = root.get_default_values().iter().filter_map(|v| v.to_str()).collect();
    assert_eq!(defaults, ["/opt/homelab"]);
    for sub in ["actions", "up", "init", "health", "drift", "mirror", "alertmanager"] {
        let out = hcp(&[sub, "--help"]);
        assert!(text(&out).contains("[default: /opt/homelab]"), "{sub}: {}", text(&out));
    }
}

#[test]
fn every_argument_has_help() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.get_help().is_none() && !matches!(arg.get_id().as_str(), "help" | "version") {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() {
                missing.push(format!("{path} {} (no about)", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut cli = hcp::Cli::command();
    cli.build();
    let mut missing = Vec::new();
    walk(&cli, "hcp", &mut missing);
    assert!(missing.is_empty(), "arguments without help: {missing:?}");
    let out = hcp(&["actions", "reject", "--help"]);
    let s = text(&out);
    assert!(s.contains("<ID>") && s.contains("The pending action's id"), "{s}");
    assert!(s.contains("--reason <TEXT>") && s.contains("Why, in a few words"), "{s}");
}

#[test]
fn up_help_lists_the_environment_the_daemons_read() {
    let out = hcp(&["up", "--help"]);
    let s = text(&out);
    for var in [
        "LISTEN ",
        "NODE_NAME",
        "HOMELAB_ROOT",
        "HOSTS_DIR",
        "UI_TOKEN",
        "AUTO_APPROVE",
        "CHECK_INTERVAL",
        "LISTEN_PORT",
        "LISTEN_ADDR",
        "VERIFY_TIMEOUT",
        "EXECUTOR_DRY_RUN",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_CHAT_IDS",
        "RUST_LOG",
        "LOG_FORMAT",
    ] {
        assert!(s.contains(var), "{var} missing from hcp up --help:\n{s}");
    }
    assert!(s.contains("[hcp up: 127.0.0.1:18180]"), "{s}");
    // Secrets are named, never shown.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hcp")).args(["up", "--help"]).env("UI_TOKEN", "s3cret-token").output().unwrap();
    assert!(!text(&out).contains("s3cret-token"), "{}", text(&out));
}

#[test]
fn a_mistyped_flag_gets_a_hint_and_exit_2() {
    let out = hcp(&["actions", "list", "--roots", "/x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--root"), "{}", text(&out));
}
