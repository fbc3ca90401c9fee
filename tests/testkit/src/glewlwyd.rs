//! A real OpenID Connect provider for tests: Debian's `glewlwyd` on 127.0.0.1, with a fresh
//! SQLite database, an RSA signing key made by `openssl`, its OIDC plugin (authorization code,
//! PKCE S256) and its own login web app; killed on drop.
//!
//! Users carry `hcp_role`, `hcp_groups` and `preferred_username` attributes, released as the
//! claims `hcp_role`, `groups` and `preferred_username` in the ID token.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::{KillOnDrop, free_port, header_value, http_with_head, wait_until};

pub struct Glewlwyd {
    child: KillOnDrop,
    dir: tempfile::TempDir,
    pub port: u16,
    admin: String,
}

/// The `NAME=value` of a `Set-Cookie` named `name` in a raw header block.
fn set_cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.trim()))
        .filter_map(|v| v.split(';').next())
        .find(|kv| kv.starts_with(&format!("{name}=")) && kv.len() > name.len() + 1)
        .map(str::to_owned)
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
}

impl Glewlwyd {
    pub const BIN: &'static str = "/usr/bin/glewlwyd";
    const SESSION: &'static str = "GLEWLWYD2_SESSION_ID";
    const DOC: &'static str = "/usr/share/doc/glewlwyd";
    const WEBAPP: &'static str = "/usr/share/glewlwyd/webapp";

