//! The workspace's enforced invariants (ARCHITECTURE.md, "Invariants"), checked by reading its
//! source: a small Rust lexer (comments dropped, string literals kept apart, `#[cfg(test)]`
//! items marked) and one checker per invariant. The checkers work on text, so their own tests
//! feed them lines; `tests/workspace.rs` runs them on the workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A token of Rust source, comments removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    Punct(char),
    /// A string literal's content (raw or escaped: escapes are kept as written).
    Str(String),
    /// Char, byte and number literals and lifetimes: nothing to look at.
    Other,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
    /// Inside an item marked `#[cfg(test)]` (or a file marked `#![cfg(test)]`).
    pub test: bool,
}

/// Splits Rust source into tokens (comments and doc comments dropped) and marks test code.
pub fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let push = |out: &mut Vec<Token>, tok, line| out.push(Token { tok, line, test: false });
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if let Some((len, hashes)) = raw_string_start(&c, i) {
            let start_line = line;
            let mut j = i + len;
            let body = j;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
                    break;
                }
                if c[j] == '\n' {
                    line += 1;
                }
                j += 1;
            }
            push(&mut out, Tok::Str(c[body..j.min(c.len())].iter().collect()), start_line);
            i = j + 1 + hashes;
        } else if ch == '"' || (ch == 'b' && next == Some('"')) || (ch == 'c' && next == Some('"')) {
            let start_line = line;
            let mut j = if ch == '"' { i + 1 } else { i + 2 };
            let body = j;
            while j < c.len() && c[j] != '"' {
                if c[j] == '\\' {
                    j += 1;
                }
                if c.get(j) == Some(&'\n') {
                    line += 1;
                }
                j += 1;
            }
            push(&mut out, Tok::Str(c[body..j.min(c.len())].iter().collect()), start_line);
            i = j + 1;
        } else if ch == '\'' || (ch == 'b' && next == Some('\'')) {
            // A char literal ('a', '\n', '\u{1F600}', b'x') or a lifetime ('a).
            let j = if ch == 'b' { i + 1 } else { i };
            if c.get(j + 1) == Some(&'\\') {
                let mut k = j + 2;
                while k < c.len() && c[k] != '\'' {
                    k += 1;
                }
                i = k + 1;
            } else if c.get(j + 2) == Some(&'\'') {
                i = j + 3;
            } else {
                // A lifetime: skip the quote, the name follows as an identifier.
                i = j + 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
            push(&mut out, Tok::Other, line);
        } else if ch.is_alphabetic() || ch == '_' {
            let mut j = i;
            while j < c.len() && (c[j].is_alphanumeric() || c[j] == '_') {
                j += 1;
            }
            let word: String = c[i..j].iter().collect();
            let word = word.strip_prefix("r#").map(str::to_owned).unwrap_or(word);
            push(&mut out, Tok::Ident(word), line);
            i = j;
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || (c[i] == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()))) {
                i += 1;
            }
            push(&mut out, Tok::Other, line);
        } else {
            push(&mut out, Tok::Punct(ch), line);
            i += 1;
        }
    }
    mark_test_code(&mut out);
    out
}

