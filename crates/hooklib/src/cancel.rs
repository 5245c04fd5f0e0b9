//! Cancellation: the runner cancels a step by signalling the hook process.
//!
//! The runner's `ProcessInvoker` sends SIGINT, then SIGTERM 7.5 s later, then SIGKILL 2.5 s after
//! that. [`main_with`](crate::main_with) turns the first SIGINT/SIGTERM into a [`Cancel`] the
//! hook was built with: the hook stops the step *where it runs* (inside the container or pod),
//! returns, and the process exits 130 (SIGINT) or 143 (SIGTERM) with one `::error::` line. If
//! the hook has not returned [`GRACE`] after the signal, or a second signal arrives, the process
//! exits at once with the same code.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// SIGINT's number.
pub const SIGINT: i32 = 2;
/// SIGTERM's number.
pub const SIGTERM: i32 = 15;

/// How long after the first signal the hook may take to stop the step before the process exits
/// anyway (the runner escalates to SIGTERM after 7.5 s).
pub const GRACE: Duration = Duration::from_millis(6500);

/// A cancellation request shared by everything one hook invocation does. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    signal: Arc<AtomicI32>,
}

impl Cancel {
    /// A request that has not been made yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation, remembering the first signal that did it.
    pub fn cancel(&self, signal: i32) {
        let _ = self
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
        self.token.cancel();
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when cancellation is requested (at once if it already was).
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// The signal that cancelled, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// The process exit code for a cancelled invocation: 128 + the signal (130, 143).
    pub fn exit_code(&self) -> Option<u8> {
        self.signal()
            .map(|s| u8::try_from(128 + s.clamp(1, 127)).unwrap_or(130))
    }

    /// The one `::error::` line of a cancelled invocation.
    pub fn error_line(&self) -> Option<String> {
        self.signal()
            .map(|s| format!("::error::The step was cancelled ({})", signal_name(s)))
    }
}

/// `SIGINT`, `SIGTERM`, or `signal N`.
pub fn signal_name(signal: i32) -> String {
    match signal {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// Listens for SIGINT and SIGTERM on the current runtime: the first one cancels `cancel` and
/// arms a [`GRACE`] watchdog; a second one (or the watchdog) exits the process at once with
/// 128 + the first signal, after printing the cancellation line.
pub(crate) fn install_signal_handlers(cancel: &Cancel) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let cancel = cancel.clone();
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = int.recv() => SIGINT,
            _ = term.recv() => SIGTERM,
        };
        tracing::info!("{} received: cancelling the step", signal_name(first));
        cancel.cancel(first);
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            () = tokio::time::sleep(GRACE) => {
                tracing::warn!("the step did not stop within {GRACE:?} of the signal");
            }
        }
        exit_cancelled(&cancel);
    });
    Ok(())
}

/// Prints the cancellation line and exits with 128 + signal.
pub(crate) fn exit_cancelled(cancel: &Cancel) -> ! {
    if let Some(line) = cancel.error_line() {
        eprintln!("{line}");
    }
    std::process::exit(cancel.exit_code().unwrap_or(130).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_signal_wins_and_maps_to_exit_codes() {
        let c = Cancel::new();
        assert!(!c.is_cancelled());
        assert_eq!(c.exit_code(), None);
        c.cancel(SIGTERM);
        c.cancel(SIGINT);
        assert!(c.is_cancelled());
        assert_eq!(c.signal(), Some(SIGTERM));
        assert_eq!(c.exit_code(), Some(143));
        assert_eq!(
            c.error_line().unwrap(),
            "::error::The step was cancelled (SIGTERM)"
        );
        let c = Cancel::new();
        c.cancel(SIGINT);
        assert_eq!(c.exit_code(), Some(130));
    }

    #[tokio::test]
    async fn cancelled_resolves_for_clones() {
        let c = Cancel::new();
        let d = c.clone();
        let wait = tokio::spawn(async move { d.cancelled().await });
        c.cancel(SIGINT);
        wait.await.unwrap();
    }
}
