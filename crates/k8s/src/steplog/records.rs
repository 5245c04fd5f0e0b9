//! The pure part of a resumable log follow: a timestamped log (`timestamps=true`) cut into
//! records, each printed once across reconnects.
//!
//! Every record the API returns is `<RFC 3339 timestamp> <content>`, the content ending with
//! `\n` (or not, for the log's last bytes). A reconnect asks for `sinceTime=S`; kubelets (and
//! Docker) *filter* the log by `timestamp >= S`, in file order. What was printed is a prefix of
//! the file, so the replay starts with exactly the printed records whose timestamp is `>= S`:
//! skipping that many records of the new stream loses and doubles nothing, even when the
//! timestamps of stdout and stderr interleave slightly out of order. `S` is one second before
//! the newest printed timestamp (the API rounds to seconds), so a record written just before,
//! but stamped just after, a printed one is still in the replay.

use k8s_openapi::jiff::{SignedDuration, Timestamp, Unit};
use std::collections::VecDeque;

/// The container runtimes (Docker, containerd's CRI) split lines longer than this into
/// "partial" records, each with its own timestamp and without a newline.
pub const PARTIAL_RECORD: usize = 16 * 1024;

/// How far back a reconnect asks for (clock skew between stdout and stderr stamps).
const MARGIN: SignedDuration = SignedDuration::from_secs(1);

/// Cuts a timestamped log into records and prints each exactly once over reconnects.
#[derive(Debug, Default)]
pub struct Records {
    /// Bytes of the current connection not yet cut into a record.
    pending: Vec<u8>,
    /// Timestamps of printed records that a replay may include, in print order.
    recent: VecDeque<Timestamp>,
    /// The newest timestamp printed.
    newest: Option<Timestamp>,
    /// Records of the current connection still to skip (already printed).
    skip: usize,
    /// Records printed, in all.
    printed: u64,
    /// Lines that carried no timestamp (printed as they are; they cannot be resumed exactly).
    unstamped: u64,
}

impl Records {
    /// A follow that printed nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `sinceTime` of the next connection (None: from the start), and prepares to skip
    /// what that connection replays.
    pub fn reconnect(&mut self) -> Option<Timestamp> {
        self.pending.clear();
        let since = self.since();
        self.skip = match since {
            Some(s) => self.recent.iter().filter(|t| **t >= s).count(),
            None => self.printed as usize,
        };
        since
    }

    fn since(&self) -> Option<Timestamp> {
        let newest = self.newest?;
        let floor = newest.round(Unit::Second).ok()?;
        // round() may go up: step back to the whole second at or below `newest`.
        let floor = if floor > newest {
            floor.checked_sub(SignedDuration::from_secs(1)).ok()?
        } else {
            floor
        };
        floor.checked_sub(MARGIN).ok()
    }

    /// Records printed so far.
    pub fn printed(&self) -> u64 {
        self.printed
    }

    /// Lines without a timestamp seen so far.
    pub fn unstamped(&self) -> u64 {
        self.unstamped
    }

    /// Feeds bytes of the current connection; appends what is to be printed to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = self.record_end(start) {
            let record = self.pending[start..end].to_vec();
            start = end;
            self.take(&record, out);
        }
        self.pending.drain(..start);
    }

    /// The stream ended cleanly with the container: the log's last bytes, if they had no
    /// newline, are a record too.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.pending.is_empty() {
            let record = std::mem::take(&mut self.pending);
            self.take(&record, out);
        }
    }

    /// Where the record starting at `start` of `pending` ends, if it is complete: after its
    /// newline, or at a partial record's size when the next record's timestamp follows.
    fn record_end(&self, start: usize) -> Option<usize> {
        let rest = &self.pending[start..];
        let content = match split_stamp(rest) {
            Some((_, content)) => rest.len() - content.len(),
            None => 0,
        };
        if let Some(nl) = rest[content..].iter().position(|b| *b == b'\n') {
            let len = content + nl + 1;
            // A partial record glued to the next one: cut it where the runtime did.
            if content > 0
                && nl > PARTIAL_RECORD
                && next_is_stamp(&rest[content + PARTIAL_RECORD..])
            {
                return Some(start + content + PARTIAL_RECORD);
            }
            return Some(start + len);
        }
        if content > 0
            && rest.len() - content > PARTIAL_RECORD
            && next_is_stamp(&rest[content + PARTIAL_RECORD..])
        {
            return Some(start + content + PARTIAL_RECORD);
        }
        None
    }

    fn take(&mut self, record: &[u8], out: &mut Vec<u8>) {
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        match split_stamp(record) {
            Some((ts, content)) => {
                out.extend_from_slice(content);
                self.recent.push_back(ts);
                if self.newest.is_none_or(|n| ts > n) {
                    self.newest = Some(ts);
                }
                // Forget what no replay can include any more.
                if let Some(since) = self.since() {
                    while self.recent.front().is_some_and(|t| *t < since) {
                        self.recent.pop_front();
                    }
                }
            }
            None => {
                out.extend_from_slice(record);
                self.unstamped += 1;
            }
        }
        self.printed += 1;
    }
}

