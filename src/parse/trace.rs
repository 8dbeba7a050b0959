//! Understanding a stack trace: its language, exception type, message, frames and causes, as a
//! [`StackTrace`] of the event model.
//!
//! Each frame says where the code ran (file, line, function) and whether that code belongs to
//! the application or to a library or the standard library (`in_app`), because only the
//! application's frames say where a fix goes and what makes two traces the same bug. Frames are
//! listed innermost first ("top" first) in every language: Python's, which are printed
//! outermost first, are reversed.
//!
//! Traces are rare next to ordinary lines, so clarity wins over speed here: regexes, owned text.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use regex::Regex;

use super::level::detect_level;
use super::prefix::strip_log_prefix;
use crate::event::{Frame, Language, Level, LogEntry, StackTrace};

macro_rules! regex {
    ($name:ident, $pattern:expr) => {
        static $name: LazyLock<Regex> =
            LazyLock::new(|| Regex::new($pattern).expect("a valid built-in regex"));
    };
}

regex!(
    PYTHON_FRAME,
    r#"^\s*File "([^"]+)", line (\d+)(?:, in (.+))?$"#
);
regex!(PYTHON_EXCEPTION, r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$");
regex!(
    JAVA_FRAME,
    r"^\s+at (?:[\w.$/@-]+/)?([\w$.<>\[\]]+)\.([\w$<>\-\[\]]+)\(([^():]*)(?::(\d+))?\)\s*$"
);
// .NET's `at N.C.M() in /x.cs:line 3`; Mono's `at N.C.M (args) [0x0001c] in /x.cs:3`, its
// class library's `in <mvid>:0`.
regex!(
    DOTNET_FRAME,
    r"^\s+at (.+?\(.*?\))(?: \[0x[0-9a-f]+\])?(?: in (.+?)(?::line (\d+)|:(\d+)))?\s*$"
);
regex!(NODE_FRAME, r"^\s+at (?:(.+?) \()?(.+?):(\d+):(\d+)\)?\s*$");
regex!(
    NODE_EXCEPTION,
    r"(?:^|\s)((?:[A-Z]\w*?)?(?:Error|Exception))(?::\s?(.*))?$"
);
regex!(GO_FILE, r"^\t(.+?\.go):(\d+)(?: \+0x[0-9a-f]+)?$");
regex!(
    RUST_HEADER,
    r"^thread '[^']*'(?: \(\d+\))? panicked at (.+?):(\d+):(\d+):?(?:\s*$|\s(.*))"
);
regex!(RUST_FRAME, r"^\s+\d+: (.+)$");
regex!(RUST_LOCATION, r"^\s+at (.+?):(\d+)(?::(\d+))?$");
regex!(
    RUBY_HEADER,
    r"^(.+?):(\d+):in [`'](.+?)': (.*) \(([\w:]+)\)$"
);
regex!(RUBY_FRAME, r"^\s+from (.+?):(\d+):in [`'](.+?)'$");

/// Completes an entry whose `error_trace` is set: its message is the first line without the
/// log prefix, its level the first line's (else `error`), its `trace` what [`analyse`] finds,
/// and `metadata` gets that trace's keys (`language`, `exception`, `causes`, `frames`: see
/// [`StackTrace::write_metadata`]).
pub fn annotate(entry: &mut LogEntry) {
    if let Some(text) = entry.error_trace.clone() {
        annotate_read(entry, &text);
    }
}

/// [`annotate`], with the trace read from `read`: `error_trace` as written without the log
/// prefixes its lines carry (where the trace starts after its first line's prefix, and its
/// lines repeat one). The message is `read`'s first line; the level, `error_trace`'s.
pub fn annotate_read(entry: &mut LogEntry, read: &Bytes) {
    let Some(text) = entry.error_trace.clone() else {
        return;
    };
    let first_line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let read_first = read.split(|b| *b == b'\n').next().unwrap_or_default();
    entry.message = read.slice_ref(strip_log_prefix(read_first));
    entry.level = detect_level(first_line).unwrap_or(Level::Error);
    let Some(mut trace) = analyse(&String::from_utf8_lossy(read)) else {
        return;
    };
    trace.write_metadata(&mut entry.metadata);
    // Keys the parser did not set may have come with the first line (a JSON line's own
    // `exception`): the entry's trace is what its metadata says, as an aggregator reads it.
    if let Some(named) = StackTrace::from_metadata(&entry.metadata) {
        if trace.exception.is_none() {
            trace.exception = named.exception;
        }
        if trace.causes.is_empty() {
            trace.causes = named.causes;
        }
    }
    entry.trace = Some(Arc::new(trace));
}

/// An entry whose message holds several lines (a syslog message, a JSON field, an agent's
/// entry) and is a stack trace becomes a trace entry as joined lines do: `error_trace` is the
/// message, `message` its first line, and the trace's keys go into `metadata`. Its level stays
/// (a syslog severity knows better than a guess). Returns whether it was a trace.
pub fn annotate_multiline_message(entry: &mut LogEntry) -> bool {
    if entry.error_trace.is_some() || memchr::memchr(b'\n', &entry.message).is_none() {
        return false;
    }
    let text = entry.message.clone();
    let Some(trace) = analyse(&String::from_utf8_lossy(&text)) else {
        return false;
    };
    let first_line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    entry.message = text.slice_ref(strip_log_prefix(first_line));
    entry.error_trace = Some(text);
    trace.write_metadata(&mut entry.metadata);
    entry.trace = Some(Arc::new(trace));
    true
}

/// Fields where structured loggers put a stack trace: Python's `exc_info`/`exc_text`, Go's
/// and Java's `stack_trace`/`stacktrace`, Node's `stack`, pino's `err.stack`, ECS's
/// `error.stack_trace`, OpenTelemetry's `exception.stacktrace`; nested or dotted.
const TRACE_FIELDS: &[&[&str]] = &[
    &["exc_info"],
    &["exc_text"],
    &["stack_trace"],
    &["stacktrace"],
    &["stack"],
    &["traceback"],
    &["exception"],
    &["error.stack_trace"],
    &["error.stack"],
    &["err.stack"],
    &["exception.stacktrace"],
    &["error", "stack_trace"],
    &["error", "stack"],
    &["err", "stack"],
    &["exception", "stacktrace"],
];

/// A structured entry (JSON, logfmt) with a stack trace in one of [`TRACE_FIELDS`]: the field's
/// text becomes `error_trace` and its trace the entry's; the entry keeps its own message and
/// level. Returns whether one was found.
pub fn annotate_trace_field(entry: &mut LogEntry) -> bool {
    if entry.error_trace.is_some() || entry.metadata.is_empty() {
        return false;
    }
    for path in TRACE_FIELDS {
        let mut value = entry.metadata.get(path[0]);
        for key in &path[1..] {
            value = match value {
                Some(crate::event::Value::Map(inner)) => inner.get(key),
                _ => None,
            };
        }
        let Some(text) = value.and_then(crate::event::Value::as_bytes) else {
            continue;
        };
        if memchr::memchr(b'\n', text).is_none() {
            continue;
        }
        let text = Bytes::copy_from_slice(text);
        let Some(trace) = analyse(&String::from_utf8_lossy(&text)) else {
            continue;
        };
        entry.error_trace = Some(text);
        trace.write_metadata(&mut entry.metadata);
        entry.trace = Some(Arc::new(trace));
        return true;
    }
    false
}

/// Analyses a whole trace (lines joined with `\n`), or `None` if it is not one.
pub fn analyse(trace: &str) -> Option<StackTrace> {
    let lines: Vec<&str> = trace.lines().collect();
    if lines
        .iter()
        .any(|line| line.starts_with("Traceback (most recent call last):"))
    {
        return Some(python(&lines));
    }
    if let Some(index) = lines
        .iter()
        .position(|line| line.starts_with("panic: ") || line.starts_with("fatal error: "))
    {
        return Some(go(&lines[index..]));
    }
    if let Some(index) = lines.iter().position(|line| RUST_HEADER.is_match(line)) {
        return Some(rust(&lines[index..]));
    }
    // Ruby's error line, first or after the line of the log call that printed it.
    if let Some(index) = lines
        .iter()
        .take(2)
        .position(|line| RUBY_HEADER.is_match(line))
    {
        return Some(ruby(&lines[index..]));
    }
    let at_lines: Vec<&&str> = lines
        .iter()
        .filter(|line| line.trim_start().starts_with("at "))
        .collect();
    if at_lines.is_empty() {
        return None;
    }
    let dotnet_shaped = lines.iter().any(|line| {
        line.starts_with("Unhandled exception.")
            || line.starts_with("Unhandled Exception:")
            || line.contains("UNHANDLED EXCEPTION: ")
    }) || at_lines
        .iter()
        .any(|line| line.contains(":line ") || line.contains(") [0x"));
    let trace = if dotnet_shaped {
        dotnet(&lines)
    } else if at_lines
        .iter()
        .any(|line| JAVA_FRAME.is_match(line) && !NODE_FRAME.is_match(line))
    {
        java(&lines)
    } else {
        node(&lines)
    };
    // Frames with no exception they were raised for are a fragment of a trace, not one.
    trace.exception.is_some().then_some(trace)
}

/// An exception line: its type and message.
type Raised = (String, Option<String>);

/// One exception of a chain (its type and message, if its line was read) and the frames it
/// was raised through, innermost first.
type Block = (Option<Raised>, Vec<Frame>);

/// A trace from the blocks of an exception chain, the raised exception's first, then its
/// causes, the nearest first: `frames` holds every block's frames with the root cause's first
/// (where the chain began is what a fix needs to see), and each cause keeps its own.
fn chained(language: Language, blocks: Vec<Block>) -> StackTrace {
    let frames = blocks
        .iter()
        .rev()
        .flat_map(|(_, frames)| frames.clone())
        .collect();
    let mut blocks = blocks.into_iter();
    let (raised, _) = blocks.next().unwrap_or_default();
    let causes = blocks
        .filter_map(|(raised, frames)| {
            raised.map(|(name, message)| StackTrace {
                frames,
                ..cause(language, name, message)
            })
        })
        .collect();
    let (exception, message) = raised.map_or((None, None), |(name, message)| (Some(name), message));
    StackTrace {
        language: Some(language),
        exception,
        message,
        frames,
        causes,
    }
}

fn python(lines: &[&str]) -> StackTrace {
    // Each traceback block: frames, then its exception line. The last block is what was raised.
    let mut blocks: Vec<(Vec<Frame>, Option<Raised>)> = Vec::new();
    let mut in_frames = false;
    for line in lines {
        if line.starts_with("Traceback (most recent call last):") {
            blocks.push((Vec::new(), None));
            in_frames = true;
            continue;
        }
        let Some(block) = blocks.last_mut() else {
            continue;
        };
        if let Some(captures) = PYTHON_FRAME.captures(line) {
            let file = captures[1].to_string();
            block.0.push(Frame {
                in_app: python_in_app(&file),
                line: captures[2].parse().ok(),
                function: captures.get(3).map(|m| m.as_str().to_string()),
                file: Some(file),
                ..Frame::default()
            });
        } else if in_frames && !line.starts_with(' ') && !line.is_empty() {
            if let Some(captures) = PYTHON_EXCEPTION.captures(line) {
                block.1 = Some((
                    captures[1].to_string(),
                    captures.get(2).map(|m| m.as_str().to_string()),
                ));
            }
            in_frames = false;
        }
    }
    for (frames, _) in &mut blocks {
        frames.reverse();
    }
    // Python prints the root cause first and what was raised last.
    let blocks = blocks
        .into_iter()
        .rev()
        .map(|(frames, raised)| (raised, frames))
        .collect();
    chained(Language::Python, blocks)
}

/// A chained exception: its type and message (its frames, where the trace prints them, are
/// set by the caller).
fn cause(language: Language, exception: String, message: Option<String>) -> StackTrace {
    StackTrace {
        language: Some(language),
        exception: Some(exception),
        message,
        ..StackTrace::default()
    }
}

/// Whether a frame's file is, by its path, a language's standard library, an installed package
/// or a toolchain's code, in any language: never the application's, however its name matches a
/// repository file (`…/python3.11/json/decoder.py` is not `app/decoder.py`). The paths are the
/// places package managers and toolchains install into, not names of any one project.
pub fn library_path(file: &str) -> bool {
    const PLACES: &[&str] = &[
        // Python: the standard library, installed packages, virtual environments.
        "/lib/python",
        "/site-packages/",
        "/dist-packages/",
        "/.venv/",
        "/venv/",
        "/virtualenvs/",
        "/.pyenv/versions/",
        "/lib/pypy",
        // Node.js.
        "node_modules/",
        // Go: GOROOT and the module cache.
        "/go/src/runtime/",
        "/usr/lib/go",
        "/usr/local/go/",
        "/go/pkg/mod/",
        "/goroot/",
        // Rust: the toolchain's sources and the registry and git checkouts of crates.
        "/rustc/",
        "/.cargo/registry/",
        "/.cargo/git/",
        "/.rustup/toolchains/",
        // Ruby.
        "/gems/",
        "/lib/ruby/",
        // JVM modules and archives; .NET's shared framework.
        "/jdk/",
        "/jre/lib/",
        "/.m2/repository/",
        "/.gradle/caches/",
        "/dotnet/shared/",
    ];
    const STARTS: &[&str] = &["<", "node:", "internal/", "java.base/", "/rustc/"];
    STARTS.iter().any(|start| file.starts_with(start))
        || PLACES.iter().any(|place| file.contains(place))
}

fn python_in_app(file: &str) -> bool {
    !library_path(file)
}

fn java(lines: &[&str]) -> StackTrace {
    let mut exception = None;
    let mut message = None;
    let mut causes = Vec::new();
    // Frames of each exception in the chain; the innermost cause's come first in the result.
    let mut blocks: Vec<Vec<Frame>> = vec![Vec::new()];
    for line in lines {
        if let Some(captures) = JAVA_FRAME.captures(line) {
            let class = &captures[1];
            let file_name = &captures[3];
            let package = class.rsplit_once('.').map(|(package, _)| package);
            let file = match package {
                Some(package)
                    if file_name.ends_with(".java")
                        || file_name.ends_with(".kt")
                        || file_name.ends_with(".scala") =>
                {
                    format!("{}/{file_name}", package.replace('.', "/"))
                }
                _ => file_name.to_string(),
            };
            if let Some(block) = blocks.last_mut() {
                block.push(Frame {
                    in_app: java_in_app(class),
                    file: (!file.is_empty()).then_some(file),
                    line: captures.get(4).and_then(|m| m.as_str().parse().ok()),
                    function: Some(format!("{class}.{}", &captures[2])),
                    module: Some(class.to_string()),
                    ..Frame::default()
                });
            }
            continue;
        }
        let trimmed = line.trim_start();
        let is_header = trimmed.starts_with("Caused by: ")
            || (exception.is_none() && !trimmed.starts_with("at "));
        if !is_header {
            continue;
        }
        let header = trimmed.strip_prefix("Caused by: ").unwrap_or(trimmed);
        let named = header.split_once(": ").map_or(header, |(name, _)| name);
        let name = named.rsplit(' ').next().unwrap_or(named).trim();
        if !(name.contains("Exception") || name.contains("Error") || name.contains("Throwable")) {
            continue;
        }
        let text = header.split_once(": ").map(|(_, rest)| rest.to_string());
        if exception.is_none() {
            exception = Some(name.to_string());
            message = text;
        } else {
            causes.push(cause(Language::Java, name.to_string(), text));
            blocks.push(Vec::new());
        }
    }
    for (cause, frames) in causes.iter_mut().zip(blocks.iter().skip(1)) {
        cause.frames = frames.clone();
    }
    let frames = blocks.into_iter().rev().flatten().collect();
    StackTrace {
        language: Some(Language::Java),
        exception,
        message,
        frames,
        causes,
    }
}

fn java_in_app(class: &str) -> bool {
    const LIBRARIES: &[&str] = &[
        "java.",
        "javax.",
        "jdk.",
        "sun.",
        "com.sun.",
        "kotlin.",
        "kotlinx.",
        "scala.",
        "org.springframework.",
        "org.apache.",
        "io.netty.",
        "org.junit.",
        "reactor.",
        "jakarta.",
        "com.fasterxml.",
        "org.hibernate.",
    ];
    !LIBRARIES.iter().any(|prefix| class.starts_with(prefix))
}

fn dotnet(lines: &[&str]) -> StackTrace {
    // The exception line: `Outer: message ---> Inner: message`, after .NET's `Unhandled
    // exception. `, Mono's `Unhandled Exception:` line or its `[ERROR] FATAL UNHANDLED
    // EXCEPTION: `, or a logger's prefix.
    let header = lines
        .iter()
        .map(|line| {
            let line = line
                .split_once("UNHANDLED EXCEPTION: ")
                .map_or(*line, |(_, rest)| rest);
            line.strip_prefix("Unhandled exception. ").unwrap_or(line)
        })
        .find(|line| {
            // `Some.Namespace.SomeException: message` (or the type alone).
            let name = line.split_once(": ").map_or(*line, |(name, _)| name);
            !name.is_empty()
                && !name.contains(' ')
                && (name.contains("Exception") || name.contains("Error"))
        })
        .unwrap_or_default();
    let mut raised = header.split(" ---> ").map(|part| {
        let (name, message) = part
            .split_once(": ")
            .map_or((part, None), |(n, m)| (n, Some(m.to_string())));
        (name.rsplit(' ').next().unwrap_or(name).to_string(), message)
    });
    let (exception, message) = raised.next().unwrap_or_default();
    // Frames are printed innermost exception first, each inner block closed by `--- End of
    // inner exception stack trace ---`: print order is root cause first.
    let mut blocks: Vec<Vec<Frame>> = vec![Vec::new()];
    for line in lines {
        if line.trim_start().starts_with("--- End of inner exception") {
            blocks.push(Vec::new());
            continue;
        }
        let Some(captures) = DOTNET_FRAME.captures(line) else {
            continue;
        };
        let function = captures[1].to_string();
        let file = captures.get(2).map(|m| m.as_str().to_string());
        let library = function.starts_with("System.")
            || function.starts_with("Microsoft.")
            || file.as_deref().is_some_and(library_path);
        if let Some(block) = blocks.last_mut() {
            block.push(Frame {
                in_app: !library,
                line: captures
                    .get(3)
                    .or_else(|| captures.get(4))
                    .and_then(|m| m.as_str().parse().ok()),
                file,
                function: Some(function),
                ..Frame::default()
            });
        }
    }
    // The causes, nearest first, each with its block (the blocks run root cause first).
    let mut cause_blocks = blocks.iter().rev().skip(1);
    let causes = raised
        .map(|(name, message)| StackTrace {
            frames: cause_blocks.next().cloned().unwrap_or_default(),
            ..cause(Language::DotNet, name, message)
        })
        .collect();
    StackTrace {
        language: Some(Language::DotNet),
        exception: (!exception.is_empty()).then_some(exception),
        causes,
        message,
        frames: blocks.into_iter().flatten().collect(),
    }
}

fn node(lines: &[&str]) -> StackTrace {
    // One block per exception: the thrown one, then each `[cause]:` (nearest first).
    let mut blocks: Vec<Block> = vec![(None, Vec::new())];
    for line in lines {
        let trimmed = line.trim_start();
        if let Some(cause) = trimmed.strip_prefix("[cause]: ") {
            let raised = NODE_EXCEPTION.captures(cause).map(|captures| {
                (
                    captures[1].to_string(),
                    captures.get(2).map(|m| m.as_str().to_string()),
                )
            });
            blocks.push((raised, Vec::new()));
            continue;
        }
        if let Some(captures) = NODE_FRAME.captures(line) {
            let file = captures[2].to_string();
            if let Some((_, frames)) = blocks.last_mut() {
                frames.push(Frame {
                    in_app: !library_path(&file),
                    line: captures[3].parse().ok(),
                    column: captures[4].parse().ok(),
                    function: captures.get(1).map(|m| m.as_str().to_string()),
                    file: Some(file),
                    ..Frame::default()
                });
            }
            continue;
        }
        if blocks.len() == 1
            && blocks[0].0.is_none()
            && !trimmed.starts_with("at ")
            && let Some(captures) = NODE_EXCEPTION.captures(line)
        {
            blocks[0].0 = Some((
                captures[1].to_string(),
                captures.get(2).map(|m| m.as_str().to_string()),
            ));
        }
    }
    chained(Language::Node, blocks)
}

fn go(lines: &[&str]) -> StackTrace {
    // `panic: first [recovered]` and `\tpanic: second`: a panic raised while recovering from
    // another; the program died of the last, the earlier ones are its causes.
    let panics: Vec<&str> = lines
        .iter()
        .take_while(|line| !line.starts_with("goroutine "))
        .filter_map(|line| {
            let line = line.trim_start();
            line.strip_prefix("panic: ")
                .or_else(|| line.strip_prefix("fatal error: "))
        })
        .map(|text| text.strip_suffix(" [recovered]").unwrap_or(text))
        .collect();
    let text = panics.last().copied().unwrap_or(lines[0]);
    // The kind of panic without its values: `runtime error: index out of range [5] with
    // length 3` → `runtime error`; a plain message stays whole.
    let kind = |text: &str| {
        text.split([':', '['])
            .next()
            .unwrap_or(text)
            .trim()
            .to_string()
    };
    let causes = panics
        .iter()
        .rev()
        .skip(1)
        .map(|text| cause(Language::Go, kind(text), Some(text.to_string())))
        .collect();
    let mut frames = Vec::new();
    let mut function: Option<&str> = None;
    for line in &lines[1..] {
        if line.trim_start().starts_with("panic: ") {
            continue;
        }
        if let Some(captures) = GO_FILE.captures(line) {
            let name = function.take();
            let file = captures[1].to_string();
            let in_app = !(library_path(&file)
                || name.is_some_and(|n| n.starts_with("runtime.") || n.starts_with("testing.")));
            frames.push(Frame {
                in_app,
                line: captures[2].parse().ok(),
                // Without the argument list: `main.(*Cache).Put(...)` → `main.(*Cache).Put`.
                function: name.map(|n| n.rsplit_once('(').map_or(n, |(f, _)| f).to_string()),
                file: Some(file),
                ..Frame::default()
            });
        } else if !line.starts_with("goroutine ") && !line.trim().is_empty() {
            function = Some(line.strip_prefix("created by ").unwrap_or(line));
        }
    }
    StackTrace {
        language: Some(Language::Go),
        exception: Some(kind(text)),
        causes,
        message: Some(text.to_string()),
        frames,
    }
}

fn rust(lines: &[&str]) -> StackTrace {
    let mut frames = Vec::new();
    let mut message = None;
    if let Some(captures) = RUST_HEADER.captures(lines[0]) {
        let file = captures[1].to_string();
        frames.push(Frame {
            in_app: rust_in_app(None, &file),
            line: captures[2].parse().ok(),
            column: captures[3].parse().ok(),
            function: None,
            file: Some(file),
            ..Frame::default()
        });
        message = captures
            .get(4)
            .map(|m| m.as_str().to_string())
            .or_else(|| lines.get(1).map(|line| line.to_string()));
    }
    let mut backtrace = Vec::new();
    let mut function: Option<String> = None;
    for line in &lines[1..] {
        if let Some(captures) = RUST_FRAME.captures(line) {
            function = Some(captures[1].to_string());
        } else if let Some(captures) = RUST_LOCATION.captures(line) {
            let file = captures[1].to_string();
            let name = function.take();
            backtrace.push(Frame {
                in_app: rust_in_app(name.as_deref(), &file),
                line: captures[2].parse().ok(),
                column: captures.get(3).and_then(|m| m.as_str().parse().ok()),
                function: name,
                file: Some(file),
                ..Frame::default()
            });
        }
    }
    if !backtrace.is_empty() {
        frames = backtrace;
    }
    // The kind of panic: the message up to its first `: ` (`called Result::unwrap() on an Err
    // value`, `quantity must be a number`), without the values after it.
    let kind = message
        .as_deref()
        .map(|m| m.split(": ").next().unwrap_or(m).trim().to_string());
    StackTrace {
        language: Some(Language::Rust),
        exception: kind,
        causes: Vec::new(),
        message,
        frames,
    }
}

fn rust_in_app(function: Option<&str>, file: &str) -> bool {
    let library_function = function.is_some_and(|f| {
        [
            "std::",
            "core::",
            "alloc::",
            "__rustc::",
            "rust_begin_unwind",
            "<core::",
            "<alloc::",
            "<std::",
            "tokio::",
            "<tokio::",
        ]
        .iter()
        .any(|prefix| f.starts_with(prefix))
    });
    !(library_function || library_path(file))
}

fn ruby(lines: &[&str]) -> StackTrace {
    // One block per exception: its header line (`file:7:in 'm': message (Type)`, the frame it
    // was raised in), then its `from` frames. Ruby prints the raised exception, then its cause.
    let mut blocks: Vec<Block> = Vec::new();
    let frame = |file: &str, line: &str, function: &str| Frame {
        in_app: ruby_in_app(file),
        line: line.parse().ok(),
        function: Some(function.to_string()),
        file: Some(file.to_string()),
        ..Frame::default()
    };
    for line in lines {
        if let Some(captures) = RUBY_HEADER.captures(line) {
            blocks.push((
                Some((captures[5].to_string(), Some(captures[4].to_string()))),
                vec![frame(&captures[1], &captures[2], &captures[3])],
            ));
        } else if let Some(captures) = RUBY_FRAME.captures(line)
            && let Some((_, frames)) = blocks.last_mut()
        {
            frames.push(frame(&captures[1], &captures[2], &captures[3]));
        }
    }
    chained(Language::Ruby, blocks)
}

fn ruby_in_app(file: &str) -> bool {
    !library_path(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus_trace(name: &str, first: &str) -> String {
        let path = format!(
            "{}/tests/corpus/traces/{name}.log",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).expect("corpus file");
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.starts_with(first))
            .expect("trace start");
        let end = lines.len() - 1; // the supervisor's last line is not part of it
        lines[start..end].join("\n")
    }

    fn cause_types(info: &StackTrace) -> Vec<&str> {
        info.causes
            .iter()
            .filter_map(|cause| cause.exception.as_deref())
            .collect()
    }

    fn app_functions(info: &StackTrace) -> Vec<String> {
        info.frames
            .iter()
            .filter(|f| f.in_app)
            .map(|f| f.function.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn python_frames_are_innermost_first_and_chains_keep_their_causes() {
        let info = analyse(&corpus_trace("python_divide", "Traceback")).unwrap();
        assert_eq!(info.language, Some(Language::Python));
        assert_eq!(info.exception.as_deref(), Some("ZeroDivisionError"));
        assert_eq!(info.message.as_deref(), Some("division by zero"));
        assert_eq!(
            app_functions(&info),
            vec!["discount", "checkout", "<module>"]
        );
        assert_eq!(info.frames[0].line, Some(6));
        assert!(
            info.frames[0]
                .file
                .as_deref()
                .unwrap()
                .ends_with("programs/crash_divide.py")
        );

        let info = analyse(&corpus_trace("python_chained", "Traceback")).unwrap();
        assert_eq!(info.exception.as_deref(), Some("NameError"));
        // Nearest cause first, whatever order the runtime prints them in.
        assert_eq!(cause_types(&info), vec!["ConfigError", "KeyError"]);
        // Every block's frames, the root cause's (`KeyError` in `load`) first.
        assert_eq!(
            app_functions(&info),
            vec!["load", "load", "handle", "handle", "<module>"]
        );
        let own: Vec<usize> = info.causes.iter().map(|cause| cause.frames.len()).collect();
        assert_eq!(own, vec![2, 1]);
        assert_eq!(info.causes[1].frames[0].line, Some(8));
    }

    #[test]
    fn java_frames_map_packages_to_paths_and_the_root_cause_comes_first() {
        let info = analyse(&corpus_trace("java_caused_by", "Exception in thread")).unwrap();
        assert_eq!(info.language, Some(Language::Java));
        assert_eq!(
            info.exception.as_deref(),
            Some("java.lang.IllegalStateException")
        );
        assert_eq!(cause_types(&info), vec!["java.lang.NullPointerException"]);
        assert_eq!(
            info.frames[0].function.as_deref(),
            Some("Crash$Repository.find")
        );
        assert_eq!(info.frames[0].file.as_deref(), Some("Crash.java"));
        assert_eq!(info.frames[0].line, Some(11));
        let spring = "Exception in thread \"main\" java.lang.IllegalStateException: x\n\tat com.acme.shop.Cart.add(Cart.java:42)\n\tat org.springframework.web.Dispatcher.run(Dispatcher.java:1)";
        let info = analyse(spring).unwrap();
        assert_eq!(
            info.frames[0].file.as_deref(),
            Some("com/acme/shop/Cart.java")
        );
        assert!(info.frames[0].in_app && !info.frames[1].in_app);
    }

    #[test]
    fn node_go_rust_ruby_and_dotnet() {
        let info = analyse(&corpus_trace("node_uncaught", "/work")).unwrap();
        assert_eq!(
            (info.language, info.exception.as_deref()),
            (Some(Language::Node), Some("Error"))
        );
        assert_eq!(
            app_functions(&info)[..2],
            ["stockOf".to_string(), "reserve".to_string()]
        );
        assert!(
            !info
                .frames
                .iter()
                .any(|f| f.in_app && f.file.as_deref().unwrap().starts_with("node:"))
        );

        let info = analyse(&corpus_trace("go_panic", "panic:")).unwrap();
        assert_eq!(
            info.exception.as_deref(),
            Some("assignment to entry in nil map")
        );
        assert_eq!(app_functions(&info), vec!["main.(*Cache).Put", "main.main"]);
        assert_eq!(info.frames[0].line, Some(14));

        let info = analyse(&corpus_trace("rust_backtrace", "thread")).unwrap();
        assert_eq!(info.exception.as_deref(), Some("quantity must be a number"));
        assert_eq!(
            app_functions(&info)[..2],
            [
                "crash::quantity".to_string(),
                "crash::total::{{closure}}".to_string()
            ]
        );
        let info = analyse(&corpus_trace("rust_panic", "thread")).unwrap();
        assert_eq!(info.frames[0].file.as_deref(), Some("programs/crash.rs"));
        assert_eq!(info.frames[0].line, Some(3));

        let info = analyse(&corpus_trace("ruby_nomethod", "programs/crash.rb")).unwrap();
        assert_eq!(info.exception.as_deref(), Some("NoMethodError"));
        assert_eq!(app_functions(&info), vec!["greet", "<main>"]);

        let dotnet = "Unhandled exception. System.InvalidOperationException: Sequence contains no elements\n   at System.Linq.ThrowHelper.ThrowNoElementsException()\n   at Shop.Orders.First() in /app/Orders.cs:line 12";
        let info = analyse(dotnet).unwrap();
        assert_eq!(
            (info.language, info.exception.as_deref()),
            (
                Some(Language::DotNet),
                Some("System.InvalidOperationException")
            )
        );
        assert_eq!(info.frames[1].file.as_deref(), Some("/app/Orders.cs"));
        assert!(!info.frames[0].in_app && info.frames[1].in_app);
    }

    #[test]
    fn causes_keep_their_messages_and_frames_their_columns_and_classes() {
        let info = analyse(&corpus_trace("java_caused_by", "Exception in thread")).unwrap();
        let cause = &info.causes[0];
        assert_eq!(cause.language, Some(Language::Java));
        assert_eq!(
            cause.message.as_deref(),
            Some("Cannot invoke \"String.trim()\" because \"<local2>\" is null")
        );
        assert_eq!(info.frames[0].module.as_deref(), Some("Crash$Repository"));

        let info = analyse(&corpus_trace("python_chained", "Traceback")).unwrap();
        assert_eq!(
            info.causes[1].message.as_deref(),
            Some("'database_url'"),
            "the KeyError, the root cause, last"
        );
        assert_eq!(
            info.message.as_deref(),
            Some("name 'undefined_function' is not defined")
        );

        let info = analyse(&corpus_trace("node_uncaught", "/work")).unwrap();
        assert_eq!(
            (info.frames[0].line, info.frames[0].column),
            (Some(4), Some(11))
        );
        let info = analyse(&corpus_trace("rust_panic", "thread")).unwrap();
        assert_eq!(
            (info.frames[0].line, info.frames[0].column),
            (Some(3), Some(25))
        );
    }

    #[test]
    fn annotate_gives_the_entry_its_trace_and_the_traces_keys() {
        let text = bytes::Bytes::from(corpus_trace("python_divide", "Traceback"));
        let mut entry = LogEntry::from_line(
            text.clone(),
            std::sync::Arc::from("app"),
            std::sync::Arc::from("n"),
            crate::time::Timestamp(0),
        );
        entry.error_trace = Some(text);
        annotate(&mut entry);
        let trace = entry.trace.as_deref().unwrap();
        assert_eq!(trace.exception.as_deref(), Some("ZeroDivisionError"));
        let keys: Vec<&str> = entry.metadata.iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["language", "exception", "frames"]);
        // The keys say what the trace says, but for what they do not carry.
        let mut carried = trace.clone();
        carried.message = None;
        assert_eq!(StackTrace::from_metadata(&entry.metadata), Some(carried));
    }

    #[test]
    fn an_ordinary_line_is_not_a_trace() {
        assert_eq!(analyse("2026-01-01 INFO all good"), None);
    }

    #[test]
    fn library_files_are_known_by_their_path_in_every_language() {
        for library in [
            "/usr/lib/python3.11/json/decoder.py",
            "/usr/local/lib/python3.12/site-packages/requests/models.py",
            "/home/app/.venv/lib/python3.11/site-packages/flask/app.py",
            "/opt/app/venv/lib/python3.10/site-packages/x.py",
            "<frozen importlib._bootstrap>",
            "/app/node_modules/express/lib/router/index.js",
            "node:internal/process/task_queues",
            "internal/process/task_queues.js",
            "/usr/local/go/src/net/http/server.go",
            "/root/go/pkg/mod/github.com/lib/pq@v1.10.9/conn.go",
            "/rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/option.rs",
            "/home/u/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.40.0/src/x.rs",
            "/usr/local/bundle/gems/rack-3.0.8/lib/rack/builder.rb",
            "/usr/lib/ruby/3.2.0/json/common.rb",
        ] {
            assert!(library_path(library), "{library}");
        }
        for application in [
            "/app/shop/cart.py",
            "app/decoder.py",
            "/srv/api/src/handlers/orders.js",
            "/build/cmd/server/main.go",
            "src/inventory.rs",
            "/app/lib/billing/invoice.rb",
        ] {
            assert!(!library_path(application), "{application}");
        }
    }
}
