//! `multiline = "auto"`: recognising stack traces line by line, for Python (chained traces and
//! `logging.exception`), Java/Kotlin/Scala (`Caused by:`, `Suppressed:`, `... N more`), Go
//! (`panic:` and goroutine dumps), Rust panics (with and without a backtrace), Node.js, Ruby and
//! .NET.
//!
//! `classify` is a pure function of the line and what is pending: it says whether the line
//! continues the pending entry, starts a new one, or is an exception header that needs the next
//! line to decide (a Java `pkg.SomeException: …` after a log line joins it only if `at` frames
//! follow). Cheap byte tests come first: most log lines start with a digit or a letter and are
//! settled after a few comparisons.

use std::sync::LazyLock;

use aho_corasick::packed::Searcher;

use crate::event::Level;
use crate::parse::level::detect_level;

/// What kind of trace an entry is, and where inside it the last line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An ordinary line (which `at` frames may still follow).
    Plain,
    /// Frames introduced by `at` (Java, Kotlin, Scala, Node.js, .NET).
    At,
    Python(PythonPhase),
    Go,
    Rust(RustPhase),
    /// Node.js's uncaught-exception header (`file.js:3`, the code, the caret); the count of
    /// lines seen bounds it.
    NodeHeader(u8),
    /// Mono's `Unhandled Exception:` line: the exception's line follows, then its frames.
    Announced,
    Ruby,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PythonPhase {
    /// Inside `File "…"` frames.
    Frames,
    /// After the exception line: a chained traceback may follow.
    Done,
    /// After "During handling of the above exception…": the next traceback follows.
    Between,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RustPhase {
    /// The line after the header holds the panic message.
    Message,
    After,
}

impl Mode {
    /// Whether blank lines may belong to the entry (they are held until the next line shows it).
    pub fn is_trace(self) -> bool {
        !matches!(self, Mode::Plain)
    }
}

/// What to do with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It belongs to the pending entry, which is now in this mode.
    Continue(Mode),
    /// It starts a new entry in this mode.
    Start(Mode),
    /// An exception header after a log line: it joins that line only if frames follow.
    Tentative,
    /// A frame with no trace to join (nothing pending, or a pending line that names no
    /// exception): an ordinary line, never the start of a trace.
    Fragment,
}

/// The pending entry, as `classify` sees it.
#[derive(Debug, Clone, Copy)]
pub struct PendingView<'a> {
    pub mode: Mode,
    pub lines: usize,
    pub first_line: &'a [u8],
}

/// Decides for one non-blank line.
pub fn classify(line: &[u8], pending: Option<PendingView<'_>>) -> Decision {
    if let Some(pending) = pending
        && let Some(mode) = continues(line, pending.mode)
    {
        return Decision::Continue(mode);
    }
    if is_at_frame(line) {
        // `at` frames join a trace, or a log line that names the exception they belong to
        // (`reserve failed: Error: unknown item`); without one they are a fragment.
        let joins = pending.is_some_and(|pending| {
            pending.mode != Mode::Plain || names_exception(pending.first_line)
        });
        return if joins {
            Decision::Continue(Mode::At)
        } else {
            Decision::Fragment
        };
    }
    let single_log_line = pending.filter(|p| p.mode == Mode::Plain && p.lines == 1);
    let logged_at = |minimum: Level| {
        single_log_line
            .and_then(|p| detect_level(p.first_line))
            .is_some_and(|level| level >= minimum)
    };
    // A trace right after an error log line is what that log call printed (`logging.exception`,
    // `logger.error("…", e)`, a message then a crash): it joins the line.
    let trace = |mode: Mode| {
        if logged_at(Level::Error) {
            Decision::Continue(mode)
        } else {
            Decision::Start(mode)
        }
    };
    if line.starts_with(b"Traceback (most recent call last):") {
        return trace(Mode::Python(PythonPhase::Frames));
    }
    if line.starts_with(b"panic: ") || line.starts_with(b"fatal error: ") {
        return trace(Mode::Go);
    }
    if contains_panicked(line) {
        return trace(Mode::Rust(RustPhase::Message));
    }
    if line.starts_with(b"Exception in thread ") || line.starts_with(b"Unhandled exception. ") {
        return trace(Mode::At);
    }
    if line.starts_with(b"Unhandled Exception:") {
        return trace(Mode::Announced);
    }
    if is_node_header(line) {
        return trace(Mode::NodeHeader(0));
    }
    if is_ruby_error(line) {
        return trace(Mode::Ruby);
    }
    if is_exception_header(line) && logged_at(Level::Warn) {
        return Decision::Tentative;
    }
    Decision::Start(Mode::Plain)
}

