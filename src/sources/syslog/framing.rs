//! Syslog framing over stream transports (RFC 6587, and RFC 5425 for TLS).
//!
//! The framing is chosen once per connection from its first byte (leading
//! CR/LF ignored): a digit means octet counting (`LEN SP MSG`), anything else
//! means non-transparent framing (one message per LF-terminated line).
//!
//! Memory is bounded by `max` (the largest message) whatever the peer sends.
//! A message over `max` is reported as [`Frame::Oversize`] with its first
//! bytes and then skipped: with octet counting the declared length is skipped
//! and decoding resumes at the next frame; with LF framing the rest of the
//! line is discarded and decoding resumes after the next LF. A malformed
//! octet count leaves no way to find the next frame, so it is reported as
//! [`Frame::Invalid`] and the decoder ignores the rest of the stream (the
//! listener then closes the connection).

use crate::event::limits::MAX_REJECTED_RAW_BYTES;

/// Most digits accepted in an octet count (just under 1 GB).
const MAX_COUNT_DIGITS: usize = 9;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    OctetCounting,
    Lf,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete message (without its framing).
    Message(Vec<u8>),
    /// A message larger than the limit, skipped. `declared` is its length
    /// when octet-counted; an LF-framed line is only known to be too long.
    Oversize {
        head: Vec<u8>,
        declared: Option<usize>,
    },
    /// The framing itself is broken; nothing more can be decoded.
    Invalid { head: Vec<u8>, reason: String },
}

#[derive(Debug)]
enum State {
    Undecided,
    Lf { discarding: bool },
    Count { value: usize, digits: usize },
    Body { remaining: usize },
    Skip { remaining: usize, declared: usize },
    Broken,
}

/// Incremental decoder for one connection.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// The message being assembled (never longer than `max`), or the head
    /// of an oversize frame being skipped.
    buf: Vec<u8>,
    max: usize,
}

impl Decoder {
    pub fn new(max: usize) -> Self {
        Decoder {
            state: State::Undecided,
            buf: Vec::new(),
            max,
        }
    }

    pub fn framing(&self) -> Option<Framing> {
        match self.state {
            State::Undecided | State::Broken => None,
            State::Lf { .. } => Some(Framing::Lf),
            State::Count { .. } | State::Body { .. } | State::Skip { .. } => {
                Some(Framing::OctetCounting)
            }
        }
    }

    /// Whether the stream can no longer be decoded.
    pub fn is_broken(&self) -> bool {
        matches!(self.state, State::Broken)
    }

