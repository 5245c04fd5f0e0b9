//! The hook's lines in the job log: phases as `::group::` with their duration, warnings as
//! `::warning::`. Everything goes to stderr; stdout belongs to the step.

use std::time::{Duration, Instant};

fn escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Prints a `::warning::` line.
pub fn warning(text: &str) {
    eprintln!("::warning::{}", escape(text));
}

/// Prints an `::error::` line (for what the step's own exit code cannot say, e.g. an OOM kill).
pub fn error(text: &str) {
    eprintln!("::error::{}", escape(text));
}

/// Prints a plain line.
pub fn info(text: &str) {
    eprintln!("{text}");
}

/// A phase shown as a collapsible group; its duration is printed when it ends.
#[derive(Debug)]
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

    /// Closes the group with its duration.
    pub fn end(mut self) -> Duration {
        self.close("done");
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

/// A duration as `1.23 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