    /// Starts it and waits until its discovery document answers 200.
    pub fn start() -> Glewlwyd {
        for bin in [Self::BIN, "/usr/bin/sqlite3", "/usr/bin/openssl"] {
            assert!(Path::new(bin).exists(), "{bin} is missing: run scripts/test-deps.sh as root (apt-get install glewlwyd sqlite3 openssl)");
        }
        let dir = tempfile::Builder::new().prefix("glewlwyd-test-").tempdir().expect("temp dir");
        let d = dir.path();
        let port = free_port();
        // The database: the package's schema, and the user attributes the claims come from.
        let schema = Command::new("zcat").arg(format!("{}/database/init.sqlite3.sql.gz", Self::DOC)).output().expect("zcat the schema");
        assert!(schema.status.success(), "zcat the schema: {}", String::from_utf8_lossy(&schema.stderr));
        std::fs::write(d.join("init.sql"), &schema.stdout).unwrap();
        run(Command::new("sqlite3").arg(d.join("glewlwyd.db")).stdin(std::fs::File::open(d.join("init.sql")).unwrap()), "sqlite3 < init.sqlite3.sql");
        let field = r#"json('{"multiple":false,"read":true,"write":true,"profile-read":true,"profile-write":false}')"#;
        let multi = r#"json('{"multiple":true,"read":true,"write":true,"profile-read":true,"profile-write":false}')"#;
        let sql = format!(
            r#"UPDATE g_user_module_instance SET gumi_parameters = json_set(gumi_parameters, '$."data-format".hcp_role', {field}, '$."data-format".hcp_groups', {multi}, '$."data-format".preferred_username', {field}) WHERE gumi_name = 'database';"#
        );
        run(Command::new("sqlite3").arg(d.join("glewlwyd.db")).arg(sql), "sqlite3 (user attributes)");
        // The signing key.
        run(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=glewlwyd-test"])
                .arg("-keyout")
                .arg(d.join("key.pem"))
                .arg("-out")
                .arg(d.join("cert.pem")),
            "openssl req",
        );
        // Its web app, with a config.json of our own (the package's is a link into /etc); links
        // are followed here because glewlwyd serves no link that leaves its folder.
        let webapp = d.join("webapp");
        std::fs::create_dir_all(&webapp).unwrap();
        for e in std::fs::read_dir(Self::WEBAPP).expect("glewlwyd web app").flatten() {
            if e.file_name() != "config.json" {
                run(Command::new("cp").arg("-rL").arg(e.path()).arg(&webapp), "cp web app");
            }
        }
        std::fs::copy("/usr/share/glewlwyd/templates/config.json", webapp.join("config.json")).expect("web app config.json");
        // The configuration: the package's sample on a loopback port, over plain HTTP.
        let sample = Command::new("zcat").arg(format!("{}/glewlwyd.conf.sample.gz", Self::DOC)).output().expect("zcat sample");
        let conf: String = String::from_utf8_lossy(&sample.stdout)
            .lines()
            .map(|l| match l {
                l if l.starts_with("port=") => format!("port={port}"),
                l if l.starts_with("#bind_address=") => "bind_address=\"127.0.0.1\"".into(),
                l if l.starts_with("external_url=") => format!("external_url=\"http://127.0.0.1:{port}\""),
                l if l.starts_with("cookie_domain=") => "cookie_domain=\"127.0.0.1\"".into(),
                l if l.starts_with("cookie_secure=") => "cookie_secure=0".into(),
                l if l.starts_with("static_files_path=") => format!("static_files_path=\"{}/\"", webapp.display()),
                l if l.trim_start().starts_with("path = \"/var/cache/glewlwyd") => format!("  path = \"{}\"", d.join("glewlwyd.db").display()),
                l => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(d.join("glewlwyd.conf"), conf).unwrap();
        let log = std::fs::File::create(d.join("glewlwyd.log")).unwrap();
        let child = Command::new(Self::BIN)
            .arg("-c")
            .arg(d.join("glewlwyd.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start glewlwyd");
        let mut g = Glewlwyd { child: KillOnDrop(child), dir, port, admin: String::new() };
        wait_until("glewlwyd to answer", Duration::from_secs(30), || {
            if let Some(status) = g.child.0.try_wait().unwrap() {
                panic!("glewlwyd exited ({status}) at start:\n{}", g.log());
            }
            matches!(http_with_head(port, "GET", "/config/", &[], ""), Ok((200, _, _)))
        });
        g.admin = g.login("admin", "password");
        // The OIDC plugin: RS256 with our key, code flow with PKCE S256 only, the claims.
        let pem = |f: &str| std::fs::read_to_string(g.dir.path().join(f)).unwrap();
        let claim = |name: &str, prop: &str| json!({"name": name, "user-property": prop, "type": "string", "boolean-value-true": "", "boolean-value-false": "", "mandatory": true, "on-demand": false, "scope": []});
        let mut params = json!({
            "iss": g.issuer(), "jwt-type": "rsa", "jwt-key-size": "256", "key": pem("key.pem"), "cert": pem("cert.pem"),
            "access-token-duration": 3600, "refresh-token-duration": 1209600, "code-duration": 600, "refresh-token-rolling": true,
            "allow-non-oidc": false, "auth-type-code-enabled": true, "auth-type-token-enabled": false, "auth-type-id-token-enabled": false,
            "auth-type-none-enabled": false, "auth-type-password-enabled": false, "auth-type-client-enabled": false, "auth-type-refresh-enabled": true,
            "scope": [], "additional-parameters": [],
            "claims": [claim("hcp_role", "hcp_role"), claim("groups", "hcp_groups"), claim("preferred_username", "preferred_username")],
            "service-documentation": "", "op-policy-uri": "", "op-tos-uri": "", "jwks-show": true, "jwks-x5c": [],
            "request-parameter-allow": false, "secret-type": "pairwise", "subject-type": "public",
            "address-claim": {"type": "no", "formatted": "", "street_address": "", "locality": "", "region": "", "postal_code": "", "country": "", "mandatory": false},
            "name-claim": "no", "name-claim-scope": [], "email-claim": "no", "email-claim-scope": [], "scope-claim": "no", "scope-claim-scope": [],
        });
        let more = json!({
            "allowed-scope": ["openid", "profile", "email"], "pkce-allowed": true, "pkce-method-plain-allowed": false, "pkce-required": false,
            "pkce-required-public-client": false, "pkce-scopes": [], "introspection-revocation-allowed": false, "register-client-allowed": false,
            "session-management-allowed": false});
        params.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
        let plugin = json!({"module": "oidc", "name": "oidc", "display_name": "OpenID Connect", "enabled": true, "parameters": params});
        g.admin_call("POST", "/api/mod/plugin/", &plugin);
        for s in ["profile", "email"] {
            g.admin_call(
                "POST",
                "/api/scope/",
                &json!({"name": s, "display_name": s, "description": s, "password_required": true, "password_max_age": 0, "scheme": {}}),
            );
        }
        wait_until("glewlwyd's discovery document", Duration::from_secs(30), || {
            matches!(http_with_head(port, "GET", "/api/oidc/.well-known/openid-configuration", &[], ""), Ok((200, _, _)))
        });
        g
    }

    /// The issuer (and `OIDC_ISSUER`): `http://127.0.0.1:PORT/api/oidc`.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}/api/oidc", self.port)
    }

    fn admin_call(&self, method: &str, path: &str, body: &serde_json::Value) {
        let cookie = self.admin.clone();
        let (status, _, resp) = http_with_head(self.port, method, path, &[("Content-Type", "application/json"), ("Cookie", &cookie)], &body.to_string())
            .expect("glewlwyd admin API");
        assert_eq!(status, 200, "{method} {path}: {resp}\n{}", self.log());
    }

    /// A user who may log in with `password`; `role` and `groups` become the `hcp_role` and
    /// `groups` claims (an absent role: no `hcp_role` claim).
    pub fn add_user(&self, name: &str, password: &str, role: Option<&str>, groups: &[&str]) {
        let mut u = json!({"username": name, "name": name, "password": password, "enabled": true, "scope": ["openid", "profile", "email"], "hcp_groups": groups, "preferred_username": name});
        if let Some(r) = role {
            u["hcp_role"] = json!(r);
        }
        self.admin_call("POST", "/api/user/", &u);
    }

    /// A confidential client (`client_secret_basic` or `_post`) allowed to send the browser to
    /// `redirect_uri`.
    pub fn add_client(&self, client_id: &str, secret: &str, redirect_uri: &str) {
        self.admin_call(
            "POST",
            "/api/client/",
            &json!({"client_id": client_id, "name": client_id, "enabled": true, "confidential": true, "client_secret": secret,
                    "token_endpoint_auth_method": ["client_secret_basic", "client_secret_post"], "redirect_uri": [redirect_uri],
                    "authorization_type": ["code", "refresh_token"], "scope": []}),
        );
    }

    /// Logs `user` in through the login API; returns the session cookie (`NAME=value`).
    pub fn login(&self, user: &str, password: &str) -> String {
        let body = json!({"username": user, "password": password}).to_string();
        let (status, head, resp) = http_with_head(self.port, "POST", "/api/auth/", &[("Content-Type", "application/json")], &body).expect("glewlwyd login API");
        assert_eq!(status, 200, "login of {user}: {resp}");
        set_cookie(&head, Self::SESSION).unwrap_or_else(|| panic!("no session cookie in:\n{head}"))
    }

    /// The user of `cookie` consents to `client_id` getting `scope` (so no consent page shows).
    pub fn grant(&self, cookie: &str, client_id: &str, scope: &str) {
        let (status, _, resp) = http_with_head(
            self.port,
            "PUT",
            &format!("/api/auth/grant/{client_id}"),
            &[("Content-Type", "application/json"), ("Cookie", cookie)],
            &json!({"scope": scope}).to_string(),
        )
        .expect("glewlwyd grant API");
        assert_eq!(status, 200, "grant: {resp}");
    }

    /// The browser-less login: the authorization URL (from the relying party) fetched with the
    /// user's session and `g_continue`; returns where the provider redirects (the callback URL
    /// with `code` and `state`).
    pub fn authorize(&self, cookie: &str, authorization_url: &str) -> String {
        let prefix = format!("http://127.0.0.1:{}", self.port);
        let path = authorization_url.strip_prefix(&prefix).unwrap_or_else(|| panic!("{authorization_url} is not this provider's"));
        let (status, head, resp) = http_with_head(self.port, "GET", &format!("{path}&g_continue"), &[("Cookie", cookie)], "").expect("glewlwyd authorize");
        assert_eq!(status, 302, "authorize: {resp}");
        header_value(&head, "location").expect("Location").to_owned()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("glewlwyd.log")).unwrap_or_default()
    }
}
