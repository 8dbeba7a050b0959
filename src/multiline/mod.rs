//! Joining lines that belong together (a stack trace, a wrapped message) into one entry.
//!
//! An explicit state machine per stream, as Vector's `line_agg`: a line that matches the
//! `start_pattern` begins an entry; lines that do not are continuations of the current one; the
//! entry ends at the next start line, after `timeout` without a new line, or at a size bound (so
//! one endless trace cannot hold memory without limit). Each pushed line carries the stream
//! offset of its end, and a finished entry reports the end offset of its last line: the file
//! source checkpoints only what has left the aggregator.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use regex::bytes::Regex;
use serde::{Deserialize, Deserializer};

use crate::parse::Stream;
use crate::settings::ConfigDuration;
use crate::time::Timestamp;

pub mod auto;
pub mod entries;
pub mod prefix;

use self::auto::{Decision, Mode, PendingView};
use self::prefix::{LinePrefix, PrefixLearner};

/// Most lines one entry may join.
pub const MAX_LINES: usize = 1000;
/// Most bytes one entry may hold.
pub const MAX_BYTES: usize = 1024 * 1024;

/// The `multiline` key of a source.
#[derive(Debug, Clone, Default)]
pub enum MultilineConfig {
    /// Every line is its own entry.
    #[default]
    None,
    /// Stack traces of Python, Java/Kotlin/Scala, Go, Rust, Node.js, Ruby and .NET become one
    /// entry each; other lines stay as they are.
    Auto { timeout: Duration },
    /// Lines join onto the last line that matched `start_pattern`.
    Pattern {
        start_pattern: Regex,
        timeout: Duration,
    },
}

impl MultilineConfig {
    /// `auto` with its default timeout.
    pub fn auto() -> Self {
        MultilineConfig::Auto {
            timeout: default_timeout().0,
        }
    }
}

impl<'de> Deserialize<'de> for MultilineConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Pattern {
            start_pattern: String,
            #[serde(default = "default_timeout")]
            timeout: ConfigDuration,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Pattern(Pattern),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Name(name) if name == "none" => Ok(MultilineConfig::None),
            Raw::Name(name) if name == "auto" => Ok(MultilineConfig::auto()),
            Raw::Name(other) => Err(serde::de::Error::custom(format!(
                "unknown multiline mode `{other}`, expected \"auto\", \"none\" or {{ start_pattern = \"…\", timeout = \"1s\" }}"
            ))),
            Raw::Pattern(pattern) => {
                let start_pattern = Regex::new(&pattern.start_pattern).map_err(|error| {
                    serde::de::Error::custom(format!("invalid start_pattern: {error}"))
                })?;
                Ok(MultilineConfig::Pattern {
                    start_pattern,
                    timeout: pattern.timeout.0,
                })
            }
        }
    }
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}

/// A finished entry: its first line, its whole text, and where it ends in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub first_line: Bytes,
    /// Every line joined with `\n`, once there are several ([`text`](Self::text) is the
    /// entry's text either way): a single line is not cloned, whose count other threads share.
    joined: Option<Bytes>,
    pub lines: usize,
    pub end_offset: u64,
    /// The time its first line carried in a container runtime's record (CRI), if any.
    pub event_time: Option<Timestamp>,
    /// The container stream it came from (CRI), if any.
    pub stream: Option<Stream>,
    /// The trace as its parser reads it, where that differs from `text`: without the prefix
    /// of its first line (`…ERROR Traceback (most recent call last):`) and of the lines that
    /// repeat it. Boxed: rare, and a `Joined` is moved for every line.
    read: Option<Box<Bytes>>,
    /// Frames that arrived with no trace to join (none pending, or its header was not an
    /// exception): passed on as ordinary lines, counted by the source.
    pub fragment: bool,
}

impl Joined {
    fn single(line: Bytes, end_offset: u64, event_time: Option<Timestamp>) -> Self {
        Joined {
            first_line: line,
            joined: None,
            lines: 1,
            end_offset,
            event_time,
            stream: None,
            read: None,
            fragment: false,
        }
    }

    /// Every line joined with `\n`; the first line itself for a single line.
    pub fn text(&self) -> &Bytes {
        self.joined.as_ref().unwrap_or(&self.first_line)
    }