/// `r"`, `r#"`, `br"`, `br#"`, `cr"`: the length of the opening and the number of `#`.
fn raw_string_start(c: &[char], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if matches!(c.get(j), Some('b') | Some('c')) {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (c.get(j) == Some(&'"')).then_some((j + 1 - i, hashes))
}

fn is_punct(t: &Token, p: char) -> bool {
    t.tok == Tok::Punct(p)
}

fn is_ident(t: &Token, w: &str) -> bool {
    matches!(&t.tok, Tok::Ident(x) if x == w)
}

/// The index just past the bracket that closes the one at `open` (`(`, `[` or `{`).
fn skip_group(toks: &[Token], open: usize) -> usize {
    let mut depth = 0i32;
    let mut i = open;
    while i < toks.len() {
        match toks[i].tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    toks.len()
}

/// Whether `#` at `i` starts `#[cfg(test)]` (or `#![cfg(test)]`): returns the index past it.
fn cfg_test_at(toks: &[Token], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if toks.get(j).is_some_and(|t| is_punct(t, '!')) {
        j += 1;
    }
    let want: [&dyn Fn(&Token) -> bool; 6] =
        [&|t| is_punct(t, '['), &|t| is_ident(t, "cfg"), &|t| is_punct(t, '('), &|t| is_ident(t, "test"), &|t| is_punct(t, ')'), &|t| is_punct(t, ']')];
    for w in want {
        if !toks.get(j).is_some_and(w) {
            return None;
        }
        j += 1;
    }
    Some(j)
}

/// Marks the item after each `#[cfg(test)]` (through its closing `}` or `;`) as test code; a
/// `#![cfg(test)]` marks the whole file.
fn mark_test_code(toks: &mut [Token]) {
    let mut i = 0;
    while i < toks.len() {
        if !is_punct(&toks[i], '#') {
            i += 1;
            continue;
        }
        let Some(mut j) = cfg_test_at(toks, i) else {
            i += 1;
            continue;
        };
        if is_punct(&toks[i + 1], '!') {
            toks.iter_mut().for_each(|t| t.test = true);
            return;
        }
        // Further attributes, then the item up to `;` or its `{ … }` body.
        while j < toks.len() && is_punct(&toks[j], '#') && toks.get(j + 1).is_some_and(|t| is_punct(t, '[')) {
            j = skip_group(toks, j + 1);
        }
        while j < toks.len() {
            match toks[j].tok {
                Tok::Punct(';') => {
                    j += 1;
                    break;
                }
                Tok::Punct('{') => {
                    j = skip_group(toks, j);
                    break;
                }
                Tok::Punct('(' | '[') => j = skip_group(toks, j),
                _ => j += 1,
            }
        }
        let end = j.min(toks.len());
        toks[i..end].iter_mut().for_each(|t| t.test = true);
        i = j;
    }
}

/// An offending line: `file:line: what`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offence {
    pub file: String,
    pub line: usize,
    pub what: String,
}

impl std::fmt::Display for Offence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// The folders of the data root only homelab-store may name.
pub const DATA_ROOT_FOLDERS: [&str; 6] = ["state", "world", "actions", "events", "quarantine", "audit"];

/// Invariant 1 on one file: string literals naming a path under the data root
/// (`"state/…"`, `"{root}/world/…"`) and folder names used as path components
/// (`.join("actions")`, `.push("state")`, `Path::new("world")`, `PathBuf::from("events")`).
/// Prose that merely names a folder (`"world/ updated"`, `"cannot list actions/{state}"`), a
/// bare word or `"world/"` elsewhere (a JSON key, a metric name, a prefix of the store's display
/// names) and URLs (`"{base}/actions/{id}"`) are not paths.
pub fn data_root_paths(file: &str, src: &str) -> Vec<Offence> {
    let toks = lex(src);
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let Tok::Str(s) = &t.tok else { continue };
        if t.test {
            continue;
        }
        // `world/x`, not `world/ updated` (prose) nor `world/` alone (a display-name prefix).
        let url = s.contains("://") || s.contains("href=") || s.contains("{base}");
        let names_path = !url
            && DATA_ROOT_FOLDERS.iter().any(|f| {
                let path_after =
                    |rest: &str| rest.strip_prefix(f).and_then(|r| r.strip_prefix('/')).is_some_and(|r| !r.is_empty() && !r.starts_with(char::is_whitespace));
                path_after(s) || s.match_indices("}/").any(|(at, _)| path_after(&s[at + 2..]))
            });
        let folder = s.strip_suffix('/').unwrap_or(s);
        let component = DATA_ROOT_FOLDERS.contains(&folder) && i >= 2 && is_punct(&toks[i - 1], '(') && {
            let f = &toks[i - 2];
            is_ident(f, "join") || is_ident(f, "push") || (i >= 5 && (is_ident(f, "new") || is_ident(f, "from")) && is_path_type(&toks[i - 5]))
        };
        if names_path || component {
            out.push(Offence { file: file.to_owned(), line: t.line, what: format!("names a path under the data root: {s:?} (ask homelab_store::DataRoot)") });
        }
    }
    out
}

fn is_path_type(t: &Token) -> bool {
    is_ident(t, "Path") || is_ident(t, "PathBuf")
}

/// What `homelab-core` must not use (invariant 2): IO, the clock, async.
pub const CORE_FORBIDDEN: [&str; 12] = [
    "std::fs",
    "std::net",
    "std::process",
    "std::env::var",
    "tokio",
    "async fn",
    ".await",
    "Utc::now",
    "Local::now",
    "SystemTime::now",
    "Instant::now",
    "thread::sleep",
];