/// Whether `line` continues an entry in `mode`, and the mode after it.
fn continues(line: &[u8], mode: Mode) -> Option<Mode> {
    match mode {
        Mode::Plain => None,
        Mode::At => {
            let trimmed = trim_start(line);
            let more = trimmed.starts_with(b"Caused by: ")
                || trimmed.starts_with(b"Suppressed: ")
                || trimmed.starts_with(b"---> ")
                || trimmed.starts_with(b"--- End of ")
                || (trimmed.starts_with(b"... ") && line.len() != trimmed.len())
                || line.starts_with(b"Node.js v")
                // Node's error properties after a frame ending in ` {`: its `[cause]` with
                // frames of its own, `[errors]` of an AggregateError, the closing brace.
                || (line.len() != trimmed.len()
                    && (trimmed.starts_with(b"[cause]: ") || trimmed.starts_with(b"[errors]: ")))
                || matches!(line, b"}" | b"]" | b"  }" | b"  ]");
            more.then_some(Mode::At)
        }
        Mode::Python(PythonPhase::Frames) => {
            if line.starts_with(b"  File \"")
                || line.starts_with(b"    ")
                || is_indented_markers(line)
            {
                Some(Mode::Python(PythonPhase::Frames))
            } else if !line[0].is_ascii_whitespace() {
                // The exception line ends the frames.
                Some(Mode::Python(PythonPhase::Done))
            } else {
                None
            }
        }
        Mode::Python(PythonPhase::Done) => (line
            .starts_with(b"During handling of the above exception")
            || line.starts_with(b"The above exception was the direct cause"))
        .then_some(Mode::Python(PythonPhase::Between)),
        Mode::Python(PythonPhase::Between) => line
            .starts_with(b"Traceback (most recent call last):")
            .then_some(Mode::Python(PythonPhase::Frames)),
        Mode::Go => {
            let go = line.starts_with(b"goroutine ")
                || line.starts_with(b"\t")
                || line.starts_with(b"created by ")
                || line.starts_with(b"[signal ")
                || line.starts_with(b"exit status ")
                || line.starts_with(b"panic: ")
                || trim_start(line).starts_with(b"panic: ")
                || is_go_function(line);
            go.then_some(Mode::Go)
        }
        Mode::Rust(RustPhase::Message) => Some(Mode::Rust(RustPhase::After)),
        Mode::Rust(RustPhase::After) => {
            let trimmed = trim_start(line);
            let rust = line.starts_with(b"note: ")
                || line.starts_with(b"stack backtrace:")
                || (line.len() != trimmed.len()
                    && (trimmed.starts_with(b"at ") || starts_with_frame_number(trimmed)));
            rust.then_some(Mode::Rust(RustPhase::After))
        }
        Mode::NodeHeader(seen) if seen < 6 => Some(Mode::NodeHeader(seen + 1)),
        Mode::NodeHeader(_) => None,
        Mode::Announced => Some(Mode::At),
        Mode::Ruby => {
            let trimmed = trim_start(line);
            let indented = trimmed.len() + 2 <= line.len();
            // A second error line is the raised exception's cause, which Ruby prints after it.
            (indented
                || (line.len() != trimmed.len() && trimmed.starts_with(b"from "))
                || is_ruby_error(line))
            .then_some(Mode::Ruby)
        }
    }
}

/// `at …` indented: Java's `\tat pkg.C.m(C.java:1)`, Node's `    at f (file.js:1:2)`, .NET's
/// `   at N.C.M() in /x.cs:line 3`.
pub fn is_at_frame(line: &[u8]) -> bool {
    let trimmed = trim_start(line);
    trimmed.len() < line.len() && trimmed.starts_with(b"at ") && trimmed.len() > 3
}

/// `pkg.SomeException: message`, `SomeError: message`, `java.lang.OutOfMemoryError`.
pub fn is_exception_header(line: &[u8]) -> bool {
    let name_end = line
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'$' | b'_')))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let rest = &line[name_end..];
    // The cheap shape checks first: almost every line fails them.
    (rest.is_empty() || rest.starts_with(b": "))
        && name.first().is_some_and(u8::is_ascii_alphabetic)
        && [
            &b"Exception"[..],
            b"Error",
            b"Throwable",
            b"Failure",
            b"Fault",
        ]
        .iter()
        .any(|suffix| contains(name, suffix))
}