    /// Decodes `data`, appending every frame it completes to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Frame>) {
        while !data.is_empty() {
            match &mut self.state {
                State::Broken => return,
                State::Undecided => match data[0] {
                    b'\n' | b'\r' => data = &data[1..],
                    b'0'..=b'9' => {
                        self.state = State::Count {
                            value: 0,
                            digits: 0,
                        }
                    }
                    _ => self.state = State::Lf { discarding: false },
                },
                State::Lf { discarding } => {
                    let (line, rest, complete) = match data.iter().position(|&b| b == b'\n') {
                        Some(i) => (&data[..i], &data[i + 1..], true),
                        None => (data, &data[data.len()..], false),
                    };
                    data = rest;
                    if *discarding {
                        *discarding = !complete;
                        continue;
                    }
                    if self.buf.len() + line.len() > self.max {
                        let mut head = std::mem::take(&mut self.buf);
                        let room = MAX_REJECTED_RAW_BYTES.saturating_sub(head.len());
                        head.truncate(MAX_REJECTED_RAW_BYTES);
                        head.extend_from_slice(&line[..line.len().min(room)]);
                        out.push(Frame::Oversize {
                            head,
                            declared: None,
                        });
                        *discarding = !complete;
                        continue;
                    }
                    self.buf.extend_from_slice(line);
                    if complete {
                        push_line(&mut self.buf, out);
                    }
                }
                State::Count { value, digits } => {
                    let b = data[0];
                    match b {
                        b'0'..=b'9' if *digits == 0 && b == b'0' => {
                            return self.broken("octet count starts with 0", data, out);
                        }
                        b'0'..=b'9' if *digits == MAX_COUNT_DIGITS => {
                            return self.broken("octet count is longer than 9 digits", data, out);
                        }
                        b'0'..=b'9' => {
                            *value = *value * 10 + usize::from(b - b'0');
                            *digits += 1;
                        }
                        b' ' if *digits > 0 => {
                            let len = *value;
                            self.state = if len > self.max {
                                State::Skip {
                                    remaining: len,
                                    declared: len,
                                }
                            } else {
                                State::Body { remaining: len }
                            };
                            self.buf.clear();
                        }
                        // Some senders end octet-counted frames with LF too.
                        b'\n' | b'\r' if *digits == 0 => {}
                        _ => {
                            let reason = format!(
                                "octet-counted framing: expected a length, found byte 0x{b:02x}"
                            );
                            return self.broken(&reason, data, out);
                        }
                    }
                    data = &data[1..];
                }
                State::Body { remaining } => {
                    let n = (*remaining).min(data.len());
                    self.buf.extend_from_slice(&data[..n]);
                    *remaining -= n;
                    data = &data[n..];
                    if *remaining == 0 {
                        out.push(Frame::Message(std::mem::take(&mut self.buf)));
                        self.state = State::Count {
                            value: 0,
                            digits: 0,
                        };
                    }
                }
                State::Skip {
                    remaining,
                    declared,
                } => {
                    let n = (*remaining).min(data.len());
                    let room = MAX_REJECTED_RAW_BYTES.saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&data[..n.min(room)]);
                    *remaining -= n;
                    data = &data[n..];
                    if *remaining == 0 {
                        out.push(Frame::Oversize {
                            head: std::mem::take(&mut self.buf),
                            declared: Some(*declared),
                        });
                        self.state = State::Count {
                            value: 0,
                            digits: 0,
                        };
                    }
                }
            }
        }
    }

    /// End of the stream: a last line without LF is a message; an
    /// octet-counted frame cut short is reported as invalid.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        match std::mem::replace(&mut self.state, State::Broken) {
            State::Lf { discarding: false } => push_line(&mut self.buf, out),
            State::Count { digits, .. } if digits > 0 => out.push(Frame::Invalid {
                head: Vec::new(),
                reason: "stream ended inside an octet count".into(),
            }),
            State::Body { remaining } => {
                let mut head = std::mem::take(&mut self.buf);
                head.truncate(MAX_REJECTED_RAW_BYTES);
                out.push(Frame::Invalid {
                    head,
                    reason: format!("stream ended {remaining} bytes before the end of a frame"),
                });
            }
            State::Skip { declared, .. } => out.push(Frame::Oversize {
                head: std::mem::take(&mut self.buf),
                declared: Some(declared),
            }),
            _ => {}
        }
        self.buf = Vec::new();
    }

    fn broken(&mut self, reason: &str, data: &[u8], out: &mut Vec<Frame>) {
        out.push(Frame::Invalid {
            head: data[..data.len().min(64)].to_vec(),
            reason: reason.to_owned(),
        });
        self.state = State::Broken;
        self.buf = Vec::new();
    }
}