    /// The trace as its parser reads it: without the prefixes of its lines.
    pub fn trace_text(&self) -> Bytes {
        self.read.as_deref().unwrap_or_else(|| self.text()).clone()
    }
}

struct Pending {
    first_line: Bytes,
    /// The joined text once a second line arrives; the single line stays zero-copy until then.
    joined: Option<BytesMut>,
    /// The text as the trace parser reads it, once a line came without its prefix.
    read: Option<Box<BytesMut>>,
    lines: usize,
    end_offset: u64,
    last_line_at: Instant,
    mode: Mode,
    event_time: Option<Timestamp>,
    message_start: usize,
    fragment: bool,
    /// The prefix the trace's lines carry (its first line's, or the first continuation's that
    /// had one), and whether its continuation lines repeat it: once one is seen bare, a
    /// prefixed line is a new record, not part of the trace.
    prefix: Option<Box<LinePrefix>>,
    repeats: Option<bool>,
}

impl Pending {
    fn new(
        line: Bytes,
        end_offset: u64,
        now: Instant,
        mode: Mode,
        event_time: Option<Timestamp>,
    ) -> Self {
        Pending {
            first_line: line,
            joined: None,
            read: None,
            lines: 1,
            end_offset,
            last_line_at: now,
            mode,
            event_time,
            message_start: 0,
            fragment: false,
            prefix: None,
            repeats: None,
        }
    }

    #[inline]
    fn finish(self) -> Joined {
        if self.joined.is_none() {
            // The common case, one line: nothing to read as a trace.
            return Joined {
                first_line: self.first_line,
                joined: None,
                lines: 1,
                end_offset: self.end_offset,
                event_time: self.event_time,
                stream: None,
                read: None,
                fragment: self.fragment,
            };
        }
        self.finish_joined()
    }

    /// [`finish`](Self::finish) of several lines: the text, and the trace as its parser reads it.
    #[cold]
    #[inline(never)]
    fn finish_joined(self) -> Joined {
        let text = self.joined.map(BytesMut::freeze).unwrap_or_default();
        let message_start = if self.message_start < self.first_line.len() {
            self.message_start
        } else {
            0
        };
        Joined {
            read: match (self.read, message_start) {
                (Some(read), _) => Some(Box::new(read.freeze())),
                (None, 0) => None,
                (None, start) => Some(Box::new(text.slice(start..))),
            },
            joined: Some(text),
            first_line: self.first_line,
            lines: self.lines,
            end_offset: self.end_offset,
            event_time: self.event_time,
            stream: None,
            fragment: self.fragment,
        }
    }

    fn size(&self) -> usize {
        self.joined
            .as_ref()
            .map_or(self.first_line.len(), BytesMut::len)
    }

    fn has_room_for(&self, line: &[u8]) -> bool {
        self.lines < MAX_LINES && self.size() + line.len() < MAX_BYTES
    }

    fn append(&mut self, line: &[u8], end_offset: u64, now: Instant) {
        self.append_read_from(line, 0, end_offset, now);
    }

    /// Appends `line` as written; the parser reads it from `text_start` (after a prefix the
    /// line repeats).
    fn append_read_from(&mut self, line: &[u8], text_start: usize, end_offset: u64, now: Instant) {
        let joined = self
            .joined
            .get_or_insert_with(|| BytesMut::from(&self.first_line[..]));
        if text_start > 0 && self.read.is_none() {
            let start = if self.message_start < self.first_line.len() {
                self.message_start
            } else {
                0
            };
            self.read = Some(Box::new(BytesMut::from(&joined[start..])));
        }
        joined.extend_from_slice(b"\n");
        joined.extend_from_slice(line);
        if let Some(read) = self.read.as_mut() {
            read.extend_from_slice(b"\n");
            read.extend_from_slice(&line[text_start.min(line.len())..]);
        }
        self.lines += 1;
        self.end_offset = end_offset;
        self.last_line_at = now;
    }
}

/// A line held until the next shows where it belongs: as written, where its text starts after
/// a prefix, and where it ends in the stream.
struct Held {
    line: Bytes,
    text_start: usize,
    end_offset: u64,
}