/// Whether `line` may hold, after some prefix, a trace's header or an exception's name: what
/// [`classify`] acts on when nothing is pending but a log line (the frames that may follow
/// such a line are the caller's to expect). Most lines hold none of these words, and one pass
/// of a literal search over the line settles them without reading their prefix.
pub fn may_hold_trace_text(line: &[u8]) -> bool {
    static WORDS: LazyLock<Option<Searcher>> = LazyLock::new(|| {
        Searcher::new([
            &b"Traceback ("[..],
            b"panic",
            b"fatal error: ",
            b"thread '",
            b"Exception",
            b"Error",
            b"Throwable",
            b"Failure",
            b"Fault",
            b"Unhandled",
            b".rb:",
        ])
    });
    // Text after a prefix starts within the prefix reader's window (a long exception name
    // may run past it): a long line is not searched to its end.
    let window = &line[..line.len().min(super::prefix::MAX_PREFIX_BYTES + 64)];
    // Node's `/app/x.js:3` header ends the line with a digit.
    line.last().is_some_and(u8::is_ascii_digit)
        || WORDS
            .as_ref()
            .is_none_or(|words| words.find(window).is_some())
}

/// Where a trace header starts that ends `line` after a prefix no rule recognised (a logger's
/// bare name, a word the stream has not yet taught): a Python traceback's first line, Mono's
/// `Unhandled Exception:`, a Rust panic's `thread '…' panicked at …:`, Node's `/app/x.js:3`.
/// Only headers that end their line, so each test is a look at its last bytes first.
pub fn header_at_end(line: &[u8]) -> Option<usize> {
    let suffix_at = |header: &[u8]| {
        line.ends_with(header)
            .then(|| line.len() - header.len())
            .filter(|at| *at > 0 && line[at - 1] == b' ')
    };
    match line.last()? {
        b':' if line.ends_with(b"last):") => suffix_at(b"Traceback (most recent call last):"),
        b':' if line.ends_with(b"Exception:") => suffix_at(b"Unhandled Exception:"),
        b':' => {
            let at = memchr::memmem::find(line, b" thread '")? + 1;
            contains_panicked(&line[at..]).then_some(at)
        }
        b'0'..=b'9' => {
            let at = line.iter().rposition(|b| *b == b' ')? + 1;
            is_node_header(&line[at..]).then_some(at)
        }
        _ => None,
    }
}

/// Whether a log line names an exception that `at` frames may follow: `TypeError: x`,
/// `pkg.SomeException: x` or a bare `pkg.SomeError` at its end, `Exception in thread`,
/// `Unhandled exception.`, anywhere after the line's prefix.
pub fn names_exception(line: &[u8]) -> bool {
    if contains(line, b"Exception in thread ") || contains(line, b"Unhandled exception.") {
        return true;
    }
    [&b"Error"[..], b"Exception", b"Throwable"]
        .iter()
        .any(|word| {
            memchr::memmem::find_iter(line, word).any(|at| {
                let after = &line[at + word.len()..];
                after.is_empty() || after.starts_with(b":") || after.starts_with(b" [")
            })
        })
}

/// Node.js's `/app/index.js:3` (the first line of an uncaught exception).
fn is_node_header(line: &[u8]) -> bool {
    if !line.last().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    let Some(colon) = line.iter().rposition(|b| *b == b':') else {
        return false;
    };
    let (path, number) = (&line[..colon], &line[colon + 1..]);
    let scripted = [
        &b".js"[..],
        b".mjs",
        b".cjs",
        b".ts",
        b".mts",
        b".jsx",
        b".tsx",
    ]
    .iter()
    .any(|ext| path.ends_with(ext));
    // `<anonymous_script>:1`: code Node compiled from a string (`JSON.parse`'s input).
    let anonymous = path.starts_with(b"<anonymous") && path.ends_with(b">");
    (scripted || anonymous)
        && !number.is_empty()
        && number.iter().all(u8::is_ascii_digit)
        && !path.contains(&b' ')
        && (anonymous
            || path.starts_with(b"/")
            || path.starts_with(b"./")
            || path.starts_with(b"file://")
            || path.get(1) == Some(&b':'))
}