/// Emits the assembled line (CR of a CRLF removed) unless it is blank.
fn push_line(buf: &mut Vec<u8>, out: &mut Vec<Frame>) {
    let mut line = std::mem::take(buf);
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if !line.iter().all(u8::is_ascii_whitespace) {
        out.push(Frame::Message(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(max: usize, chunks: &[&[u8]]) -> (Vec<Frame>, Decoder) {
        let mut d = Decoder::new(max);
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out);
        }
        (out, d)
    }

    fn msg(s: &str) -> Frame {
        Frame::Message(s.as_bytes().to_vec())
    }

    #[test]
    fn lf_framing_splits_lines_across_reads_and_skips_blank_lines() {
        let (out, d) = decode(100, &[b"\r\n<1>a\r\n<2>b", b"c\n\n  \n<3>", b"d"]);
        assert_eq!(d.framing(), Some(Framing::Lf));
        assert_eq!(out, vec![msg("<1>a"), msg("<2>bc")]);
        let mut d = d;
        let mut out = Vec::new();
        d.finish(&mut out);
        assert_eq!(out, vec![msg("<3>d")]);
    }

    #[test]
    fn octet_counting_with_the_count_and_body_split_anywhere() {
        let stream = b"5 <1>ab12 <2>abcdefghi\n3 <3>";
        for split in 0..stream.len() {
            for split2 in split..stream.len() {
                let (out, d) = decode(
                    100,
                    &[&stream[..split], &stream[split..split2], &stream[split2..]],
                );
                assert_eq!(d.framing(), Some(Framing::OctetCounting));
                assert_eq!(
                    out,
                    vec![msg("<1>ab"), msg("<2>abcdefghi"), msg("<3>")],
                    "split at {split}/{split2}"
                );
            }
        }
    }

    #[test]
    fn octet_counted_oversize_frames_are_skipped_and_decoding_resumes() {
        let mut stream = b"20 ".to_vec();
        stream.extend_from_slice(&[b'x'; 20]);
        stream.extend_from_slice(b"4 <1>a");
        let (out, d) = decode(10, &[&stream[..7], &stream[7..]]);
        assert_eq!(
            out,
            vec![
                Frame::Oversize {
                    head: vec![b'x'; 20],
                    declared: Some(20)
                },
                msg("<1>a")
            ]
        );
        assert!(!d.is_broken());
    }

    #[test]
    fn lf_oversize_lines_are_discarded_up_to_the_next_newline() {
        let (out, d) = decode(5, &[b"<1>ok\n<1>too", b" long line", b" still\n<2>b\n"]);
        assert_eq!(
            out,
            vec![
                msg("<1>ok"),
                Frame::Oversize {
                    head: b"<1>too".to_vec(),
                    declared: None
                },
                msg("<2>b")
            ]
        );
        assert!(!d.is_broken());
    }

    #[test]
    fn bad_octet_counts_break_the_stream() {
        for (stream, why) in [
            (&b"12x <1>a"[..], "expected a length"),
            (b"05 <1>a", "starts with 0"),
            (b"1234567890 <1>a", "longer than 9 digits"),
            (b"3 <1>3<1>", "expected a length"),
        ] {
            let (out, d) = decode(100, &[stream]);
            assert!(d.is_broken(), "{stream:?}");
            match out.last() {
                Some(Frame::Invalid { reason, .. }) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{stream:?}: {other:?}"),
            }
            // Nothing more is decoded once broken.
            let mut d = d;
            let mut more = Vec::new();
            d.feed(b"3 <1>", &mut more);
            assert!(more.is_empty());
        }
    }

    #[test]
    fn truncated_frames_at_the_end_of_the_stream_are_reported() {
        let (_, mut d) = decode(100, &[b"10 <1>ab"]);
        let mut out = Vec::new();
        d.finish(&mut out);
        assert!(
            matches!(&out[..], [Frame::Invalid { head, reason }] if head == b"<1>ab" && reason.contains("5 bytes")),
            "{out:?}"
        );
        let (_, mut d) = decode(100, &[b"1"]);
        let mut out = Vec::new();
        d.finish(&mut out);
        assert!(matches!(&out[..], [Frame::Invalid { .. }]));
        let (_, mut d) = decode(100, &[b"\n\n"]);
        let mut out = Vec::new();
        d.finish(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn memory_stays_bounded_whatever_the_peer_sends() {
        let mut d = Decoder::new(1000);
        let mut out = Vec::new();
        for _ in 0..1000 {
            d.feed(&[b'a'; 4096], &mut out);
            assert!(d.buf.capacity() <= 8192, "{}", d.buf.capacity());
        }
        assert_eq!(out.len(), 1);
    }
}
