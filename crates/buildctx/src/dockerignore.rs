//! `.dockerignore` with Docker's own rules (no maintained Rust crate implements them; gitignore
//! semantics differ: Docker patterns are anchored at the context root, the last matching
//! pattern wins, a pattern matching a parent directory matches everything below it, and `!`
//! exceptions can re-include files inside an excluded directory).
//!
//! Reading follows the Docker builder: lines starting with `#` are comments, lines are trimmed,
//! blank lines skipped, a leading `!` makes an exception, each pattern is cleaned like Go's
//! `filepath.Clean` and a leading `/` is dropped. Matching follows the `patternmatcher`
//! package: `*` matches any run of non-`/` characters, `?` one non-`/` character, `[…]` a
//! class, `\` escapes, and `**` any number of directories (including none).

use regex::Regex;

/// `.dockerignore` is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".dockerignore line {line}: {reason}")]
pub struct IgnoreError {
    line: usize,
    reason: String,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern, without `!`.
    text: String,
    regex: Regex,
    exclusion: bool,
}

/// Compiled `.dockerignore` patterns.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Translates a cleaned pattern into an anchored regular expression, as `patternmatcher` does.
fn compile(pattern: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(c);
            }
            '\\' => match chars.next() {
                Some(next) => re.push_str(&regex::escape(&next.to_string())),
                None => re.push_str("\\\\"),
            },
            c => re.push(c),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("bad pattern {pattern:?}: {e}"))
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let raw = if i == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            };
            if raw.starts_with('#') {
                continue;
            }
            let mut line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let exclusion = line.starts_with('!');
            if exclusion {
                line = line[1..].trim();
            }
            if line.is_empty() {
                return Err(IgnoreError {
                    line: i + 1,
                    reason: "illegal exclusion pattern \"!\"".to_owned(),
                });
            }
            let mut cleaned = clean(line);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let regex = compile(&cleaned).map_err(|reason| IgnoreError {
                line: i + 1,
                reason,
            })?;
            patterns.push(Pattern {
                text: cleaned,
                regex,
                exclusion,
            });
        }
        Ok(Self { patterns })
    }

    /// Adds an exception for `path` when it would be excluded (the Dockerfile and
    /// `.dockerignore` are always sent, as the docker CLI does).
    pub fn keep(&mut self, path: &str) {
        if self.is_excluded(path) {
            let text = clean(path);
            if let Ok(regex) = compile(&text) {
                self.patterns.push(Pattern {
                    text,
                    regex,
                    exclusion: true,
                });
            }
        }
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded: the last pattern
    /// that matches the path or one of its parent directories decides.
    pub fn is_excluded(&self, path: &str) -> bool {
        let parents: Vec<&str> = {
            let mut v = Vec::new();
            let mut end = 0;
            while let Some(pos) = path[end..].find('/') {
                end += pos;
                v.push(&path[..end]);
                end += 1;
            }
            v
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                // An exception cannot change an unmatched path, nor an exclusion a matched one.
                continue;
            }
            let hit = p.regex.is_match(path) || parents.iter().any(|d| p.regex.is_match(d));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether an excluded directory must still be walked because an exception pattern may
    /// re-include something inside it (Docker checks whether an exception starts with it).
    pub fn must_descend(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.text).starts_with(&prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    #[test]
    fn go_clean() {
        for (input, want) in [
            ("a/b/", "a/b"),
            ("./a//b/./c", "a/b/c"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("", "."),
            ("/", "/"),
            ("a/..", "."),
        ] {
            assert_eq!(clean(input), want, "{input:?}");
        }
    }

    #[test]
    fn anchored_at_the_root_unlike_gitignore() {
        let i = ig("*.md\n");
        assert!(i.is_excluded("README.md"));
        assert!(!i.is_excluded("docs/guide.md"));
        let i = ig("**/*.md\n");
        assert!(i.is_excluded("README.md"));
        assert!(i.is_excluded("docs/deep/guide.md"));
    }

    #[test]
    fn directories_exclude_their_contents() {
        let i = ig("node_modules\n/build/\n");
        assert!(i.is_excluded("node_modules"));
        assert!(i.is_excluded("node_modules/x/y.js"));
        assert!(i.is_excluded("build/out.o"));
        assert!(!i.is_excluded("src/node_modules/x"));
        assert!(!i.is_excluded("buildx"));
    }

    #[test]
    fn last_match_wins_and_exceptions_reinclude() {
        let i = ig("*.txt\n!keep.txt\n");
        assert!(i.is_excluded("a.txt"));
        assert!(!i.is_excluded("keep.txt"));
        let i = ig("!keep.txt\n*.txt\n");
        assert!(i.is_excluded("keep.txt"));
        let i = ig("data\n!data/keep\n");
        assert!(i.is_excluded("data/drop"));
        assert!(!i.is_excluded("data/keep"));
        assert!(i.must_descend("data"));
        assert!(!i.must_descend("other"));
    }

    #[test]
    fn wildcards() {
        let i = ig("a?c\nlogs/*.log\n[xy]z\nsrc/**/gen\n**/tmp/**\n");
        assert!(i.is_excluded("abc"));
        assert!(!i.is_excluded("a/c"));
        assert!(i.is_excluded("logs/x.log"));
        assert!(!i.is_excluded("logs/sub/x.log"));
        assert!(i.is_excluded("xz") && i.is_excluded("yz") && !i.is_excluded("zz"));
        assert!(i.is_excluded("src/gen"));
        assert!(i.is_excluded("src/a/b/gen/file"));
        assert!(i.is_excluded("tmp/x"));
        assert!(i.is_excluded("a/tmp/x"));
    }

    #[test]
    fn literal_characters_and_escapes() {
        let i = ig("file.txt\nweird+(name)\n\\*star\n");
        assert!(i.is_excluded("file.txt"));
        assert!(!i.is_excluded("fileXtxt"));
        assert!(i.is_excluded("weird+(name)"));
        assert!(i.is_excluded("*star"));
        assert!(!i.is_excluded("xstar"));
    }

    #[test]
    fn comments_blank_lines_and_bom() {
        let i = ig("\u{feff}# comment\n\n   \n  spaced.txt  \n#not-a-pattern\n");
        assert!(i.is_excluded("spaced.txt"));
        assert!(!i.is_excluded("#not-a-pattern"));
        assert!(!i.is_excluded("comment"));
    }

    #[test]
    fn keep_reincludes_build_files() {
        let mut i = ig("*\n");
        assert!(i.is_excluded("Dockerfile"));
        i.keep("Dockerfile");
        i.keep(".dockerignore");
        assert!(!i.is_excluded("Dockerfile"));
        assert!(!i.is_excluded(".dockerignore"));
        assert!(i.is_excluded("other"));
    }

    #[test]
    fn bad_patterns_name_the_line() {
        let err = DockerIgnore::parse("ok\n!\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            ".dockerignore line 2: illegal exclusion pattern \"!\""
        );
        let err = DockerIgnore::parse("[unclosed\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(".dockerignore line 1: bad pattern"),
            "{err}"
        );
    }
}