/// The aggregator of one stream (one file, one connection).
pub struct LineAggregator {
    config: MultilineConfig,
    pending: Option<Pending>,
    /// `auto`: blank lines after a trace line, kept until the next line shows whether the trace
    /// goes on (Python's chained tracebacks, Go's goroutine dumps have blank lines inside).
    held_blanks: Vec<Held>,
    /// `auto`: an exception header waiting for its first frame.
    tentative: Option<Held>,
    /// The time of the line being pushed (for the entry it may start).
    event_time: Option<Timestamp>,
    /// `auto`: the prefix this stream puts before its lines.
    prefix: PrefixLearner,
    /// `auto`: the last line may have named an exception, so frames after a prefix may follow.
    frames_may_follow: bool,
}

impl LineAggregator {
    pub fn new(config: MultilineConfig) -> Self {
        LineAggregator {
            config,
            pending: None,
            held_blanks: Vec::new(),
            tentative: None,
            event_time: None,
            prefix: PrefixLearner::default(),
            frames_may_follow: false,
        }
    }

    /// Adds a line; entries it completes are appended to `out`.
    pub fn push(&mut self, line: Bytes, end_offset: u64, now: Instant, out: &mut Vec<Joined>) {
        self.push_timed(line, end_offset, now, None, out);
    }

    /// `push` for a line that carries its own time (a CRI record's): an entry keeps its first
    /// line's.
    pub fn push_timed(
        &mut self,
        line: Bytes,
        end_offset: u64,
        now: Instant,
        event_time: Option<Timestamp>,
        out: &mut Vec<Joined>,
    ) {
        self.event_time = event_time;
        match &self.config {
            MultilineConfig::None => {
                if !line.is_empty() {
                    out.push(Joined::single(line, end_offset, event_time));
                }
            }
            MultilineConfig::Pattern { start_pattern, .. } => {
                if line.is_empty() {
                    return;
                }
                let starts_entry = start_pattern.is_match(&line);
                match self.pending.as_mut() {
                    Some(pending) if !starts_entry && pending.has_room_for(&line) => {
                        pending.append(&line, end_offset, now);
                    }
                    _ => self.start(line, end_offset, now, Mode::Plain, out),
                }
            }
            MultilineConfig::Auto { .. } => self.push_auto(line, end_offset, now, out),
        }
    }

    fn start(
        &mut self,
        line: Bytes,
        end_offset: u64,
        now: Instant,
        mode: Mode,
        out: &mut Vec<Joined>,
    ) {
        self.held_blanks.clear();
        out.extend(self.pending.take().map(Pending::finish));
        self.pending = Some(Pending::new(line, end_offset, now, mode, self.event_time));
    }