/// Ruby's `path.rb:7:in 'method': message (SomeError)`.
fn is_ruby_error(line: &[u8]) -> bool {
    if !line.ends_with(b")") {
        return false;
    }
    let Some(position) = find(line, b".rb:") else {
        return false;
    };
    let rest = &line[position + 4..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest[digits..].starts_with(b":in ") && line.ends_with(b")")
}

/// Go's `main.(*Cache).Put(...)`, `main.main()` or `panic({0x4970e0, 0xc0000a4000})`: a call
/// without spaces before its `(`.
fn is_go_function(line: &[u8]) -> bool {
    let Some(open) = line.iter().position(|b| *b == b'(') else {
        return false;
    };
    let name = &line[..open];
    line.ends_with(b")")
        && !name.is_empty()
        && !name.contains(&b' ')
        && (name.contains(&b'.') || name == b"panic")
}

fn contains_panicked(line: &[u8]) -> bool {
    line.starts_with(b"thread '") && contains(line, b"panicked at")
}

fn is_indented_markers(line: &[u8]) -> bool {
    let trimmed = trim_start(line);
    trimmed.len() < line.len()
        && !trimmed.is_empty()
        && trimmed.iter().all(|b| matches!(b, b'^' | b'~'))
}

fn starts_with_frame_number(text: &[u8]) -> bool {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && text[digits..].starts_with(b": ")
}

fn trim_start(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    &line[start..]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> Vec<Decision> {
        let mut mode = None::<Mode>;
        let mut count = 0;
        let mut first = String::new();
        let mut decisions = Vec::new();
        for line in lines {
            let pending = mode.map(|mode| PendingView {
                mode,
                lines: count,
                first_line: first.as_bytes(),
            });
            let decision = classify(line.as_bytes(), pending);
            match decision {
                Decision::Continue(next) => {
                    mode = Some(next);
                    count += 1;
                }
                Decision::Start(next) => {
                    mode = Some(next);
                    count = 1;
                    first = line.to_string();
                }
                Decision::Fragment => {
                    mode = Some(Mode::Plain);
                    count = 1;
                    first = line.to_string();
                }
                Decision::Tentative => {}
            }
            decisions.push(decision);
        }
        decisions
    }

    #[test]
    fn a_java_trace_after_an_info_line_starts_its_own_entry() {
        use Decision::*;
        let decisions = run(&[
            "2026-01-01 INFO starting",
            "Exception in thread \"main\" java.lang.IllegalStateException: boom",
            "\tat Crash.main(Crash.java:29)",
            "Caused by: java.lang.NullPointerException",
            "\t... 1 more",
            "2026-01-01 INFO next",
        ]);
        assert_eq!(
            decisions,
            vec![
                Start(Mode::Plain),
                Start(Mode::At),
                Continue(Mode::At),
                Continue(Mode::At),
                Continue(Mode::At),
                Start(Mode::Plain)
            ]
        );
    }

    #[test]
    fn an_exception_line_after_an_error_log_line_waits_for_its_frames() {
        let pending = PendingView {
            mode: Mode::Plain,
            lines: 1,
            first_line: b"2026-01-01 12:00:00 ERROR [main] shop.Cart - checkout failed",
        };
        assert_eq!(
            classify(
                b"java.lang.IllegalStateException: cart is empty",
                Some(pending)
            ),
            Decision::Tentative
        );
        let info = PendingView {
            first_line: b"2026-01-01 12:00:00 INFO [main] shop.Cart - fine",
            ..pending
        };
        assert_eq!(
            classify(b"java.lang.IllegalStateException: x", Some(info)),
            Decision::Start(Mode::Plain)
        );
    }

    #[test]
    fn headers_are_recognised() {
        assert!(is_exception_header(
            b"java.lang.IllegalStateException: cart is empty"
        ));
        assert!(is_exception_header(b"TypeError: x is not a function"));
        assert!(is_exception_header(b"java.lang.OutOfMemoryError"));
        assert!(!is_exception_header(b"Error while reading: 3 retries"));
        assert!(!is_exception_header(b"2026-01-01 ERROR boom"));
        assert!(is_node_header(b"/app/index.js:3"));
        assert!(!is_node_header(b"see /app/index.js:3"));
        assert!(is_ruby_error(
            b"app.rb:7:in `greet': undefined method `name' for nil (NoMethodError)"
        ));
        assert!(is_go_function(b"main.(*Cache).Put(...)"));
        assert!(!is_go_function(
            b"2026/01/01 12:00:05 INFO cache (starting)"
        ));
    }
}