/// Invariant 2 on one file: the forbidden paths and keywords outside test code, comments and
/// strings.
pub fn core_io(file: &str, src: &str) -> Vec<Offence> {
    forbidden(file, src, &CORE_FORBIDDEN, "homelab-core must do no IO, read no clock, have no async")
}

/// What a channel (the UI, Telegram, `hcp`) must not do itself (invariant 5): change actions,
/// silences, check-now requests or users, or build an audit record. The operations layer
/// (`homelab_ops::Ops`) does each, with the permission check and the one audit record.
pub const CHANNEL_FORBIDDEN: [&str; 7] =
    [".transition(", ".create_action(", ".write_silence(", ".request_check_now(", ".update_users(", ".append_audit(", "AuditRecord::new("];

/// Invariant 5 on one file of a channel crate.
pub fn channel_commands(file: &str, src: &str) -> Vec<Offence> {
    forbidden(file, src, &CHANNEL_FORBIDDEN, "operator commands and audit records go through homelab_ops::Ops")
}

/// Each occurrence of one of `patterns` (as token sequences) outside test code, comments and
/// strings.
pub fn forbidden(file: &str, src: &str, patterns: &[&str], why: &str) -> Vec<Offence> {
    let toks: Vec<Token> = lex(src).into_iter().filter(|t| !t.test).collect();
    let mut out = Vec::new();
    for pat in patterns {
        let p: Vec<Tok> = lex(pat).into_iter().map(|t| t.tok).collect();
        for w in toks.windows(p.len()) {
            if w.iter().zip(&p).all(|(t, p)| t.tok == *p) {
                out.push(Offence { file: file.to_owned(), line: w[0].line, what: format!("{why}: `{pat}`") });
            }
        }
    }
    out.sort();
    out
}

/// The longest a `.rs` file may be without a reason (invariant 3).
pub const MAX_LINES: usize = 800;
/// The mark that excuses a long file, in its first 5 lines, followed by the reason.
pub const LONG_FILE_MARK: &str = "tidy: long file:";

/// Invariant 3 on one file.
pub fn long_file(file: &str, src: &str) -> Option<Offence> {
    let lines = src.lines().count();
    let excused = src.lines().take(5).any(|l| l.split_once(LONG_FILE_MARK).is_some_and(|(_, why)| !why.trim().is_empty()));
    (lines > MAX_LINES && !excused).then(|| Offence {
        file: file.to_owned(),
        line: lines,
        what: format!("{lines} lines (over {MAX_LINES}): split it, or say why in its first 5 lines with `// {LONG_FILE_MARK} <reason>`"),
    })
}

/// The top-level modules of a crate's `src/`: `a.rs` and `a/` are module `a` (`lib.rs`, `main.rs`
/// and `bin/` are the crate root, not a module).
pub fn top_modules(src_dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(src_dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let m = if e.path().is_dir() { Some(name) } else { name.strip_suffix(".rs").map(str::to_owned) };
        if let Some(m) = m.filter(|m| !matches!(m.as_str(), "lib" | "main" | "bin")) {
            out.insert(m);
        }
    }
    out
}

/// The module path of a file below `src/` (`a/b.rs` → `[a, b]`, `a/mod.rs` → `[a]`, `lib.rs` → `[]`).
pub fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.strip_suffix(".rs").unwrap_or(&last).to_owned();
        let root = parts.is_empty() && matches!(stem.as_str(), "lib" | "main");
        if stem != "mod" && !root {
            parts.push(stem);
        }
    }
    parts
}

