//! `hcp user add|passwd|set|remove|logout|list` and `hcp token create|revoke|list`: local users
//! and their API tokens in `state/secrets/users.json` (mode 0600). Every change is written to the
//! audit log as `cli`.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::Context;
use homelab_ops::users::{NewUser, UserChange, check_groups};
use homelab_store::DataRoot;
use homelab_store::users::{Role, hash_password, valid_name};

use crate::RootArg;
use crate::table::render;

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[arg(skip)]
    pub root: RootArg,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, clap::Args)]
pub struct PasswordInput {
    /// Read the password from the first line of stdin (scripts); otherwise it is asked for
    /// twice on the terminal without echo.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a local user with a role, node groups and a password.
    Add {
        /// The user's login name.
        #[arg(value_name = "NAME")]
        name: String,
        /// viewer (read), operator (approve/reject/retry on nodes of their groups), admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A node group this user acts on (repeat, or comma-separated).
        #[arg(long = "group", value_delimiter = ',')]
        groups: Vec<String>,
        /// A Telegram user id whose button presses count as this user (repeat).
        #[arg(long = "telegram-id")]
        telegram_ids: Vec<i64>,
        /// No password: the user signs in with API tokens, the proxy or Telegram only.
        #[arg(long, conflicts_with = "password_stdin")]
        no_password: bool,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Set a new password; the user's sessions end.
    Passwd {
        /// The user's login name.
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Change a user's role, groups or Telegram ids (what is not given stays).
    Set {
        /// The user's login name.
        #[arg(value_name = "NAME")]
        name: String,
        /// The new role: viewer, operator or admin.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// The new list of groups (comma-separated; empty string for none).
        #[arg(long)]
        groups: Option<String>,
        /// The new list of Telegram ids (comma-separated; empty string for none).
        #[arg(long)]
        telegram_ids: Option<String>,
    },
    /// Remove a user: their tokens and sessions stop working at once.
    Remove {
        /// The user's login name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// End every session of a user (the UI asks them to log in again).
    Logout {
        /// The user's login name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// The users, their roles and groups (never a hash).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[arg(skip)]
    pub root: RootArg,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user; it is printed once and stored only as a hash.
    Create {
        /// The user the token acts as (their role and groups).
        #[arg(long)]
        user: String,
        /// What it is for (`ci`, `grafana`, …).
        #[arg(long)]
        name: String,
        /// How long it is valid: `90d` (default), `12h`, `1y`.
        #[arg(long, default_value = "90d")]
        expires: String,
    },
    /// Revoke a token by its id (`hcp token list`).
    Revoke {
        /// The token's id as `hcp token list` shows it.
        #[arg(value_name = "ID")]
        id: String,
    },
    /// The tokens: id, user, name, created, expires (never the token).
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role {s:?}: use viewer, operator or admin"))
}

fn open(root: &RootArg) -> anyhow::Result<DataRoot> {
    DataRoot::open(&root.root).with_context(|| format!("cannot open the data root {}", root.root.display()))
}

fn read_password(input: &PasswordInput) -> anyhow::Result<String> {
    let pw = if input.password_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        let a = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let b = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        if a != b {
            anyhow::bail!("the two passwords differ; nothing changed");
        }
        a
    };
    if pw.chars().count() < 12 {
        anyhow::bail!("the password must have at least 12 characters; nothing changed");
    }
    if pw.len() > 1024 {
        anyhow::bail!("the password is longer than 1024 bytes; nothing changed");
    }
    Ok(pw)
}

fn list_of<T: std::str::FromStr>(s: &str, what: &str) -> anyhow::Result<Vec<T>> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(|x| x.parse::<T>().map_err(|_| anyhow::anyhow!("{x:?} is not a {what}"))).collect()
}

pub fn run_user(args: &UserArgs) -> anyhow::Result<ExitCode> {
    let root = open(&args.root)?;
    let (ops, actor) = crate::actions::local_operator(&root);
    match &args.command {
        UserCommand::Add { name, role, groups, telegram_ids, no_password, password } => {
            if !valid_name(name) {
                anyhow::bail!("{name:?} is not a user name (letters, digits, '.', '_', '-', '@'; at most 64)");
            }
            check_groups(groups)?;
            let password_hash = if *no_password { None } else { Some(hash_password(&read_password(password)?)?) };
            let u = NewUser { name: name.clone(), role: *role, groups: groups.clone(), telegram_ids: telegram_ids.clone(), password_hash };
            ops.user_add(&actor, u)?;
            println!("user {name} added ({role})");
        }
        UserCommand::Passwd { name, password } => {
            if !root.read_users()?.users.contains_key(name) {
                anyhow::bail!("no user {name:?} (hint: hcp user list)");
            }
            ops.user_passwd(&actor, name, hash_password(&read_password(password)?)?)?;
            println!("password of {name} changed; their sessions ended");
        }
        UserCommand::Set { name, role, groups, telegram_ids } => {
            let groups = groups.as_deref().map(|g| list_of::<String>(g, "group")).transpose()?;
            let telegram_ids = telegram_ids.as_deref().map(|t| list_of::<i64>(t, "Telegram id")).transpose()?;
            ops.user_set(&actor, name, UserChange { role: *role, groups, telegram_ids })?;
            println!("user {name} changed");
        }
        UserCommand::Remove { name } => {
            let tokens = ops.user_remove(&actor, name)?;
            println!("user {name} removed with {tokens} token(s); their sessions ended");
        }
        UserCommand::Logout { name } => {
            let n = ops.user_logout(&actor, name)?;
            println!("{n} session(s) of {name} ended");
        }
        UserCommand::List { json } => {
            let f = root.read_users()?;
            if *json {
                let list: Vec<_> = f
                    .users
                    .iter()
                    .map(|(n, u)| {
                        serde_json::json!({"name": n, "role": u.role, "groups": u.groups, "telegram_ids": u.telegram_ids,
                            "password": u.password_hash.is_some(), "created_at": u.created_at, "updated_at": u.updated_at})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                let rows: Vec<Vec<String>> = f
                    .users
                    .iter()
                    .map(|(n, u)| {
                        let tg: Vec<String> = u.telegram_ids.iter().map(i64::to_string).collect();
                        vec![
                            n.clone(),
                            u.role.to_string(),
                            u.groups.join(","),
                            if u.password_hash.is_some() { "yes".into() } else { "no".into() },
                            tg.join(","),
                        ]
                    })
                    .collect();
                print!("{}", render(&["USER", "ROLE", "GROUPS", "PASSWORD", "TELEGRAM"], &rows));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `90d`, `12h`, `1y`, `30m`, or seconds.
fn parse_validity(s: &str) -> anyhow::Result<chrono::Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| anyhow::anyhow!("--expires {s:?}: use e.g. 90d, 12h, 1y"))?;
    let d = match unit {
        "" | "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        "y" => chrono::Duration::days(365 * n),
        _ => anyhow::bail!("--expires {s:?}: use e.g. 90d, 12h, 1y"),
    };
    if d <= chrono::Duration::zero() || d > chrono::Duration::days(3650) {
        anyhow::bail!("--expires must be more than 0 and at most 10 years");
    }
    Ok(d)
}

pub fn run_token(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let root = open(&args.root)?;
    let (ops, actor) = crate::actions::local_operator(&root);
    let now = chrono::Utc::now();
    match &args.command {
        TokenCommand::Create { user, name, expires } => {
            let (token, rec) = ops.token_create(&actor, user, name, parse_validity(expires)?)?;
            eprintln!("token {} for {user}, valid until {}; it is shown only now:", rec.id, homelab_core::rfc3339(rec.expires_at));
            println!("{token}");
        }
        TokenCommand::Revoke { id } => {
            let user = ops.token_revoke(&actor, id)?;
            println!("token {id} of {user} revoked");
        }
        TokenCommand::List { user, json } => {
            let f = root.read_users()?;
            let toks: Vec<_> = f.tokens.iter().filter(|t| user.as_ref().is_none_or(|u| &t.user == u)).collect();
            if *json {
                let list: Vec<_> = toks
                    .iter()
                    .map(|t| serde_json::json!({"id": t.id, "user": t.user, "name": t.name, "created_at": t.created_at, "expires_at": t.expires_at, "expired": t.expires_at <= now}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                let rows: Vec<Vec<String>> = toks
                    .iter()
                    .map(|t| {
                        let exp = if t.expires_at <= now {
                            format!("{} (expired)", homelab_core::rfc3339(t.expires_at))
                        } else {
                            homelab_core::rfc3339(t.expires_at)
                        };
                        vec![t.id.clone(), t.user.clone(), t.name.clone(), homelab_core::rfc3339(t.created_at), exp]
                    })
                    .collect();
                print!("{}", render(&["ID", "USER", "NAME", "CREATED", "EXPIRES"], &rows));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
