//! The output of an emulated builder container: appended as the build goes, read by `logs`
//! (whole, tail, or followed until the container ends) and by `attach` (from now on).

use std::sync::Mutex;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::kubelet::runtime::RuntimeError;

/// A growing log with a "finished" mark.
#[derive(Debug)]
pub struct LogBuf {
    data: Mutex<Vec<u8>>,
    /// (length, finished)
    state: watch::Sender<(usize, bool)>,
}

impl Default for LogBuf {
    fn default() -> Self {
        Self {
            data: Mutex::new(Vec::new()),
            state: watch::channel((0, false)).0,
        }
    }
}

impl LogBuf {
    /// Append text.
    pub fn write(&self, text: &[u8]) {
        if text.is_empty() {
            return;
        }
        let len = {
            let mut d = self.data.lock().unwrap_or_else(|p| p.into_inner());
            d.extend_from_slice(text);
            d.len()
        };
        self.state.send_modify(|s| s.0 = len);
    }

    /// Append one line.
    pub fn line(&self, text: &str) {
        let mut t = text.trim_end_matches('\n').to_owned();
        t.push('\n');
        self.write(t.as_bytes());
    }

    /// No more output will come.
    pub fn finish(&self) {
        self.state.send_modify(|s| s.1 = true);
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.state.borrow().0
    }

    fn slice(&self, from: usize) -> Bytes {
        let d = self.data.lock().unwrap_or_else(|p| p.into_inner());
        Bytes::copy_from_slice(&d[from.min(d.len())..])
    }

    /// Where the last `n` lines start.
    fn tail_start(&self, n: u64) -> usize {
        let d = self.data.lock().unwrap_or_else(|p| p.into_inner());
        let body = d.strip_suffix(b"\n").unwrap_or(&d);
        let mut seen = 0u64;
        for (i, b) in body.iter().enumerate().rev() {
            if *b == b'\n' {
                seen += 1;
                if seen == n {
                    return i + 1;
                }
            }
        }
        0
    }

    /// The log from `tail` lines before the end (all when None), followed until finished when
    /// `follow`.
    pub fn stream(
        self: &std::sync::Arc<Self>,
        follow: bool,
        tail: Option<u64>,
    ) -> BoxStream<'static, Result<Bytes, RuntimeError>> {
        let start = match tail {
            Some(0) => self.written(),
            Some(n) => self.tail_start(n),
            None => 0,
        };
        self.from(start, follow)
    }

    /// The log from byte `start`, followed until finished when `follow`.
    pub fn from(
        self: &std::sync::Arc<Self>,
        start: usize,
        follow: bool,
    ) -> BoxStream<'static, Result<Bytes, RuntimeError>> {
        let me = self.clone();
        let rx = self.state.subscribe();
        futures::stream::unfold(
            (me, rx, start, false),
            move |(me, mut rx, pos, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let (len, finished) = *rx.borrow_and_update();
                    if len > pos {
                        let chunk = me.slice(pos);
                        let next = pos + chunk.len();
                        return Some((Ok(chunk), (me, rx, next, false)));
                    }
                    if finished || !follow {
                        return None;
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        )
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn collect(s: BoxStream<'static, Result<Bytes, RuntimeError>>) -> String {
        let v: Vec<_> = s.collect().await;
        v.into_iter()
            .map(|b| String::from_utf8_lossy(&b.unwrap()).into_owned())
            .collect()
    }

    #[tokio::test]
    async fn tail_follow_and_finish() {
        let log = Arc::new(LogBuf::default());
        log.line("a");
        log.line("b");
        log.line("c");
        assert_eq!(collect(log.stream(false, Some(2))).await, "b\nc\n");
        assert_eq!(collect(log.stream(false, Some(10))).await, "a\nb\nc\n");
        assert_eq!(collect(log.stream(false, Some(0))).await, "");
        let followed = tokio::spawn(collect(log.stream(true, None)));
        let attached = tokio::spawn(collect(log.from(log.written(), true)));
        tokio::task::yield_now().await;
        log.line("d");
        log.finish();
        assert_eq!(followed.await.unwrap(), "a\nb\nc\nd\n");
        assert_eq!(attached.await.unwrap(), "d\n");
    }
}
