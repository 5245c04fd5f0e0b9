//! Bounded log lines: a builder's log is written by the Dockerfile's `RUN` lines (hostile
//! input), so a line is cut at [`MAX_LINE`] bytes with a marker saying how much was dropped,
//! and nothing longer is ever held in memory.

/// The longest log line kept (bytes, before the marker).
pub const MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines of at most `max` bytes each.
#[derive(Debug)]
pub struct Lines {
    pending: Vec<u8>,
    dropped: usize,
    max: usize,
}

impl Default for Lines {
    fn default() -> Self {
        Self::new(MAX_LINE)
    }
}

impl Lines {
    /// Lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            pending: Vec::new(),
            dropped: 0,
            max,
        }
    }

    /// Feeds bytes; `out` gets every line completed by them (without the newline).
    pub fn push(&mut self, mut data: &[u8], mut out: impl FnMut(String)) {
        while !data.is_empty() {
            let (segment, ended) = match data.iter().position(|b| *b == b'\n') {
                Some(i) => (&data[..i], Some(i + 1)),
                None => (data, None),
            };
            let room = self.max - self.pending.len();
            let keep = segment.len().min(room);
            self.pending.extend_from_slice(&segment[..keep]);
            self.dropped += segment.len() - keep;
            match ended {
                Some(next) => {
                    out(self.take());
                    data = &data[next..];
                }
                None => data = &[],
            }
        }
    }

    /// The last line when the stream ended without a newline.
    pub fn finish(&mut self, mut out: impl FnMut(String)) {
        if !self.pending.is_empty() || self.dropped > 0 {
            out(self.take());
        }
    }

    fn take(&mut self) -> String {
        let mut bytes = std::mem::take(&mut self.pending);
        if bytes.last() == Some(&b'\r') && self.dropped == 0 {
            bytes.pop();
        }
        let mut line = String::from_utf8_lossy(&bytes).into_owned();
        if self.dropped > 0 {
            line.push_str(&format!(
                " … [line cut at {} KiB: {} more bytes dropped]",
                self.max / 1024,
                self.dropped
            ));
        }
        self.dropped = 0;
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        for c in chunks {
            lines.push(c, |l| out.push(l));
        }
        lines.finish(|l| out.push(l));
        out
    }

    #[test]
    fn splits_across_chunks() {
        assert_eq!(
            all(100, &[b"ab", b"c\nde", b"f\r\n\ng"]),
            ["abc", "def", "", "g"]
        );
        assert!(all(100, &[b""]).is_empty());
        assert_eq!(all(100, &[b"x\n"]), ["x"]);
    }

    #[test]
    fn long_lines_are_cut_with_a_marker_and_never_held() {
        let mut lines = Lines::new(4096);
        let mut out = Vec::new();
        // 10 MiB without a newline, in 64 KiB chunks: memory stays at the cap.
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..160 {
            lines.push(&chunk, |l| out.push(l));
            assert!(lines.pending.len() <= 4096);
        }
        lines.push(b"tail\nnext\n", |l| out.push(l));
        assert_eq!(out.len(), 2);
        assert!(out[0].starts_with(&"a".repeat(4096)), "{}", &out[0][..10]);
        assert!(
            out[0].ends_with(&format!(
                " … [line cut at 4 KiB: {} more bytes dropped]",
                160 * 64 * 1024 + 4 - 4096
            )),
            "{}",
            &out[0][4096..]
        );
        assert_eq!(out[1], "next");
        assert_eq!(MAX_LINE, 65536);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(all(100, &[b"a\xffb\n"]), ["a\u{fffd}b"]);
    }
}