/// `<timestamp> <content>` → (timestamp, content).
fn split_stamp(record: &[u8]) -> Option<(Timestamp, &[u8])> {
    // RFC 3339 with nanoseconds and an offset is at most ~36 bytes.
    let sp = record.iter().take(40).position(|b| *b == b' ')?;
    let ts = std::str::from_utf8(&record[..sp]).ok()?.parse().ok()?;
    Some((ts, &record[sp + 1..]))
}

fn next_is_stamp(rest: &[u8]) -> bool {
    split_stamp(rest).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[(&str, &str)]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|(t, l)| format!("{t} {l}\n").into_bytes())
            .collect()
    }

    fn lines(n: usize) -> Vec<(String, String)> {
        // three records per 0.4 s, so several share a second
        (0..n)
            .map(|i| {
                let ms = i as u64 * 133;
                (
                    format!(
                        "2026-01-01T00:00:{:02}.{:09}Z",
                        ms / 1000,
                        (ms % 1000) * 1_000_000
                    ),
                    format!("line {i}"),
                )
            })
            .collect()
    }

    /// The server's side: every record with a timestamp >= since, in file order.
    fn replay(all: &[(String, String)], since: Option<Timestamp>) -> Vec<u8> {
        let kept: Vec<(&str, &str)> = all
            .iter()
            .filter(|(t, _)| since.is_none_or(|s| t.parse::<Timestamp>().unwrap() >= s))
            .map(|(t, l)| (t.as_str(), l.as_str()))
            .collect();
        log(&kept)
    }

    #[test]
    fn cut_anywhere_every_line_once_in_order() {
        let all = lines(120);
        let expected: String = all.iter().map(|(_, l)| format!("{l}\n")).collect();
        // a replay spans up to two seconds (~15 records of ~45 bytes): cuts longer than that
        // always make progress
        for cut_every in [800usize, 1000, 1777, 4000] {
            let mut r = Records::new();
            let mut out = Vec::new();
            let mut rounds = 0;
            loop {
                rounds += 1;
                assert!(rounds < 1000, "no progress");
                let since = r.reconnect();
                let stream = replay(&all, since);
                // the connection breaks after `cut_every` bytes (or ends)
                let (part, ended) = if stream.len() > cut_every {
                    (&stream[..cut_every], false)
                } else {
                    (&stream[..], true)
                };
                for piece in part.chunks(5) {
                    r.feed(piece, &mut out);
                }
                if ended {
                    r.finish(&mut out);
                    break;
                }
            }
            assert!(rounds > 1, "cut {cut_every}: the stream was never cut");
            assert_eq!(String::from_utf8(out).unwrap(), expected, "cut {cut_every}");
        }
    }

    #[test]
    fn out_of_order_stamps_are_neither_lost_nor_doubled() {
        let all: Vec<(String, String)> = [
            ("2026-01-01T00:00:01.000000100Z", "a"),
            (
                "2026-01-01T00:00:00.999999900Z",
                "b (stderr, stamped earlier)",
            ),
            ("2026-01-01T00:00:01.5Z", "c"),
            ("2026-01-01T00:00:02.1Z", "d"),
        ]
        .iter()
        .map(|(t, l)| (t.to_string(), l.to_string()))
        .collect();
        let mut r = Records::new();
        let mut out = Vec::new();
        assert_eq!(r.reconnect(), None);
        let first = replay(&all, None);
        // cut after "a": b, c, d are to come
        let a_len = first.iter().position(|b| *b == b'\n').unwrap() + 1;
        r.feed(&first[..a_len + 3], &mut out);
        let since = r.reconnect();
        assert_eq!(since, Some("2026-01-01T00:00:00Z".parse().unwrap()));
        r.feed(&replay(&all, since), &mut out);
        r.finish(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\nb (stderr, stamped earlier)\nc\nd\n"
        );
    }

    #[test]
    fn last_line_without_newline_and_unstamped_lines() {
        let mut r = Records::new();
        let mut out = Vec::new();
        r.feed(b"2026-01-01T00:00:00.5Z done", &mut out);
        assert!(out.is_empty());
        r.finish(&mut out);
        assert_eq!(out, b"done");
        let mut r = Records::new();
        let mut out = Vec::new();
        r.feed(b"no stamp here\n", &mut out);
        assert_eq!(
            (out.as_slice(), r.unstamped()),
            (&b"no stamp here\n"[..], 1)
        );
    }

    #[test]
    fn partial_records_of_a_long_line_are_cut_where_the_runtime_cut_them() {
        let long = "x".repeat(PARTIAL_RECORD + 10);
        let stream = format!(
            "2026-01-01T00:00:00.1Z {}2026-01-01T00:00:00.2Z {}\n2026-01-01T00:00:00.3Z end\n",
            &long[..PARTIAL_RECORD],
            &long[PARTIAL_RECORD..]
        );
        let mut r = Records::new();
        let mut out = Vec::new();
        r.feed(stream.as_bytes(), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), format!("{long}\nend\n"));
        assert_eq!(r.printed(), 3);
    }
}