/// The top-level modules one file refers to through `crate::x`, `super::x` (resolved from the
/// file's own module path) and `crate::{x, y::…}`, outside test code.
pub fn module_refs(path: &[String], src: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let toks: Vec<Token> = lex(src).into_iter().filter(|t| !t.test).collect();
    let mut out = BTreeSet::new();
    let sep = |i: usize| toks.get(i).is_some_and(|t| is_punct(t, ':')) && toks.get(i + 1).is_some_and(|t| is_punct(t, ':'));
    let mut i = 0;
    while i < toks.len() {
        // Where the path starts (relative to the crate root) and the index after its prefix.
        let start = if is_ident(&toks[i], "crate") && sep(i + 1) && (i == 0 || !is_punct(&toks[i - 1], '$')) {
            Some((Vec::new(), i + 3))
        } else if is_ident(&toks[i], "super") && sep(i + 1) && !(i >= 2 && sep(i - 2)) {
            let mut base = path.to_vec();
            let mut j = i;
            while is_ident(&toks[j], "super") && sep(j + 1) {
                base.pop();
                j += 3;
            }
            Some((base, j))
        } else {
            None
        };
        let Some((base, j)) = start else {
            i += 1;
            continue;
        };
        if !base.is_empty() {
            // Inside a top-level module: a reference to that module itself, or a child of it.
            i = j;
            continue;
        }
        match toks.get(j).map(|t| &t.tok) {
            Some(Tok::Ident(m)) if modules.contains(m) && path.first() != Some(m) => {
                out.insert(m.clone());
            }
            Some(Tok::Punct('{')) => {
                let end = skip_group(&toks, j);
                let mut depth = 0;
                let mut first = true;
                for t in &toks[j..end] {
                    match &t.tok {
                        Tok::Punct('{') => {
                            depth += 1;
                            first = depth == 1;
                        }
                        Tok::Punct('}') => depth -= 1,
                        Tok::Punct(',') if depth == 1 => first = true,
                        Tok::Ident(m) if first && depth == 1 => {
                            if modules.contains(m) && path.first() != Some(m) {
                                out.insert(m.clone());
                            }
                            first = false;
                        }
                        _ => first = false,
                    }
                }
            }
            _ => {}
        }
        i = j;
    }
    out
}

/// The cycles of a module graph: one line per strongly connected group of two or more
/// modules, as a shortest cycle through its first module and the group's members.
pub fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let nodes: Vec<&String> = graph.keys().chain(graph.values().flatten()).collect::<BTreeSet<_>>().into_iter().collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for m in graph.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    stack.push(m.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reach[n].contains(*n) {
            continue;
        }
        let group: BTreeSet<String> = nodes.iter().filter(|m| reach[n].contains(**m) && reach[**m].contains(*n)).map(|m| (*m).clone()).collect();
        done.extend(group.iter().cloned());
        if group.len() < 2 {
            continue;
        }
        // Shortest way back to `n` inside the group (breadth first).
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([(*n).clone()]);
        'bfs: while let Some(x) = queue.pop_front() {
            for y in graph.get(&x).into_iter().flatten().filter(|y| group.contains(*y)) {
                if y == *n {
                    prev.insert(format!("{y}#end"), x.clone());
                    break 'bfs;
                }
                if !prev.contains_key(y) {
                    prev.insert(y.clone(), x.clone());
                    queue.push_back(y.clone());
                }
            }
        }
        let mut back = Vec::new();
        let mut at = prev.get(&format!("{n}#end")).cloned();
        while let Some(x) = at.filter(|x| x != *n) {
            at = prev.get(&x).cloned();
            back.push(x);
        }
        let path: Vec<String> = std::iter::once((*n).clone()).chain(back.into_iter().rev()).chain(std::iter::once((*n).clone())).collect();
        let members = group.iter().cloned().collect::<Vec<_>>().join(", ");
        out.push(format!("{} (strongly connected: {members})", path.join(" -> ")));
    }
    out
}

/// Every `.rs` file below `dir`, sorted (skipping `target/` and dot-folders).
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(p);
                }
            } else if name.ends_with(".rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The workspace root (two folders above this crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root")
}

/// Each crate of the workspace with a `src/` folder: (name of its folder, its folder).
pub fn crates(ws: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for parent in ["crates", "tests"] {
        for e in std::fs::read_dir(ws.join(parent)).into_iter().flatten().flatten() {
            if e.path().join("src").is_dir() {
                out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
            }
        }
    }
    out.sort();
    out
}

/// Reports offences as one failure message, or nothing.
pub fn report(title: &str, offences: &[impl std::fmt::Display]) -> Result<(), String> {
    if offences.is_empty() {
        return Ok(());
    }
    let list = offences.iter().map(|o| format!("  {o}")).collect::<Vec<_>>().join("\n");
    Err(format!("{title} ({} offence(s)):\n{list}", offences.len()))
}

#[cfg(test)]
mod tests;
