//! Splitting a byte stream into lines, with a bound on line length.
//!
//! Modelled on tokio-util's `LinesCodec`, but it hands out `Bytes` slices of the read buffer
//! (no copy, no UTF-8 check) and treats an over-long line as data, not as an error: the first
//! `max_line_bytes` are returned flagged as truncated, and the rest of that line is skipped up to
//! the next newline. Without that limit a peer that never sends a newline would make the buffer
//! grow without bound.

use bytes::{Bytes, BytesMut};

/// One line out of the framer, without its `\n` (and without a `\r` before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Line(Bytes),
    /// The first `max_line_bytes` of a longer line; the rest is being skipped.
    Truncated(Bytes),
}

#[derive(Debug, Clone)]
pub struct LineFramer {
    max_line_bytes: usize,
    /// Bytes of the buffer's head already searched for a newline, so that a long partial line
    /// is not rescanned on every read.
    next_index: usize,
    /// Inside the tail of an over-long line whose head was already returned.
    discarding: bool,
}

impl LineFramer {
    pub fn new(max_line_bytes: usize) -> Self {
        LineFramer {
            max_line_bytes: max_line_bytes.max(1),
            next_index: 0,
            discarding: false,
        }
    }

    /// The next complete line in `buffer`, consuming it; `None` when more input is needed.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        loop {
            // While discarding, the newline may be anywhere; otherwise only within the limit.
            let search_end = if self.discarding {
                buffer.len()
            } else {
                buffer.len().min(self.max_line_bytes.saturating_add(1))
            };
            let newline =
                memchr::memchr(b'\n', &buffer[self.next_index.min(search_end)..search_end])
                    .map(|offset| self.next_index + offset);
            match (self.discarding, newline) {
                (true, Some(offset)) => {
                    let _ = buffer.split_to(offset + 1);
                    self.discarding = false;
                    self.next_index = 0;
                }
                (true, None) => {
                    // Still inside the over-long line: drop what we have and wait for more.
                    buffer.clear();
                    self.next_index = 0;
                    return None;
                }
                (false, Some(offset)) => {
                    let line = buffer.split_to(offset + 1).freeze();
                    self.next_index = 0;
                    return Some(Frame::Line(without_terminator(line)));
                }
                (false, None) if buffer.len() > self.max_line_bytes => {
                    let head = buffer.split_to(self.max_line_bytes).freeze();
                    self.discarding = true;
                    self.next_index = 0;
                    return Some(Frame::Truncated(head));
                }
                (false, None) => {
                    self.next_index = buffer.len();
                    return None;
                }
            }
        }
    }

    /// At end of input: whatever is left is the last line (a line without a final newline).
    pub fn decode_eof(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        if let Some(frame) = self.decode(buffer) {
            return Some(frame);
        }
        self.next_index = 0;
        if self.discarding {
            self.discarding = false;
            buffer.clear();
            return None;
        }
        if buffer.is_empty() {
            return None;
        }
        Some(Frame::Line(without_terminator(buffer.split().freeze())))
    }
}

/// RFC 6587 octet counting: `MSG-LEN SP MSG`, as `logger --octet-count` and rsyslog send it.
///
/// A message longer than `max_message_bytes` is returned cut to that length (flagged as
/// truncated) and the rest of it is skipped by count, so the stream stays in step and the
/// connection goes on. A length that is not a number means the peer does not speak octet
/// counting: `decode` reports `FrameError::NotOctetCounted` so the caller can fall back to lines.
#[derive(Debug, Clone)]
pub struct OctetCountingFramer {
    max_message_bytes: usize,
    /// Bytes of an over-long message still to skip.
    skipping: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    NotOctetCounted,
}

/// Longest `MSG-LEN` accepted (digits): 9 digits is far beyond any sane message.
const MAX_LENGTH_DIGITS: usize = 9;

