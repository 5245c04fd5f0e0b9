//! The hook's own log in the step log: each phase in a `::group::` … `::endgroup::` block that
//! ends with the phase's duration. Messages inside go through `tracing` (stderr); the group
//! markers are written raw so the runner recognizes them.

use std::time::Instant;

/// An open log group; closed (with its duration) when dropped, also on an error path.
#[derive(Debug)]
pub(crate) struct Group {
    title: String,
    started: Instant,
}

impl Group {
    /// Opens a group titled `title`.
    pub(crate) fn open(title: impl Into<String>) -> Self {
        let title = title.into();
        eprintln!("::group::{title}");
        Self {
            title,
            started: Instant::now(),
        }
    }

    /// Seconds since the group was opened.
    pub(crate) fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        tracing::info!("{} took {:.2}s", self.title, self.elapsed());
        eprintln!("::endgroup::");
    }
}