    fn push_auto(&mut self, line: Bytes, end_offset: u64, now: Instant, out: &mut Vec<Joined>) {
        // A line of a trace that repeats the trace's prefix is read without it (and is blank
        // if nothing follows the prefix).
        let repeated = self.pending.as_ref().and_then(|pending| {
            let prefix = pending.prefix.as_ref()?;
            (pending.mode.is_trace() && pending.repeats != Some(false))
                .then(|| prefix.body(&line))
                .flatten()
        });
        let blank = line[repeated.unwrap_or(0)..]
            .iter()
            .all(u8::is_ascii_whitespace);
        if blank {
            if self.pending.as_ref().is_some_and(|p| p.mode.is_trace()) || self.tentative.is_some()
            {
                self.held_blanks.push(Held {
                    text_start: repeated.unwrap_or(0),
                    line,
                    end_offset,
                });
            }
            return;
        }
        if let Some(start) = repeated {
            let view = self.view();
            if let Decision::Continue(mode) = auto::classify(&line[start..], view) {
                self.continue_with(line, start, end_offset, now, mode, out);
                if let Some(pending) = self.pending.as_mut() {
                    pending.repeats = Some(true);
                }
                return;
            }
        }
        // The line's text after its prefix, read only if it may hold a trace's words: the
        // prefix is the costly part of a busy stream's ordinary line.
        let may_hold = auto::may_hold_trace_text(&line);
        let body = if may_hold
            || self.frames_may_follow
            || self.tentative.is_some()
            || self.pending.as_ref().is_some_and(|p| p.mode.is_trace())
        {
            self.prefix.body(&line)
        } else {
            0
        };
        self.frames_may_follow = may_hold;
        if let Some(header) = self.tentative.take() {
            let frame_start = if auto::is_at_frame(&line) {
                Some(0)
            } else {
                (body > 0 && auto::is_at_frame(&line[body..])).then_some(body)
            };
            if frame_start.is_some() {
                self.read_log_line_after_its_prefix();
            }
            if let Some(frame_start) = frame_start
                && let Some(pending) = self.pending.as_mut()
                && pending.has_room_for(&header.line)
            {
                pending.append_read_from(&header.line, header.text_start, header.end_offset, now);
                pending.append_read_from(&line, frame_start, end_offset, now);
                pending.mode = Mode::At;
                self.held_blanks.clear();
                return;
            }
            // No frame followed: the header is an ordinary line of its own.
            self.start(header.line, header.end_offset, now, Mode::Plain, out);
        }
        let view = self.view();
        // The line as it is; if it would start an ordinary entry, once more after its prefix
        // (the stream's learned one, or one known by shape): the trace a log call wrote after
        // its time and level.
        let (decision, text_start) = match auto::classify(&line, view) {
            Decision::Start(Mode::Plain) => {
                let via_body = (body > 0).then(|| (auto::classify(&line[body..], view), body));
                match via_body {
                    Some((decision, start)) if decision != Decision::Start(Mode::Plain) => {
                        (decision, start)
                    }
                    // Last, a header that ends the line after a prefix no rule knows.
                    _ => auto::header_at_end(&line)
                        .map(|start| (auto::classify(&line[start..], view), start))
                        .unwrap_or((Decision::Start(Mode::Plain), 0)),
                }
            }
            decision => (decision, 0),
        };
        let prefix = (text_start > 0)
            .then(|| LinePrefix::of(&line, text_start).map(Box::new))
            .flatten();
        match decision {
            Decision::Continue(mode) => {
                let repeats = text_start > 0;
                self.read_log_line_after_its_prefix();
                self.continue_with(line, text_start, end_offset, now, mode, out);
                if let Some(pending) = self.pending.as_mut() {
                    if prefix.is_some() {
                        pending.prefix = prefix;
                    }
                    pending.repeats.get_or_insert(repeats);
                }
            }
            Decision::Start(mode) => {
                if mode == Mode::Plain {
                    self.prefix.learn(&line);
                }
                self.start(line, end_offset, now, mode, out);
                if let Some(pending) = self.pending.as_mut() {
                    pending.message_start = text_start;
                    pending.prefix = prefix;
                }
            }
            Decision::Tentative => {
                self.held_blanks.clear();
                self.tentative = Some(Held {
                    line,
                    text_start,
                    end_offset,
                });
            }
            Decision::Fragment => {
                // Frames with no exception to belong to: ordinary lines, never a trace.
                self.start(line, end_offset, now, Mode::Plain, out);
                if let Some(pending) = self.pending.as_mut() {
                    pending.fragment = true;
                }
            }
        }
    }

    /// A log line that a trace is about to join (`logger.error("…", e)`, `logging.exception`)
    /// is read from its text on, after its prefix: that is the trace entry's message.
    fn read_log_line_after_its_prefix(&mut self) {
        if let Some(pending) = self.pending.as_mut()
            && pending.lines == 1
            && pending.mode == Mode::Plain
            && pending.message_start == 0
        {
            pending.message_start = self.prefix.body(&pending.first_line);
        }
    }