impl OctetCountingFramer {
    pub fn new(max_message_bytes: usize) -> Self {
        OctetCountingFramer {
            max_message_bytes: max_message_bytes.max(1),
            skipping: 0,
        }
    }

    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            if self.skipping > 0 {
                let skipped = self.skipping.min(buffer.len());
                let _ = buffer.split_to(skipped);
                self.skipping -= skipped;
                if self.skipping > 0 {
                    return Ok(None);
                }
            }
            // Tolerate the stray newlines some senders put between frames.
            let leading = buffer
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r'))
                .count();
            if leading > 0 {
                let _ = buffer.split_to(leading);
            }
            let digits = buffer.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == buffer.len() && digits <= MAX_LENGTH_DIGITS {
                return Ok(None);
            }
            if digits == 0 || digits > MAX_LENGTH_DIGITS || buffer[digits] != b' ' {
                return Err(FrameError::NotOctetCounted);
            }
            let length: usize = std::str::from_utf8(&buffer[..digits])
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or(FrameError::NotOctetCounted)?;
            let header = digits + 1;
            if length > self.max_message_bytes {
                if buffer.len() < header + self.max_message_bytes {
                    return Ok(None);
                }
                let _ = buffer.split_to(header);
                let head = buffer.split_to(self.max_message_bytes).freeze();
                self.skipping = length - self.max_message_bytes;
                return Ok(Some(Frame::Truncated(without_terminator(head))));
            }
            if buffer.len() < header + length {
                return Ok(None);
            }
            let _ = buffer.split_to(header);
            let message = buffer.split_to(length).freeze();
            if length == 0 {
                continue;
            }
            return Ok(Some(Frame::Line(without_terminator(message))));
        }
    }
}

/// The framing of one byte stream: LF lines, octet counting, or (for syslog over TCP) either,
/// decided by the first byte the peer sends: a digit starts an octet count, anything else a line.
#[derive(Debug, Clone)]
pub enum StreamFramer {
    Detect { max_frame_bytes: usize },
    Lines(LineFramer),
    Octets(OctetCountingFramer),
}

impl StreamFramer {
    pub fn lines(max_line_bytes: usize) -> Self {
        StreamFramer::Lines(LineFramer::new(max_line_bytes))
    }

    pub fn detect(max_frame_bytes: usize) -> Self {
        StreamFramer::Detect { max_frame_bytes }
    }

    pub fn decode(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        loop {
            match self {
                StreamFramer::Detect { max_frame_bytes } => {
                    let first = buffer.iter().find(|b| !matches!(b, b'\n' | b'\r'))?;
                    let max = *max_frame_bytes;
                    *self = if first.is_ascii_digit() {
                        StreamFramer::Octets(OctetCountingFramer::new(max))
                    } else {
                        StreamFramer::Lines(LineFramer::new(max))
                    };
                }
                StreamFramer::Lines(framer) => return framer.decode(buffer),
                StreamFramer::Octets(framer) => match framer.decode(buffer) {
                    Ok(frame) => return frame,
                    // Not octet counting after all: read the rest as lines.
                    Err(FrameError::NotOctetCounted) => {
                        *self = StreamFramer::lines(framer.max_message_bytes);
                    }
                },
            }
        }
    }

    /// At end of input: the last frame, even without its terminator (lines only; a partial
    /// octet-counted message is incomplete and dropped).
    pub fn decode_eof(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        if let Some(frame) = self.decode(buffer) {
            return Some(frame);
        }
        match self {
            StreamFramer::Lines(framer) => framer.decode_eof(buffer),
            StreamFramer::Detect { .. } | StreamFramer::Octets(_) => {
                buffer.clear();
                None
            }
        }
    }
}

