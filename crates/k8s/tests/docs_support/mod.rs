//! Reading the documentation and the sources for the docs tests: Markdown (fenced blocks,
//! code spans, tables, links, headings) and Rust (string literals and `#[error]` formats, via
//! `proc-macro2`'s lexer, without doc comments and `#[cfg(test)]` items).

pub mod objects;

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file of the workspace, as text.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Every `docs/*.md`, sorted, as (path relative to the root, text).
pub fn docs() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| {
            let rel = format!("docs/{}", p.file_name().unwrap().to_string_lossy());
            let text = std::fs::read_to_string(&p).unwrap();
            (rel, text)
        })
        .collect();
    out.sort();
    out
}

/// A fenced code block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The info string's first word (`yaml`, `json`, `sh`, ...).
    pub lang: String,
    /// The content, with the fence's indentation removed.
    pub text: String,
    /// 1-based line of the opening fence.
    pub line: usize,
}

/// The fenced blocks of a Markdown text, and the text outside them (fenced lines blanked so
/// line numbers stay).
pub fn split_fences(md: &str) -> (Vec<Block>, String) {
    let mut blocks = Vec::new();
    let mut prose = String::new();
    let mut open: Option<(String, usize, usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None if trimmed.starts_with("```") => {
                let lang = trimmed.trim_start_matches('`').split_whitespace().next();
                open = Some((lang.unwrap_or("").to_owned(), i + 1, indent, String::new()));
                prose.push('\n');
            }
            None => {
                prose.push_str(line);
                prose.push('\n');
            }
            Some((lang, start, ind, text)) => {
                if trimmed.starts_with("```") {
                    blocks.push(Block {
                        lang: std::mem::take(lang),
                        text: std::mem::take(text),
                        line: *start,
                    });
                    open = None;
                } else {
                    let cut = line.len().min(*ind);
                    let cut = if line[..cut].trim().is_empty() {
                        cut
                    } else {
                        0
                    };
                    text.push_str(&line[cut..]);
                    text.push('\n');
                }
                prose.push('\n');
            }
        }
    }
    assert!(open.is_none(), "an unclosed code fence");
    (blocks, prose)
}

/// The inline code spans of prose (any number of backticks; one space of padding removed on
/// both sides, as CommonMark does).
pub fn code_spans(prose: &str) -> Vec<String> {
    let b = prose.as_bytes();
    let run = |at: usize| b[at..].iter().take_while(|c| **c == b'`').count();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'`' {
            i += 1;
            continue;
        }
        let n = run(i);
        let start = i + n;
        let mut j = start;
        let mut closed = None;
        while j < b.len() {
            if b[j] == b'`' {
                let m = run(j);
                if m == n {
                    closed = Some(j);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match closed {
            Some(end) => {
                let mut s = prose[start..end].replace('\n', " ");
                if s.len() >= 2 && s.starts_with(' ') && s.ends_with(' ') && !s.trim().is_empty() {
                    s = s[1..s.len() - 1].to_owned();
                }
                spans.push(s);
                i = end + n;
            }
            None => i = start,
        }
    }
    spans
}

/// The cells of every table row of prose (separator rows excluded).
pub fn table_rows(prose: &str) -> Vec<Vec<String>> {
    prose
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|') && l.ends_with('|') && l.len() > 1)
        .map(|l| {
            l[1..l.len() - 1]
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|cells| {
            !cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        })
        .collect()
}

/// The text of a cell that is exactly one code span, e.g. `` `RUNNER_NAME` `` → `RUNNER_NAME`.
pub fn sole_code(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.contains('`')).then_some(inner)
}

/// Link targets `](target)` of prose.
pub fn links(prose: &str) -> Vec<String> {
    prose
        .match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &prose[i + 2..];
            rest.find(')').map(|end| rest[..end].to_owned())
        })
        .collect()
}

