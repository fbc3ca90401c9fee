//! `hcp user`, `hcp token` and `hcp audit` on a fresh data root: users.json holds hashes only
//! (mode 0600), a token is printed once, every change is audited.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::text;

fn hcp_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hcp"))
        .args(args)
        .env_remove("HOMELAB_ROOT")
        .env("USER", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hcp");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn users_tokens_and_the_audit_log() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_str().unwrap();
    let pw = "correct horse battery";

    let out = hcp_stdin(
        &["user", "add", "alice", "--role", "operator", "--group", "web,db", "--telegram-id", "42", "--password-stdin", "--root", root],
        &format!("{pw}\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
    // Short passwords, unknown roles and duplicates change nothing.
    let out = hcp_stdin(&["user", "add", "bob", "--role", "viewer", "--password-stdin", "--root", root], "short\n");
    assert!(!out.status.success() && text(&out).contains("at least 12"), "{}", text(&out));
    let out = hcp_stdin(&["user", "add", "bob", "--role", "boss", "--no-password", "--root", root], "");
    assert!(!out.status.success(), "{}", text(&out));
    let out = hcp_stdin(&["user", "add", "alice", "--role", "admin", "--no-password", "--root", root], "");
    assert!(!out.status.success() && text(&out).contains("exists"), "{}", text(&out));

    let users = std::fs::read_to_string(tmp.path().join("state/secrets/users.json")).unwrap();
    assert!(users.contains("$argon2id$v=19$m=19456,t=2,p=1$") && !users.contains(pw), "{users}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(tmp.path().join("state/secrets/users.json")).unwrap().permissions()) & 0o777;
    assert_eq!(mode, 0o600);

    let out = hcp_stdin(&["user", "list", "--root", root], "");
    let t = text(&out);
    assert!(t.contains("alice") && t.contains("operator") && t.contains("web,db") && t.contains("42") && !t.contains("argon2"), "{t}");

    // A token: printed once on stdout, stored as a hash.
    let out = hcp_stdin(&["token", "create", "--user", "alice", "--name", "ci", "--expires", "30d", "--root", root], "");
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("hcpt_t") && token.len() > 70, "{token}");
    let users = std::fs::read_to_string(tmp.path().join("state/secrets/users.json")).unwrap();
    assert!(!users.contains(&token) && users.contains("\"name\": \"ci\""), "{users}");
    let list = text(&hcp_stdin(&["token", "list", "--root", root], ""));
    assert!(list.contains("alice") && list.contains("ci") && !list.contains(&token), "{list}");
    let id = token.split('_').nth(1).unwrap().to_owned();
    let out = hcp_stdin(&["token", "revoke", &id, "--root", root], "");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&hcp_stdin(&["token", "list", "--root", root], "")).contains(&id));

    let out = hcp_stdin(&["user", "passwd", "alice", "--password-stdin", "--root", root], "another long password\n");
    assert!(out.status.success(), "{}", text(&out));
    let out = hcp_stdin(&["user", "set", "alice", "--role", "admin", "--groups", "", "--root", root], "");
    assert!(out.status.success(), "{}", text(&out));
    let out = hcp_stdin(&["user", "remove", "alice", "--root", root], "");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&hcp_stdin(&["user", "list", "--root", root], "")).contains("alice"));

    // Every change is in the audit log, as cli:tester, without a secret.
    let out = hcp_stdin(&["audit", "--root", root], "");
    let t = text(&out);
    for what in ["user_add", "token_create", "token_revoke", "user_passwd", "user_set", "user_remove"] {
        assert!(t.contains(what), "{what} missing: {t}");
    }
    assert!(t.contains("tester") && t.contains("cli"), "{t}");
    let json = text(&hcp_stdin(&["audit", "--json", "--what", "user_add", "--root", root], ""));
    assert_eq!(json.lines().count(), 1, "{json}");
    let raw: String = std::fs::read_dir(tmp.path().join("audit")).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
    assert!(!raw.contains(pw) && !raw.contains(&token) && !raw.contains("argon2"), "{raw}");
}

/// `hcp user logout` ends the sessions of a single sign-on user who is no local user (their
/// sessions carry role and groups themselves), and nobody else's.
#[test]
fn logout_ends_sessions_of_single_sign_on_users_too() {
    use homelab_store::users::{Role, SessionsFile, StoredSession};
    let tmp = tempfile::tempdir().unwrap();
    let root = homelab_store::DataRoot::open(tmp.path()).unwrap();
    let now = chrono::Utc::now();
    let session = |user: &str| StoredSession {
        user: user.into(),
        bootstrap: false,
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
        role: Some(Role::Operator),
        groups: vec!["web".into()],
        via: Some("oidc".into()),
    };
    root.update_sessions(|f: &mut SessionsFile| -> std::io::Result<()> {
        f.sessions.insert("a".repeat(64), session("otto"));
        f.sessions.insert("b".repeat(64), session("olga"));
        Ok(())
    })
    .unwrap();
    let out = hcp_stdin(&["user", "logout", "otto", "--root", tmp.path().to_str().unwrap()], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 session(s) of otto ended"), "{}", String::from_utf8_lossy(&out.stdout));
    let left: Vec<String> = root.read_sessions().unwrap().sessions.into_values().map(|s| s.user).collect();
    assert_eq!(left, vec!["olga".to_owned()]);
    assert!(root.read_users().unwrap().users.is_empty(), "no local user was created");
}
