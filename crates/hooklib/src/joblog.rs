//! The hook's own lines in the job log, written as the runner's workflow commands: phases as
//! `::group::` … `::endgroup::` blocks that end with their duration, `::warning::` and
//! `::error::` annotations, plain lines. Everything goes to stderr (the runner parses workflow
//! commands on both streams); stdout belongs to the step and is never written here.
//!
//! Both hooks print through this module, so the escaping rule lives in one place: [`escape`].

use std::time::{Duration, Instant};

/// Escapes the characters the runner treats specially in a workflow command's data (`%`, CR,
/// LF), so that a message lands in one annotation however many lines it has.
///
/// ```
/// assert_eq!(hooklib::joblog::escape("50%\nnext"), "50%25%0Anext");
/// ```
pub fn escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// The `::warning::` line for `text` (escaped).
pub fn warning_line(text: &str) -> String {
    format!("::warning::{}", escape(text))
}

/// The `::error::` line for `text` (escaped).
pub fn error_line(text: &str) -> String {
    format!("::error::{}", escape(text))
}

/// An error and its causes as one message: the causes joined with `: `, one whose text the
/// message already holds left out (an error that prints its cause is not repeated).
pub fn with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

/// Prints a `::warning::` line.
pub fn warning(text: &str) {
    eprintln!("{}", warning_line(text));
}

/// Prints an `::error::` line (for what a step's own exit code cannot say, e.g. an OOM kill).
pub fn error(text: &str) {
    eprintln!("{}", error_line(text));
}

/// Prints a plain line.
pub fn info(text: &str) {
    eprintln!("{text}");
}

/// A duration as `1.23 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A phase shown as a collapsible group. [`Group::end`] closes it with `done in <duration>`;
/// a group dropped without `end` (an error path) closes with `failed in <duration>`.
#[derive(Debug)]
#[must_use = "a group closes when dropped; call `end` when the phase succeeded"]
pub struct Group {
    start: Instant,
    open: bool,
}

impl Group {
    /// Opens a group titled `title`.
    pub fn start(title: &str) -> Self {
        eprintln!("::group::{}", escape(title));
        Self {
            start: Instant::now(),
            open: true,
        }
    }

    /// Closes the group as done; returns how long it was open.
    pub fn end(mut self) -> Duration {
        self.close("done");
        self.start.elapsed()
    }

    /// How long the group has been open.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn close(&mut self, how: &str) {
        if self.open {
            eprintln!("{how} in {}", secs(self.start.elapsed()));
            eprintln!("::endgroup::");
            self.open = false;
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.close("failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_escaped_once() {
        assert_eq!(
            warning_line("a\r\nb %0A"),
            "::warning::a%0D%0Ab %250A",
            "a literal %0A stays text"
        );
        assert_eq!(error_line("plain"), "::error::plain");
    }

    #[test]
    fn causes_are_joined_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        struct Leaf(&'static str);
        #[derive(Debug, thiserror::Error)]
        #[error("{what}")]
        struct Outer {
            what: &'static str,
            #[source]
            source: Leaf,
        }
        let hidden = Outer {
            what: "cannot pull x",
            source: Leaf("manifest unknown"),
        };
        assert_eq!(with_causes(&hidden), "cannot pull x: manifest unknown");
        let shown = Outer {
            what: "cannot pull x: manifest unknown",
            source: Leaf("manifest unknown"),
        };
        assert_eq!(with_causes(&shown), "cannot pull x: manifest unknown");
    }

    #[test]
    fn durations_read_as_seconds() {
        assert_eq!(secs(Duration::from_millis(1234)), "1.23 s");
    }
}
