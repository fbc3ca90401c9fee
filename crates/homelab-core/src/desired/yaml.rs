//! services.yaml read as a tree of YAML nodes, each with its place in the file, so that the
//! validator can walk the whole file and report every problem (serde stops at the first).
//! Syntax errors of the YAML parser are put in our own words here.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML node. Mapping keys keep their order and duplicates (the validator reports them).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl Node {
    /// What this node is, for "expected …, found …" messages.
    pub fn describe(&self) -> String {
        match self {
            Node::Null => "nothing (an empty value)".into(),
            Node::Bool(b) => format!("{b}"),
            Node::Int(i) => format!("the number {i}"),
            Node::Float(f) => format!("the number {f}"),
            Node::Str(s) if s.chars().count() > 40 => "a text".into(),
            Node::Str(s) => format!("{s:?}"),
            Node::Seq(_) => "a list".into(),
            Node::Map(_) => "a mapping (key: value)".into(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
                Ok(Node::Int(v))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
                Ok(Node::Int(i128::try_from(v).unwrap_or(i128::MAX)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = a.next_key::<Spanned<String>>()? {
                    let value = a.next_value()?;
                    entries.push((key, value));
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// A syntax error, in our words: where, what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

const INDENT_HINT: &str =
    "indent with spaces only; keys of one mapping start in the same column, and the keys inside one go two spaces further than their parent";

/// Reads `text` as one YAML document. `Ok(None)` for an empty file (or only comments).
pub fn read(text: &str) -> Result<Option<Spanned<Node>>, SyntaxError> {
    let mut options = serde_saphyr::options::Options::default();
    // Duplicates reach the validator, which names them with both places.
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::PassThrough;
    serde_saphyr::from_str_with_options::<Option<Spanned<Node>>>(text, options).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let raw = e.to_string();
        let (message, hint) = plain(parser_message(&raw));
        SyntaxError { line, column, message, hint }
    })
}

/// The parser's own sentence, without the "error: line L column C:" prefix and the snippet.
fn parser_message(raw: &str) -> &str {
    let first = raw.lines().next().unwrap_or(raw).trim();
    let rest = first.strip_prefix("error:").unwrap_or(first).trim();
    match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((loc, msg)) if loc.split(" column ").all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())) => msg.trim(),
        _ => rest,
    }
}

/// Maps a parser message to a plain sentence and a hint.
pub fn plain(parser: &str) -> (String, Option<String>) {
    let p = parser.to_ascii_lowercase();
    let s = |m: &str, h: &str| (m.to_owned(), Some(h.to_owned()));
    if p.contains("tab") {
        s("a tab character is used for indentation; YAML indentation must be spaces", "replace the tabs with spaces")
    } else if p.contains("unclosed quote") || p.contains("quoted scalar") && p.contains("end of stream") {
        s("a quoted text is never closed", "add the closing quote, or remove the opening one")
    } else if p.contains("unclosed bracket") {
        let which = if p.contains('{') { "{" } else { "[" };
        let close = if which == "{" { "}" } else { "]" };
        (format!("a `{which}` is never closed"), Some(format!("close it with `{close}`, or write the items on their own lines instead")))
    } else if p.contains("trailing content after") {
        s("there is more text after a closing quote", "quote the whole value, e.g. \"a b\"")
    } else if p.contains("mapping values are not allowed") {
        s(
            "a `key: value` appears where it does not fit: either a value holds \": \" and needs quotes, or this line is indented more than the keys around it",
            INDENT_HINT,
        )
    } else if p.contains("did not find expected '-'") || p.contains("block sequence entries are not allowed") {
        s("list items (`- …`) and `key: value` lines are mixed at the same indentation", INDENT_HINT)
    } else if p.contains("did not find expected key") || p.contains("did not find expected node content") {
        s("this line is not indented like the lines around it", INDENT_HINT)
    } else if p.contains("illegal placement of ':'") || p.contains("did not find expected ',' or") {
        s("unexpected text inside `[ … ]` or `{ … }`; a bracket above may not be closed", "close every `[` with `]` and every `{` with `}` on the same item")
    } else if p.contains("expected string scalar") || p.contains("complex key") {
        s("a key must be a plain name, not a list or a mapping", "write keys as `name: value`")
    } else if p.contains("alias") || p.contains("anchor") {
        s("an alias (`*name`) refers to no anchor (`&name`) defined above it", "define the anchor before using it, or write the value out")
    } else if p.contains("budget") || p.contains("limit") {
        s("the file is too large or too deeply nested to read", "services.yaml describes one node; keep it small")
    } else {
        (format!("this is not valid YAML ({parser})"), Some(INDENT_HINT.to_owned()))
    }
}

/// The source text of a node (for a number or `yes` where text is wanted: `5` stays "5",
/// `1.50` stays "1.50").
pub fn raw<'t>(text: &'t str, node: &Spanned<Node>) -> Option<&'t str> {
    let span = node.referenced.span();
    let (start, len) = (span.byte_offset()? as usize, span.byte_len()? as usize);
    text.get(start..start.checked_add(len)?).map(str::trim).filter(|s| !s.is_empty())
}