/// The line without a trailing `\n` and `\r`.
pub fn without_terminator(mut line: Bytes) -> Bytes {
    if line.last() == Some(&b'\n') {
        line.truncate(line.len() - 1);
    }
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut LineFramer, buffer: &mut BytesMut) -> Vec<Frame> {
        std::iter::from_fn(|| framer.decode(buffer)).collect()
    }

    #[test]
    fn splits_lines_and_strips_crlf() {
        let mut framer = LineFramer::new(1024);
        let mut buffer = BytesMut::from(&b"one\r\ntwo\nthr"[..]);
        assert_eq!(
            frames(&mut framer, &mut buffer),
            vec![
                Frame::Line(Bytes::from_static(b"one")),
                Frame::Line(Bytes::from_static(b"two"))
            ]
        );
        buffer.extend_from_slice(b"ee\n");
        assert_eq!(
            framer.decode(&mut buffer),
            Some(Frame::Line(Bytes::from_static(b"three")))
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn cuts_an_overlong_line_and_resumes_after_it() {
        let mut framer = LineFramer::new(4);
        let mut buffer = BytesMut::from(&b"abcdefgh"[..]);
        assert_eq!(
            framer.decode(&mut buffer),
            Some(Frame::Truncated(Bytes::from_static(b"abcd")))
        );
        assert_eq!(framer.decode(&mut buffer), None);
        assert!(buffer.is_empty(), "the skipped tail is not kept");
        buffer.extend_from_slice(b"ijk\nok\n");
        assert_eq!(
            frames(&mut framer, &mut buffer),
            vec![Frame::Line(Bytes::from_static(b"ok"))]
        );
    }

    #[test]
    fn lines_after_an_overlong_line_in_the_same_buffer_are_kept() {
        let mut framer = LineFramer::new(4);
        let mut buffer = BytesMut::from(
            &b"abcdefghijklmnop
next
last
"[..],
        );
        assert_eq!(
            frames(&mut framer, &mut buffer),
            vec![
                Frame::Truncated(Bytes::from_static(b"abcd")),
                Frame::Line(Bytes::from_static(b"next")),
                Frame::Line(Bytes::from_static(b"last")),
            ]
        );
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_whole() {
        let mut framer = LineFramer::new(4);
        let mut buffer = BytesMut::from(&b"abcd\n"[..]);
        assert_eq!(
            framer.decode(&mut buffer),
            Some(Frame::Line(Bytes::from_static(b"abcd")))
        );
    }

    #[test]
    fn eof_returns_the_unterminated_last_line() {
        let mut framer = LineFramer::new(100);
        let mut buffer = BytesMut::from(&b"a\nlast"[..]);
        assert_eq!(
            framer.decode_eof(&mut buffer),
            Some(Frame::Line(Bytes::from_static(b"a")))
        );
        assert_eq!(
            framer.decode_eof(&mut buffer),
            Some(Frame::Line(Bytes::from_static(b"last")))
        );
        assert_eq!(framer.decode_eof(&mut buffer), None);
    }

    #[test]
    fn octet_counting_frames_cuts_and_stays_in_step() {
        let mut framer = OctetCountingFramer::new(8);
        let mut buffer = BytesMut::from(&b"5 hello14 <13>a long one\n3 en"[..]);
        assert_eq!(
            framer.decode(&mut buffer),
            Ok(Some(Frame::Line(Bytes::from_static(b"hello"))))
        );
        assert_eq!(
            framer.decode(&mut buffer),
            Ok(Some(Frame::Truncated(Bytes::from_static(b"<13>a lo"))))
        );
        assert_eq!(
            framer.decode(&mut buffer),
            Ok(None),
            "waits for the rest of `end`"
        );
        buffer.extend_from_slice(b"d");
        assert_eq!(
            framer.decode(&mut buffer),
            Ok(Some(Frame::Line(Bytes::from_static(b"end"))))
        );
        let mut not_counted = BytesMut::from(&b"<13>plain line\n"[..]);
        assert_eq!(
            framer.decode(&mut not_counted),
            Err(FrameError::NotOctetCounted)
        );
    }

    #[test]
    fn byte_by_byte_feeding_gives_the_same_lines() {
        let input = b"alpha\nbeta\r\n\ngamma-is-long\ndelta\n";
        let mut framer = LineFramer::new(8);
        let mut buffer = BytesMut::new();
        let mut out = Vec::new();
        for byte in input {
            buffer.extend_from_slice(&[*byte]);
            while let Some(frame) = framer.decode(&mut buffer) {
                out.push(frame);
            }
        }
        assert_eq!(
            out,
            vec![
                Frame::Line(Bytes::from_static(b"alpha")),
                Frame::Line(Bytes::from_static(b"beta")),
                Frame::Line(Bytes::from_static(b"")),
                Frame::Truncated(Bytes::from_static(b"gamma-is")),
                Frame::Line(Bytes::from_static(b"delta")),
            ]
        );
    }
}