/// GitHub's anchors of a Markdown text's headings.
pub fn anchors(md: &str) -> Vec<String> {
    let (_, prose) = split_fences(md);
    prose
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// What the Rust sources say, outside doc comments and `#[cfg(test)]` items.
#[derive(Debug, Default)]
pub struct Sources {
    /// Every string literal's value.
    pub strings: Vec<String>,
    /// The format string of every `#[error("...")]`, with its file.
    pub error_formats: Vec<(String, String)>,
}

/// Lexes every `.rs` file under `dirs` (relative to the root), test files (`tests.rs`,
/// `*_tests.rs`) excluded.
pub fn sources(dirs: &[&str]) -> Sources {
    let mut out = Sources::default();
    let mut files = Vec::new();
    for d in dirs {
        collect_rs(&root().join(d), &mut files);
    }
    assert!(!files.is_empty(), "no sources under {dirs:?}");
    for f in files {
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        if stem == "tests" || stem.ends_with("_tests") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let ts = TokenStream::from_str(&text)
            .unwrap_or_else(|e| panic!("lexing {}: {e:?}", f.display()));
        let rel = f.strip_prefix(root()).unwrap_or(&f).display().to_string();
        walk(ts, &rel, &mut out);
    }
    out
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn ident_is(t: Option<&TokenTree>, name: &str) -> bool {
    matches!(t, Some(TokenTree::Ident(i)) if i == name)
}

fn is_cfg_test(inner: &[TokenTree]) -> bool {
    ident_is(inner.first(), "cfg")
        && matches!(inner.get(1), Some(TokenTree::Group(g))
            if g.delimiter() == Delimiter::Parenthesis && g.stream().to_string().trim() == "test")
}

/// Index after the item starting at `from` (its attributes, then up to a `;` or a `{…}` body).
fn skip_item(tokens: &[TokenTree], mut i: usize) -> usize {
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Punct(p) if p.as_char() == ';' => return i + 1,
            TokenTree::Punct(p) if p.as_char() == '#' => i += 2,
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => return i + 1,
            _ => i += 1,
        }
    }
    i
}

fn walk(ts: TokenStream, file: &str, out: &mut Sources) {
    let tokens: Vec<TokenTree> = ts.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Punct(p) if p.as_char() == '#' => {
                let bang =
                    matches!(tokens.get(i + 1), Some(TokenTree::Punct(b)) if b.as_char() == '!');
                let at = if bang { i + 2 } else { i + 1 };
                let Some(TokenTree::Group(g)) = tokens.get(at) else {
                    i += 1;
                    continue;
                };
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                if ident_is(inner.first(), "doc") {
                    i = at + 1;
                } else if is_cfg_test(&inner) {
                    if bang {
                        return;
                    }
                    i = skip_item(&tokens, at + 1);
                } else if ident_is(inner.first(), "error") {
                    if let Some(TokenTree::Group(args)) = inner.get(1)
                        && let Some(TokenTree::Literal(l)) = args.stream().into_iter().next()
                        && let Some(s) = string_value(&l.to_string())
                    {
                        out.error_formats.push((file.to_owned(), s.clone()));
                        out.strings.push(s);
                    }
                    i = at + 1;
                } else {
                    walk(g.stream(), file, out);
                    i = at + 1;
                }
            }
            TokenTree::Group(g) => {
                walk(g.stream(), file, out);
                i += 1;
            }
            TokenTree::Literal(l) => {
                if let Some(s) = string_value(&l.to_string()) {
                    out.strings.push(s);
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// The value of a (raw) string literal as written in source; `None` for other literals.
pub fn string_value(repr: &str) -> Option<String> {
    if let Some(raw) = repr.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let body = &raw[hashes..];
        return Some(body[1..body.len() - 1 - hashes].to_owned());
    }
    let body = repr.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some('\n') => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).unwrap()));
            }
            Some('u') => {
                let code: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let code = code.trim_start_matches('{');
                out.push(char::from_u32(u32::from_str_radix(code, 16).unwrap()).unwrap());
            }
            other => panic!("unknown escape \\{other:?} in {repr}"),
        }
    }
    Some(out)
}

/// The literal parts of a format string, in order, trimmed, empty ones dropped:
/// `"cannot pull {image}{attempts}: {reason}"` → `["cannot pull", ":"]`.
pub fn format_fragments(fmt: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                parts.last_mut().unwrap().push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                parts.last_mut().unwrap().push('}');
            }
            '{' => {
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
                parts.push(String::new());
            }
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether `fragments` occur in `text` in this order.
pub fn in_order(text: &str, fragments: &[String]) -> bool {
    let mut rest = text;
    for f in fragments {
        match rest.find(f.as_str()) {
            Some(at) => rest = &rest[at + f.len()..],
            None => return false,
        }
    }
    true
}

/// The upper-case words (`[A-Z0-9_]+`, starting with a letter) of a text.
pub fn upper_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| w.len() > 1 && w.starts_with(|c: char| c.is_ascii_uppercase()))
}