    fn view(&self) -> Option<PendingView<'_>> {
        self.pending.as_ref().map(|pending| PendingView {
            mode: pending.mode,
            lines: pending.lines,
            first_line: &pending.first_line,
        })
    }

    /// Appends a line that continues the pending entry (with the blank lines held before it),
    /// its text read from `text_start`; or starts a new one in `mode` when there is none or it
    /// is full.
    fn continue_with(
        &mut self,
        line: Bytes,
        text_start: usize,
        end_offset: u64,
        now: Instant,
        mode: Mode,
        out: &mut Vec<Joined>,
    ) {
        match self.pending.as_mut() {
            Some(pending) if pending.has_room_for(&line) => {
                for blank in self.held_blanks.drain(..) {
                    pending.append_read_from(&blank.line, blank.text_start, blank.end_offset, now);
                }
                pending.append_read_from(&line, text_start, end_offset, now);
                pending.mode = mode;
            }
            _ => self.start(line, end_offset, now, mode, out),
        }
    }

    fn timeout(&self) -> Option<Duration> {
        match &self.config {
            MultilineConfig::None => None,
            MultilineConfig::Auto { timeout } | MultilineConfig::Pattern { timeout, .. } => {
                Some(*timeout)
            }
        }
    }

    /// Entries held longer than the timeout without a new line.
    pub fn flush_idle(&mut self, now: Instant, out: &mut Vec<Joined>) {
        let Some(timeout) = self.timeout() else {
            return;
        };
        let idle = self
            .pending
            .as_ref()
            .is_some_and(|pending| now.saturating_duration_since(pending.last_line_at) >= timeout);
        if idle {
            self.flush(out);
        }
    }

    /// Everything held, whatever its age (end of stream, shutdown).
    pub fn flush(&mut self, out: &mut Vec<Joined>) {
        self.held_blanks.clear();
        out.extend(self.pending.take().map(Pending::finish));
        if let Some(header) = self.tentative.take() {
            out.push(Joined::single(header.line, header.end_offset, None));
        }
    }

    pub fn has_pending(&self) -> bool {
        self.pending.is_some() || self.tentative.is_some()
    }

    /// When the pending entry will time out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        let timeout = self.timeout()?;
        self.pending
            .as_ref()
            .map(|pending| pending.last_line_at + timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(start: &str) -> MultilineConfig {
        MultilineConfig::Pattern {
            start_pattern: Regex::new(start).unwrap(),
            timeout: Duration::from_millis(500),
        }
    }

    /// Feeds `text` line by line (offsets as a file source computes them) and flushes.
    fn aggregate(config: MultilineConfig, text: &str) -> Vec<Joined> {
        let mut aggregator = LineAggregator::new(config);
        let now = Instant::now();
        let mut out = Vec::new();
        let mut offset = 0u64;
        for line in text.split_inclusive('\n') {
            offset += line.len() as u64;
            let line = line.trim_end_matches('\n').trim_end_matches('\r');
            aggregator.push(
                Bytes::copy_from_slice(line.as_bytes()),
                offset,
                now,
                &mut out,
            );
        }
        aggregator.flush(&mut out);
        out
    }

    fn text(joined: &Joined) -> &str {
        std::str::from_utf8(joined.text()).unwrap()
    }

    #[test]
    fn joins_continuations_until_the_next_start_line() {
        let mut aggregator = LineAggregator::new(pattern(r"^\d{4}-"));
        let now = Instant::now();
        let lines = [
            "2026-01-01 ERROR boom",
            "java.lang.IllegalStateException: bad",
            "\tat shop.Cart.add(Cart.java:42)",
            "2026-01-01 INFO next",
        ];
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            aggregator.push(
                Bytes::from_static(line.as_bytes()),
                (i as u64 + 1) * 100,
                now,
                &mut out,
            );
        }
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].first_line,
            Bytes::from_static(b"2026-01-01 ERROR boom")
        );
        assert_eq!(
            text(&out[0]),
            "2026-01-01 ERROR boom\njava.lang.IllegalStateException: bad\n\tat shop.Cart.add(Cart.java:42)"
        );
        assert_eq!((out[0].lines, out[0].end_offset), (3, 300));
        let mut idle = Vec::new();
        aggregator.flush_idle(now, &mut idle);
        assert!(idle.is_empty());
        aggregator.flush_idle(now + Duration::from_secs(1), &mut idle);
        assert_eq!((idle[0].lines, idle[0].end_offset), (1, 400));
    }

    #[test]
    fn none_passes_every_line_through() {
        let out = aggregate(MultilineConfig::None, "x\n\ny\n");
        assert_eq!(out.iter().map(text).collect::<Vec<_>>(), vec!["x", "y"]);
        assert_eq!(out[1].end_offset, 5);
    }

    #[test]
    fn an_endless_trace_is_cut_at_the_line_bound() {
        let mut text_in = String::from("START\n");
        for _ in 0..(MAX_LINES * 2) {
            text_in.push_str("  more\n");
        }
        let out = aggregate(pattern("^START"), &text_in);
        assert!(out.len() > 1);
        assert!(out.iter().all(|entry| entry.lines <= MAX_LINES));
    }

    #[test]
    fn config_accepts_auto_none_and_a_pattern_and_rejects_the_rest() {
        #[derive(Deserialize)]
        struct Holder {
            multiline: MultilineConfig,
        }
        let parsed: Holder = toml::from_str("multiline = \"none\"").unwrap();
        assert!(matches!(parsed.multiline, MultilineConfig::None));
        let parsed: Holder = toml::from_str("multiline = \"auto\"").unwrap();
        assert!(matches!(parsed.multiline, MultilineConfig::Auto { .. }));
        let parsed: Holder =
            toml::from_str("multiline = { start_pattern = \"^\\\\S\", timeout = \"2s\" }").unwrap();
        assert!(
            matches!(parsed.multiline, MultilineConfig::Pattern { timeout, .. } if timeout == Duration::from_secs(2))
        );
        assert!(toml::from_str::<Holder>("multiline = \"sometimes\"").is_err());
        assert!(toml::from_str::<Holder>("multiline = { start_pattern = \"(\" }").is_err());
    }

    /// A corpus file: ordinary lines around the real output of a crashing program.
    fn corpus(name: &str) -> String {
        let path = format!(
            "{}/tests/corpus/traces/{name}.log",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    /// The lines of `file` from the one starting with `first` to the one starting with `last`.
    fn span(file: &str, first: &str, last: &str) -> String {
        let lines: Vec<&str> = file.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.starts_with(first))
            .expect("first line");
        let end = start
            + lines[start..]
                .iter()
                .rposition(|l| l.starts_with(last))
                .expect("last line");
        lines[start..=end].join("\n")
    }

    #[test]
    fn every_real_trace_in_the_corpus_is_one_entry_and_ordinary_lines_are_untouched() {
        // (corpus file, first line of the trace, first line of its last line, ordinary lines)
        let cases = [
            ("python_divide", "Traceback", "ZeroDivisionError", 3),
            ("python_chained", "Traceback", "NameError", 3),
            (
                "python_logged",
                "2026-11-27 15:39:21,612 ERROR",
                "ValueError",
                4,
            ),
            ("java_caused_by", "Exception in thread", "\t... 1 more", 3),
            (
                "node_uncaught",
                "/work/main/tests/corpus/traces/programs/crash.js:4",
                "Node.js v",
                3,
            ),
            ("rust_panic", "thread 'main'", "note: run with", 3),
            ("rust_backtrace", "thread 'main'", "note: Some details", 3),
            ("go_panic", "panic: ", "\t/tmp/", 3),
            ("ruby_nomethod", "programs/crash.rb:7", "\tfrom", 3),
        ];
        for (name, first, last, ordinary) in cases {
            let file = corpus(name);
            let out = aggregate(MultilineConfig::auto(), &file);
            let expected = span(&file, first, last);
            let traces: Vec<&Joined> = out.iter().filter(|j| j.lines > 1).collect();
            let trace = traces
                .iter()
                .find(|j| j.first_line.starts_with(first.as_bytes()))
                .unwrap_or_else(|| {
                    panic!(
                        "{name}: no trace starting with `{first}`: {:#?}",
                        out.iter().map(text).collect::<Vec<_>>()
                    )
                });
            assert_eq!(text(trace), expected, "{name}");
            assert_eq!(
                out.len() - traces.len(),
                ordinary,
                "{name}: ordinary lines stay single: {:#?}",
                out.iter().map(text).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn a_logged_node_error_keeps_its_frames() {
        let file = corpus("node_uncaught");
        let out = aggregate(MultilineConfig::auto(), &file);
        let logged = out
            .iter()
            .find(|j| j.first_line.ends_with(b"Error: unknown item pear"))
            .unwrap();
        assert_eq!(logged.lines, 10);
    }

    #[test]
    fn an_exception_header_without_frames_stays_an_ordinary_line() {
        let out = aggregate(
            MultilineConfig::auto(),
            "2026-01-01 ERROR [main] shop - failed\njava.io.IOException: broken pipe\n2026-01-01 INFO next\n",
        );
        assert_eq!(
            out.iter().map(text).collect::<Vec<_>>(),
            vec![
                "2026-01-01 ERROR [main] shop - failed",
                "java.io.IOException: broken pipe",
                "2026-01-01 INFO next"
            ]
        );
        let out = aggregate(
            MultilineConfig::auto(),
            "2026-01-01 ERROR [main] shop - failed\njava.io.IOException: broken pipe\n\tat shop.Io.write(Io.java:3)\nnext\n",
        );
        assert_eq!(out[0].lines, 3);
        assert_eq!(text(&out[1]), "next");
    }

    #[test]
    fn frames_with_no_exception_are_ordinary_lines_flagged_as_fragments() {
        let out = aggregate(
            MultilineConfig::auto(),
            "2026-01-01 INFO server started\n    at f (/app/x.js:1:2)\n    at g (/app/y.js:3:4)\n2026-01-01 ERROR reserve failed: Error: no pear\n    at h (/app/z.js:5:6)\n",
        );
        let shown: Vec<(&str, bool)> = out.iter().map(|j| (text(j), j.fragment)).collect();
        assert_eq!(
            shown,
            vec![
                ("2026-01-01 INFO server started", false),
                ("    at f (/app/x.js:1:2)", true),
                ("    at g (/app/y.js:3:4)", true),
                (
                    "2026-01-01 ERROR reserve failed: Error: no pear\n    at h (/app/z.js:5:6)",
                    false
                ),
            ]
        );
    }

    #[test]
    fn a_trace_after_a_prefix_is_one_entry_as_written_read_without_the_prefix_its_lines_repeat() {
        let out = aggregate(
            MultilineConfig::auto(),
            "[w1] 12:00:01 starting\n[w1] 12:00:02 Traceback (most recent call last):\n[w1] 12:00:02   File \"/app/x.py\", line 3, in f\n[w1] 12:00:02 \n[w1] 12:00:02 KeyError: 'k'\n[w1] 12:00:03 next\n",
        );
        let shown: Vec<&str> = out.iter().map(text).collect();
        assert_eq!(
            shown,
            vec![
                "[w1] 12:00:01 starting",
                "[w1] 12:00:02 Traceback (most recent call last):\n[w1] 12:00:02   File \"/app/x.py\", line 3, in f\n[w1] 12:00:02 \n[w1] 12:00:02 KeyError: 'k'",
                "[w1] 12:00:03 next",
            ]
        );
        assert_eq!(
            out[1].trace_text(),
            "Traceback (most recent call last):\n  File \"/app/x.py\", line 3, in f\n\nKeyError: 'k'"
        );
    }

    #[test]
    fn a_log_line_a_trace_joins_is_read_from_its_text() {
        let out = aggregate(
            MultilineConfig::auto(),
            "2026-12-07T21:45:01.123+01:00 ERROR 4242 --- [nio-8080-exec-1] o.a.c.c.C.[.[.[/].[dispatcherServlet]    : Servlet.service() threw exception\njava.lang.IllegalStateException: cart 77 is empty\n\tat com.example.shop.CartService.checkout(CartService.kt:42)\n",
        );
        assert_eq!(out.len(), 1);
        assert!(text(&out[0]).starts_with("2026-12-07T21:45:01.123+01:00 ERROR 4242"));
        assert!(
            out[0]
                .trace_text()
                .starts_with(b"Servlet.service() threw exception\njava.lang.IllegalStateException")
        );
    }

    #[test]
    fn a_dotnet_trace_is_one_entry() {
        let out = aggregate(
            MultilineConfig::auto(),
            "info: starting\nUnhandled exception. System.InvalidOperationException: Sequence contains no elements\n   at System.Linq.ThrowHelper.ThrowNoElementsException()\n   at Shop.Orders.First() in /app/Orders.cs:line 12\n   at Shop.Program.Main(String[] args) in /app/Program.cs:line 8\ninfo: done\n",
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].lines, 4);
    }
}
