//! Bounded retries of API calls on transient failures, and one-line API errors.
//!
//! Retried: HTTP 429 (honouring the server's `retryAfterSeconds`, capped), 500, 502, 503, 504
//! and connections that were refused, reset or closed mid-message. Everything else fails at
//! once with the API server's own message and reason.

use std::future::Future;
use std::time::{Duration, Instant};

/// How hard to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Total time a call may spend retrying.
    pub budget: Duration,
    /// The first backoff; it doubles up to `max_delay`.
    pub first_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

/// The policy of every API call of the hook.
pub const DEFAULT: Policy = Policy {
    max_attempts: 8,
    budget: Duration::from_secs(30),
    first_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(2),
    max_retry_after: Duration::from_secs(10),
};

/// A failed API call: what was attempted and the server's own words.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {message}")]
pub struct ApiError {
    /// What was attempted, e.g. `create pod runner-workflow`.
    pub op: String,
    /// One line: `Status.message (reason)` or the connection error.
    pub message: String,
    /// The HTTP status code, when the server answered.
    pub code: Option<u16>,
    /// The `Status.reason`, when the server answered.
    pub reason: Option<String>,
}

impl ApiError {
    /// Wraps a kube error.
    pub fn new(op: impl Into<String>, err: &kube::Error) -> Self {
        let (message, code, reason) = match err {
            kube::Error::Api(s) => {
                let mut m = if s.message.is_empty() {
                    format!("HTTP {}", s.code)
                } else {
                    s.message.clone()
                };
                if !s.reason.is_empty() && !m.contains(&s.reason) {
                    m = format!("{m} ({})", s.reason);
                }
                (m, Some(s.code), Some(s.reason.clone()))
            }
            other => (hooklib::joblog::with_causes(other), None, None),
        };
        Self {
            op: op.into(),
            message: message.replace(['\n', '\r'], " "),
            code,
            reason,
        }
    }

    /// HTTP 404.
    pub fn is_not_found(&self) -> bool {
        self.code == Some(404)
    }

    /// HTTP 409 (AlreadyExists or Conflict).
    pub fn is_conflict(&self) -> bool {
        self.code == Some(409)
    }
}

/// How long to wait before retrying `err`, or `None` when it is not transient.
pub fn transient(err: &kube::Error, policy: &Policy) -> Option<Option<Duration>> {
    match err {
        kube::Error::Api(s) => match s.code {
            429 => {
                let after = s
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(u64::from(s)).min(policy.max_retry_after));
                Some(after)
            }
            500 | 502 | 503 | 504 => Some(None),
            _ => None,
        },
        kube::Error::HyperError(e) if e.is_closed() || e.is_incomplete_message() => Some(None),
        other => connection_trouble(other).then_some(None),
    }
}

fn connection_trouble(err: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | BrokenPipe
                    | UnexpectedEof
            )
        {
            return true;
        }
        let text = e.to_string().to_ascii_lowercase();
        if [
            "connection closed before message completed",
            "connection reset",
            "connection refused",
            "broken pipe",
        ]
        .iter()
        .any(|p| text.contains(p))
        {
            return true;
        }
        cur = e.source();
    }
    false
}

impl Policy {
    /// The backoff before attempt `n + 1` (`n` ≥ 1).
    pub fn backoff(&self, n: u32) -> Duration {
        self.first_delay
            .saturating_mul(1 << (n.max(1) - 1).min(10))
            .min(self.max_delay)
    }
}

/// Runs `call` until it succeeds, fails for good, or the retries of [`DEFAULT`] are used up.
pub async fn api<T, F, Fut>(op: impl Into<String>, call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    api_with(&DEFAULT, op, call).await
}

/// [`api`] with another policy.
pub async fn api_with<T, F, Fut>(
    policy: &Policy,
    op: impl Into<String>,
    mut call: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let op = op.into();
    let start = Instant::now();
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let wait = match transient(&e, policy) {
                    Some(after) if attempt < policy.max_attempts => {
                        after.unwrap_or(policy.backoff(attempt))
                    }
                    _ => return Err(ApiError::new(op, &e)),
                };
                if start.elapsed() + wait > policy.budget {
                    return Err(ApiError::new(op, &e));
                }
                tracing::debug!(%op, attempt, ?wait, error = %ApiError::new(op.as_str(), &e).message, "transient API failure, retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api_err(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            reason: reason.into(),
            message: format!("boom {code}"),
            ..Status::failure("", "")
        }))
    }

    #[test]
    fn classification() {
        let t = |e: &kube::Error| transient(e, &DEFAULT);
        assert!(t(&api_err(500, "InternalError")).is_some());
        assert!(t(&api_err(503, "ServiceUnavailable")).is_some());
        assert!(t(&api_err(429, "TooManyRequests")).is_some());
        assert!(t(&api_err(404, "NotFound")).is_none());
        assert!(t(&api_err(403, "Forbidden")).is_none());
        assert!(t(&api_err(409, "AlreadyExists")).is_none());
        let reset =
            kube::Error::ReadEvents(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(t(&reset).is_some());
        assert_eq!(DEFAULT.backoff(1), Duration::from_millis(100));
        assert_eq!(DEFAULT.backoff(3), Duration::from_millis(400));
        assert_eq!(DEFAULT.backoff(9), DEFAULT.max_delay);
    }

    #[test]
    fn one_line_messages() {
        let e = ApiError::new("create pod x", &api_err(403, "Forbidden"));
        assert_eq!(e.to_string(), "create pod x: boom 403 (Forbidden)");
        assert_eq!(e.code, Some(403));
    }

    const FAST: Policy = Policy {
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        ..DEFAULT
    };

    #[tokio::test]
    async fn retries_transient_then_succeeds() {
        let calls = AtomicU32::new(0);
        let v = api_with(&FAST, "get pod", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(api_err(500, "InternalError")),
                1 => Err(api_err(429, "TooManyRequests")),
                _ => Ok(7),
            }
        })
        .await
        .unwrap();
        assert_eq!((v, calls.load(Ordering::SeqCst)), (7, 3));
    }

    #[tokio::test]
    async fn gives_up() {
        let calls = AtomicU32::new(0);
        let e = api_with(&FAST, "get pod", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(api_err(503, "ServiceUnavailable"))
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), FAST.max_attempts);
        assert!(e.to_string().contains("boom 503"));
        let calls = AtomicU32::new(0);
        api_with(&FAST, "get pod", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(api_err(404, "NotFound"))
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
