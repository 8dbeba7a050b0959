//! Issue 16's matrix: every real crash of tests/corpus/crashes (7 languages, two bugs, single
//! and chained, two runs each) written in every shape a log carries a trace in, between
//! ordinary lines of the same shape, through the real binary: one agent, one source per way of
//! reading (text files, JSON files, Docker json-file, CRI pod logs, syslog over TCP as one
//! message per trace and as one message per line), a fingerprint transform, a file sink.
//!
//! Each cell (language x shape) checks, for each of its 8 traces: exactly the expected trace
//! entries between its ordinary lines and nothing else, every line of the trace in them, the
//! language, the exception and its causes, the in-app files with `in_app = true` and the
//! library frames with `in_app = false`; each ordinary line one entry, untouched; the
//! fingerprint of run 1 equal to run 2's, and bug a's unequal to bug b's. The whole table is
//! printed (ok / FAIL and why) before the test asserts that every cell is green.

mod common;
#[path = "corpus/crashes/corpus.rs"]
mod corpus;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Agent, free_port};
use corpus::{LANGUAGES, Match, RawTrace};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Shape {
    /// The program's output as it is.
    Bare,
    /// `2026-11-27T13:05:02.430Z ERROR ` before the first line only.
    IsoLevel,
    /// Python `logging`'s default format: `ERROR:root:checkout failed`, then the trace.
    PyLogDefault,
    /// `%(asctime)s %(levelname)s %(name)s: %(message)s`, then the trace.
    PyLogAsctime,
    /// log4j/logback `%d %level [%thread] %logger - %msg`, then the trace.
    Log4j,
    /// A syslog daemon's file: `Nov 27 13:05:02 web-1 shop[4242]: ` before every line.
    SyslogFile,
    /// RFC 3164 over TCP, octet-counted, the whole trace in one message.
    Rfc3164Message,
    /// RFC 5424 over TCP, octet-counted, the whole trace in one message.
    Rfc5424Message,
    /// RFC 3164 over TCP, one message per line (the syslog source's `multiline = "auto"`).
    Rfc3164Lines,
    /// RFC 5424 over TCP, one message per line.
    Rfc5424Lines,
    /// A JSON line with the trace in `exc_info` (Python's JSON formatters).
    JsonExcInfo,
    /// A pino line with the trace in `err.stack`.
    JsonPino,
    /// CRI records in a pod's log (`kubernetes_logs`), the first line split into P and F.
    Cri,
    /// Docker's json-file records (a `file` source with `format = "docker"`).
    Docker,
}

const SHAPES: &[Shape] = &[
    Shape::Bare,
    Shape::IsoLevel,
    Shape::PyLogDefault,
    Shape::PyLogAsctime,
    Shape::Log4j,
    Shape::SyslogFile,
    Shape::Rfc3164Message,
    Shape::Rfc5424Message,
    Shape::Rfc3164Lines,
    Shape::Rfc5424Lines,
    Shape::JsonExcInfo,
    Shape::JsonPino,
    Shape::Cri,
    Shape::Docker,
];

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Bare => "bare",
            Shape::IsoLevel => "iso+lvl",
            Shape::PyLogDefault => "pylog",
            Shape::PyLogAsctime => "pylog-ts",
            Shape::Log4j => "log4j",
            Shape::SyslogFile => "sysfile",
            Shape::Rfc3164Message => "3164msg",
            Shape::Rfc5424Message => "5424msg",
            Shape::Rfc3164Lines => "3164ln",
            Shape::Rfc5424Lines => "5424ln",
            Shape::JsonExcInfo => "json",
            Shape::JsonPino => "pino",
            Shape::Cri => "cri",
            Shape::Docker => "docker",
        }
    }

    /// The header line a logger writes before the trace, if it writes one.
    fn header(self, clock: &Clock) -> Option<String> {
        match self {
            Shape::PyLogDefault => Some("ERROR:root:checkout failed".to_string()),
            Shape::PyLogAsctime => Some(format!(
                "{} ERROR shop.checkout: checkout failed",
                clock.python()
            )),
            Shape::Log4j => Some(format!(
                "{} ERROR [worker-3] com.shop.Cart - checkout failed",
                clock.log4j()
            )),
            _ => None,
        }
    }

    /// The line an application writes for an ordinary message `text`, before any transport.
    fn ordinary(self, text: &str, clock: &Clock) -> String {
        match self {
            Shape::Bare => text.to_string(),
            Shape::IsoLevel | Shape::Cri | Shape::Docker => {
                format!("{} INFO shop.api: {text}", clock.iso())
            }
            Shape::PyLogDefault => format!("INFO:shop.api:{text}"),
            Shape::SyslogFile => format!("{} web-1 shop[4242]: {text}", clock.bsd()),
            Shape::PyLogAsctime => format!("{} INFO shop.api: {text}", clock.python()),
            Shape::Log4j => format!("{} INFO [worker-3] com.shop.Api - {text}", clock.log4j()),
            Shape::Rfc3164Message
            | Shape::Rfc5424Message
            | Shape::Rfc3164Lines
            | Shape::Rfc5424Lines
            | Shape::JsonExcInfo
            | Shape::JsonPino => text.to_string(),
        }
    }

    /// Whether a whole trace travels as one message or field (so it is one entry even where
    /// the program printed it twice, as Mono does).
    fn one_message(self) -> bool {
        matches!(
            self,
            Shape::Rfc3164Message | Shape::Rfc5424Message | Shape::JsonExcInfo | Shape::JsonPino
        )
    }

    fn syslog(self) -> bool {
        matches!(
            self,
            Shape::Rfc3164Message
                | Shape::Rfc5424Message
                | Shape::Rfc3164Lines
                | Shape::Rfc5424Lines
        )
    }
}

/// Event times of one stream: 53 ms apart from 2026-11-27 13:05:00.000 UTC.
struct Clock {
    tick: u64,
}

impl Clock {
    fn next(&mut self) {
        self.tick += 1;
    }
    fn parts(&self) -> (u64, u64, u64) {
        let ms = 5 * 60_000 + self.tick * 53;
        (ms / 60_000, ms / 1000 % 60, ms % 1000)
    }
    fn iso(&self) -> String {
        let (m, s, ms) = self.parts();
        format!("2026-11-27T13:{m:02}:{s:02}.{ms:03}Z")
    }
    fn cri(&self) -> String {
        let (m, s, ms) = self.parts();
        format!("2026-11-27T13:{m:02}:{s:02}.{ms:03}000000Z")
    }
    fn python(&self) -> String {
        let (m, s, ms) = self.parts();
        format!("2026-11-27 13:{m:02}:{s:02},{ms:03}")
    }
    fn log4j(&self) -> String {
        let (m, s, ms) = self.parts();
        format!("2026-11-27 13:{m:02}:{s:02}.{ms:03}")
    }
    fn bsd(&self) -> String {
        let (m, s, _) = self.parts();
        format!("Nov 27 13:{m:02}:{s:02}")
    }
    /// Milliseconds since the epoch (2026-11-27T13:00:00Z is 1795784400 s).
    fn epoch_ms(&self) -> u64 {
        let (m, s, ms) = self.parts();
        1_795_784_400_000 + m * 60_000 + s * 1000 + ms
    }
}

/// What one stream holds, in order.
enum Item {
    /// An ordinary line: the text the application wrote (`written`, before any transport),
    /// and its own words (`text`, unique in the stream by its request id).
    Ordinary {
        written: String,
        text: String,
        marker: String,
    },
    /// A trace from the corpus (index into the corpus).
    Trace(usize),
}

/// One file or connection: a shape and a language, every trace of that language in it.
struct Stream {
    shape: Shape,
    lang: &'static str,
    /// How its entries are found in the output: `source:file`, `source:container`, `source:app`.
    key: String,
    items: Vec<Item>,
    /// What is written: file lines, or syslog messages (without their framing).
    out: Vec<String>,
}

fn stream_key(shape: Shape, lang: &str) -> String {
    match shape {
        Shape::JsonExcInfo | Shape::JsonPino => format!("json:{}-{lang}.log", shape.name()),
        Shape::Cri => format!("pods:{lang}"),
        Shape::Docker => format!("docker:{lang}-json.log"),
        Shape::Rfc3164Message | Shape::Rfc5424Message => {
            format!("syslog_msg:{}", syslog_app(shape, lang))
        }
        Shape::Rfc3164Lines | Shape::Rfc5424Lines => {
            format!("syslog_lines:{}", syslog_app(shape, lang))
        }
        _ => format!("text:{}-{lang}.log", shape.name()),
    }
}

fn syslog_app(shape: Shape, lang: &str) -> String {
    let rfc = match shape {
        Shape::Rfc3164Message | Shape::Rfc3164Lines => "3164",
        _ => "5424",
    };
    format!("shop-{lang}-{rfc}")
}

/// The ordinary lines around each trace: an access line, one ending with a colon, one that
/// says "error" without being one; and one after the trace.
const BEFORE: &[&str] = &[
    "GET /api/cart/{id} 200 in 12 ms ({req})",
    "refreshing price lists for {req}:",
    "payment retried after a transient error, now ok ({req})",
];
const AFTER: &[&str] = &["worker restarted, serving again ({req})"];

/// `first_request`: where the stream's request ids start. Every stream's are its own, and so
/// its first line (the file source knows a file by its first bytes: two files that start alike
/// would be one rotated file to it).
fn build_stream(
    shape: Shape,
    lang: &'static str,
    first_request: usize,
    corpus: &[RawTrace],
) -> Stream {
    let mut clock = Clock { tick: 0 };
    let mut items = Vec::new();
    let mut out = Vec::new();
    let mut request = first_request;
    let app = syslog_app(shape, lang);
    // One ordinary line, rendered for the shape's transport.
    let mut ordinary =
        |template: &str, clock: &mut Clock, items: &mut Vec<Item>, out: &mut Vec<String>| {
            request += 1;
            let marker = format!("req-{request:05}");
            let text = template
                .replace("{req}", &marker)
                .replace("{id}", &(4000 + request * 7).to_string());
            let written = shape.ordinary(&text, clock);
            out.push(render_ordinary(shape, &written, &app, clock));
            items.push(Item::Ordinary {
                written,
                text,
                marker,
            });
            clock.next();
        };
    for (index, trace) in corpus.iter().enumerate().filter(|(_, t)| t.lang == lang) {
        for template in BEFORE {
            ordinary(template, &mut clock, &mut items, &mut out);
        }
        out.extend(render_trace(shape, trace, &app, &clock));
        items.push(Item::Trace(index));
        clock.next();
        for template in AFTER {
            ordinary(template, &mut clock, &mut items, &mut out);
        }
    }
    Stream {
        shape,
        lang,
        key: stream_key(shape, lang),
        items,
        out,
    }
}

fn render_ordinary(shape: Shape, written: &str, app: &str, clock: &Clock) -> String {
    match shape {
        Shape::Rfc3164Message | Shape::Rfc3164Lines => {
            format!("<14>{} web-1 {app}[4242]: {written}", clock.bsd())
        }
        Shape::Rfc5424Message | Shape::Rfc5424Lines => {
            format!("<14>1 {} web-1 {app} 4242 - - {written}", clock.iso())
        }
        Shape::JsonExcInfo => {
            json!({"time": clock.iso(), "level": "info", "logger": "shop.api", "msg": written})
                .to_string()
        }
        Shape::JsonPino => json!({"level": 30, "time": clock.epoch_ms(), "pid": 4242,
            "hostname": "web-1", "msg": written})
        .to_string(),
        Shape::Cri => format!("{} stderr F {written}", clock.cri()),
        Shape::Docker => docker_record(&format!("{written}\n"), clock),
        _ => written.to_string(),
    }
}

fn docker_record(log: &str, clock: &Clock) -> String {
    json!({"log": log, "stream": "stderr", "time": clock.cri()}).to_string()
}

/// A trace as the shape writes it: file lines, or syslog messages.
fn render_trace(shape: Shape, trace: &RawTrace, app: &str, clock: &Clock) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    lines.extend(shape.header(clock));
    lines.extend(trace.lines().iter().map(|l| l.to_string()));
    let text = trace.text.as_str();
    match shape {
        Shape::Bare | Shape::PyLogDefault | Shape::PyLogAsctime | Shape::Log4j => lines,
        Shape::IsoLevel => {
            lines[0] = format!("{} ERROR {}", clock.iso(), lines[0]);
            lines
        }
        Shape::SyslogFile => lines
            .iter()
            .map(|line| format!("{} web-1 shop[4242]: {line}", clock.bsd()))
            .collect(),
        Shape::Rfc3164Message => vec![format!("<11>{} web-1 {app}[4242]: {text}", clock.bsd())],
        Shape::Rfc5424Message => {
            vec![format!("<11>1 {} web-1 {app} 4242 - - {text}", clock.iso())]
        }
        // One message per line; a blank line is no message (as `logger --skip-empty`).
        Shape::Rfc3164Lines => lines
            .iter()
            .filter(|line| !line.trim().is_empty())
            .map(|line| format!("<11>{} web-1 {app}[4242]: {line}", clock.bsd()))
            .collect(),
        Shape::Rfc5424Lines => lines
            .iter()
            .filter(|line| !line.trim().is_empty())
            .map(|line| format!("<11>1 {} web-1 {app} 4242 - - {line}", clock.iso()))
            .collect(),
        Shape::JsonExcInfo => vec![
            json!({"time": clock.iso(), "level": "error", "logger": "shop.checkout",
                "msg": "checkout failed", "exc_info": text})
            .to_string(),
        ],
        Shape::JsonPino => vec![
            json!({"level": 50, "time": clock.epoch_ms(), "pid": 4242, "hostname": "web-1",
                "msg": "checkout failed",
                "err": {"type": "Error", "message": lines[0], "stack": text}})
            .to_string(),
        ],
        Shape::Cri => {
            let mut records = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                // The first line in two records, as the runtime splits a long line.
                let cut = (1..line.len())
                    .rev()
                    .find(|&at| at <= line.len() / 2 && line.is_char_boundary(at));
                match (i, cut) {
                    (0, Some(at)) => {
                        records.push(format!("{} stderr P {}", clock.cri(), &line[..at]));
                        records.push(format!("{} stderr F {}", clock.cri(), &line[at..]));
                    }
                    _ => records.push(format!("{} stderr F {line}", clock.cri())),
                }
            }
            records
        }
        Shape::Docker => lines
            .iter()
            .map(|line| docker_record(&format!("{line}\n"), clock))
            .collect(),
    }
}

/// The lines of a trace that must reach its entries, each (trimmed) in order.
fn expected_lines(shape: Shape, trace: &RawTrace) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    if matches!(
        shape,
        Shape::PyLogDefault | Shape::PyLogAsctime | Shape::Log4j
    ) {
        lines.push("checkout failed".to_string());
    }
    lines.extend(
        trace
            .lines()
            .iter()
            .map(|line| line.trim().to_string())
            .filter(|line| !line.is_empty()),
    );
    lines
}

fn config(dir: &Path, api: u16, syslog_msg: u16, syslog_lines: u16, out: &Path) -> String {
    format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.text]
type = "file"
include = ["{root}/text/*.log"]
[sources.json]
type = "file"
include = ["{root}/json/*.log"]
format = "json"
[sources.docker]
type = "file"
include = ["{root}/docker/*-json.log"]
format = "docker"
[sources.pods]
type = "kubernetes_logs"
pods_root = "{root}/pods"
[sources.syslog_msg]
type = "syslog"
mode = "tcp"
address = "127.0.0.1:{syslog_msg}"
[sources.syslog_lines]
type = "syslog"
mode = "tcp"
address = "127.0.0.1:{syslog_lines}"
multiline = "auto"
[transforms.fingerprints]
type = "fingerprint"
inputs = ["text", "json", "docker", "pods", "syslog_msg", "syslog_lines"]
[sinks.out]
type = "file"
inputs = ["fingerprints"]
path = "{out}"
"#,
        root = dir.display(),
        out = out.display()
    )
}

/// The stream an output entry came from (see `stream_key`).
fn key_of(entry: &Value) -> String {
    let source = entry["source"].as_str().unwrap_or("?");
    let metadata = &entry["metadata"];
    let part = match source {
        "pods" => metadata["container"].as_str().unwrap_or("?").to_string(),
        "syslog_msg" | "syslog_lines" => metadata["app_name"].as_str().unwrap_or("?").to_string(),
        _ => metadata["file"]
            .as_str()
            .and_then(|file| file.rsplit('/').next())
            .unwrap_or("?")
            .to_string(),
    };
    format!("{source}:{part}")
}

fn is_trace(entry: &Value) -> bool {
    !entry["error_trace"].is_null()
}

fn text_of(entry: &Value) -> String {
    format!(
        "{}\n{}",
        entry["message"].as_str().unwrap_or(""),
        entry["error_trace"].as_str().unwrap_or("")
    )
}

fn short(text: &str) -> String {
    let one_line = text.replace('\n', "⏎");
    if one_line.chars().count() > 70 {
        format!("{}…", one_line.chars().take(70).collect::<String>())
    } else {
        one_line
    }
}

/// The checks of one trace's entries; returns what is wrong.
fn check_trace(shape: Shape, trace: &RawTrace, slot: &[&Value]) -> Vec<String> {
    let expected = &trace.expected;
    let wanted = if shape.one_message() {
        1
    } else {
        expected.traces
    };
    let mut wrong = Vec::new();
    let traces: Vec<&Value> = slot.iter().copied().filter(|e| is_trace(e)).collect();
    let others = slot.len() - traces.len();
    if traces.len() != wanted || others > 0 {
        wrong.push(format!(
            "{} trace entries and {others} other entries where {} trace entr{} belong: {}",
            traces.len(),
            wanted,
            if wanted == 1 { "y" } else { "ies" },
            slot.iter()
                .take(4)
                .map(|e| format!("[{}]", short(e["message"].as_str().unwrap_or(""))))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    let Some(first) = traces.first() else {
        return wrong;
    };
    // Every line of the trace, in order, in its entries.
    let joined: String = traces
        .iter()
        .map(|e| e["error_trace"].as_str().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut from = 0;
    for line in expected_lines(shape, trace) {
        match joined[from..].find(&line) {
            Some(at) => from += at + line.len(),
            None => {
                wrong.push(format!("error_trace lacks line `{}`", short(&line)));
                break;
            }
        }
    }
    let metadata = &first["metadata"];
    if metadata["language"] != expected.language.as_str() {
        wrong.push(format!(
            "language {} (want {})",
            metadata["language"], expected.language
        ));
    }
    let named = |got: &Value, want: &str| -> bool {
        match (got.as_str(), expected.exception_match) {
            (Some(got), Match::Exact) => got == want,
            (Some(got), Match::Prefix) => got.starts_with(want),
            (None, _) => false,
        }
    };
    for entry in &traces {
        let metadata = &entry["metadata"];
        if !named(&metadata["exception"], &expected.exceptions[0]) {
            wrong.push(format!(
                "exception {} (want {}{})",
                metadata["exception"],
                expected.exceptions[0],
                if expected.exception_match == Match::Prefix {
                    "…"
                } else {
                    ""
                }
            ));
        }
        let causes: Vec<Value> = metadata["causes"].as_array().cloned().unwrap_or_default();
        let want = &expected.exceptions[1..];
        if causes.len() != want.len()
            || !causes.iter().zip(want).all(|(got, want)| named(got, want))
        {
            wrong.push(format!("causes {causes:?} (want {want:?})"));
        }
    }
    let frames: Vec<&Value> = traces
        .iter()
        .flat_map(|e| e["metadata"]["frames"].as_array().into_iter().flatten())
        .collect();
    let file = |frame: &Value| frame["file"].as_str().unwrap_or("").to_string();
    for app in &expected.app_files {
        let matching: Vec<&&Value> = frames
            .iter()
            .filter(|f| file(f) == *app || file(f).ends_with(&format!("/{app}")))
            .collect();
        if matching.is_empty() {
            wrong.push(format!("no frame in {app}"));
        } else if let Some(bad) = matching.iter().find(|f| f["in_app"] != true) {
            wrong.push(format!("{app} frame not in_app: {bad}"));
        }
    }
    for library in &expected.library_frames {
        let matching: Vec<&&Value> = frames
            .iter()
            .filter(|f| {
                file(f).ends_with(library.as_str())
                    || f["function"]
                        .as_str()
                        .is_some_and(|fun| fun.contains(library.as_str()))
            })
            .collect();
        if matching.is_empty() {
            wrong.push(format!("no library frame {library}"));
        } else if let Some(bad) = matching.iter().find(|f| f["in_app"] != false) {
            wrong.push(format!("library frame in_app: {bad}"));
        }
    }
    wrong
}

#[derive(Default)]
struct Cell {
    wrong: Vec<String>,
}

#[test]
fn every_real_crash_in_every_shape_is_one_trace_entry_with_one_fingerprint_per_bug() {
    let corpus = corpus::load();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["text", "json", "docker", "pods"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let streams: Vec<Stream> = SHAPES
        .iter()
        .flat_map(|&shape| LANGUAGES.iter().map(move |&lang| (shape, lang)))
        .enumerate()
        .map(|(i, (shape, lang))| build_stream(shape, lang, i * 1000, &corpus))
        .collect();

    // Files first (read from their beginning when the agent starts), then the syslog streams.
    for stream in streams.iter().filter(|s| !s.shape.syslog()) {
        let (_, name) = stream.key.split_once(':').unwrap();
        let path = match stream.shape {
            Shape::JsonExcInfo | Shape::JsonPino => root.join("json").join(name),
            Shape::Docker => root.join("docker").join(name),
            Shape::Cri => {
                let container = root
                    .join("pods")
                    .join(format!("shop_checkout-{}_uid-{}", stream.lang, stream.lang))
                    .join(stream.lang);
                std::fs::create_dir_all(&container).unwrap();
                container.join("0.log")
            }
            _ => root.join("text").join(name),
        };
        std::fs::write(path, stream.out.join("\n") + "\n").unwrap();
    }
    let out = root.join("out.json");
    let (api, syslog_msg, syslog_lines) = (free_port(), free_port(), free_port());
    let mut agent = Agent::start(
        root,
        &config(root, api, syslog_msg, syslog_lines, &out),
        api,
    );
    for stream in streams.iter().filter(|s| s.shape.syslog()) {
        let lines = matches!(stream.shape, Shape::Rfc3164Lines | Shape::Rfc5424Lines);
        let port = if lines { syslog_lines } else { syslog_msg };
        let mut connection = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut bytes = Vec::new();
        for message in &stream.out {
            if lines {
                bytes.extend_from_slice(message.as_bytes());
                bytes.push(b'\n');
            } else {
                bytes.extend_from_slice(format!("{} {message}", message.len()).as_bytes());
            }
        }
        connection.write_all(&bytes).unwrap();
    }

    // Wait for the entries: every expected one, then no more for 2 s (fragments come as more).
    let wanted: usize = streams
        .iter()
        .flat_map(|s| s.items.iter().map(move |item| (s, item)))
        .map(|(s, item)| match item {
            Item::Ordinary { .. } => 1,
            Item::Trace(_) if s.shape.one_message() => 1,
            Item::Trace(index) => corpus[*index].expected.traces,
        })
        .sum();
    let started = Instant::now();
    let (mut last_count, mut last_change) = (0, Instant::now());
    loop {
        let count = common::read_lines(&out).len();
        if count != last_count {
            (last_count, last_change) = (count, Instant::now());
        }
        let quiet = last_change.elapsed();
        if (count >= wanted && quiet > Duration::from_secs(2))
            || quiet > Duration::from_secs(8)
            || started.elapsed() > Duration::from_secs(90)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    agent.stop();
    if let Ok(path) = std::env::var("CRASH_MATRIX_OUT") {
        std::fs::copy(&out, path).unwrap();
    }
    let entries: Vec<Value> = common::read_lines(&out)
        .iter()
        .map(|line| serde_json::from_str(line).expect("a JSON entry"))
        .collect();
    let mut by_stream: HashMap<String, Vec<&Value>> = HashMap::new();
    for entry in &entries {
        by_stream.entry(key_of(entry)).or_default().push(entry);
    }

    let mut cells: BTreeMap<(usize, usize), Cell> = BTreeMap::new();
    // (shape, name) -> fingerprint of the trace's first entry
    let mut fingerprints: HashMap<(Shape, String), String> = HashMap::new();
    for stream in &streams {
        let cell_key = (
            LANGUAGES.iter().position(|l| *l == stream.lang).unwrap(),
            SHAPES.iter().position(|s| *s == stream.shape).unwrap(),
        );
        let cell = cells.entry(cell_key).or_default();
        let got = by_stream.remove(&stream.key).unwrap_or_default();
        if got.is_empty() {
            cell.wrong
                .push(format!("no entries at all from {}", stream.key));
            continue;
        }
        // Anchors: the output position of each ordinary line found as an ordinary entry.
        let position_of = |marker: &str| -> Option<usize> {
            got.iter()
                .position(|e| !is_trace(e) && e["message"].as_str().unwrap_or("").contains(marker))
        };
        let anchors: Vec<Option<usize>> = stream
            .items
            .iter()
            .map(|item| match item {
                Item::Ordinary { marker, .. } => position_of(marker),
                Item::Trace(_) => None,
            })
            .collect();
        for (i, item) in stream.items.iter().enumerate() {
            match item {
                Item::Ordinary {
                    written,
                    text,
                    marker,
                } => {
                    let holders: Vec<&&Value> = got
                        .iter()
                        .filter(|e| text_of(e).contains(marker.as_str()))
                        .collect();
                    let fine = holders.len() == 1 && {
                        let message = holders[0]["message"].as_str().unwrap_or("");
                        !is_trace(holders[0])
                            && written.ends_with(message)
                            && message.ends_with(text.as_str())
                    };
                    if !fine {
                        cell.wrong.push(format!(
                            "ordinary line `{}` came out as {}",
                            short(written),
                            match holders.as_slice() {
                                [] => "nothing".to_string(),
                                [one] if is_trace(one) => format!(
                                    "part of a trace entry [{}]",
                                    short(one["message"].as_str().unwrap_or(""))
                                ),
                                [one] =>
                                    format!("[{}]", short(one["message"].as_str().unwrap_or(""))),
                                many => format!("{} entries", many.len()),
                            }
                        ));
                    }
                }
                Item::Trace(index) => {
                    let trace = &corpus[*index];
                    let start = anchors[..i]
                        .iter()
                        .rev()
                        .flatten()
                        .next()
                        .map_or(0, |p| p + 1);
                    let end = anchors[i + 1..]
                        .iter()
                        .flatten()
                        .next()
                        .copied()
                        .unwrap_or(got.len());
                    let slot: Vec<&Value> = if start <= end {
                        got[start..end].to_vec()
                    } else {
                        Vec::new()
                    };
                    for problem in check_trace(stream.shape, trace, &slot) {
                        cell.wrong.push(format!("{}: {problem}", trace.name));
                    }
                    if let Some(fingerprint) = slot
                        .iter()
                        .find(|e| is_trace(e))
                        .and_then(|e| e["metadata"]["fingerprint"].as_str())
                    {
                        fingerprints
                            .insert((stream.shape, trace.name.clone()), fingerprint.to_string());
                    }
                }
            }
        }
    }
    // One bug, one fingerprint; two bugs, two.
    for trace in corpus.iter().filter(|t| t.run == 1 && t.bug == "a") {
        for &shape in SHAPES {
            let cell_key = (
                LANGUAGES.iter().position(|l| *l == trace.lang).unwrap(),
                SHAPES.iter().position(|s| *s == shape).unwrap(),
            );
            let cell = cells.entry(cell_key).or_default();
            let get = |bug: &str, run: u8| {
                fingerprints.get(&(
                    shape,
                    format!("{}_{bug}_{}_{run}", trace.lang, trace.variant),
                ))
            };
            for bug in ["a", "b"] {
                if let (Some(one), Some(two)) = (get(bug, 1), get(bug, 2))
                    && one != two
                {
                    cell.wrong.push(format!(
                        "{}_{bug}_{}: runs 1 and 2 have two fingerprints",
                        trace.lang, trace.variant
                    ));
                }
            }
            if let (Some(a), Some(b)) = (get("a", 1), get("b", 1))
                && a == b
            {
                cell.wrong.push(format!(
                    "{}_{}: bugs a and b share one fingerprint",
                    trace.lang, trace.variant
                ));
            }
        }
    }

    // The table, then why each failing cell fails.
    let mut table = String::from(
        "\ncrash matrix (language x shape): ok, or FAIL with the number of problems\n",
    );
    table.push_str(&format!("{:<8}", ""));
    for shape in SHAPES {
        table.push_str(&format!("{:>9}", shape.name()));
    }
    table.push('\n');
    for (l, lang) in LANGUAGES.iter().enumerate() {
        table.push_str(&format!("{lang:<8}"));
        for s in 0..SHAPES.len() {
            let problems = cells.get(&(l, s)).map_or(0, |c| c.wrong.len());
            let mark = if problems == 0 {
                "ok".to_string()
            } else {
                format!("FAIL {problems}")
            };
            table.push_str(&format!("{mark:>9}"));
        }
        table.push('\n');
    }
    let green = cells.values().filter(|c| c.wrong.is_empty()).count();
    table.push_str(&format!(
        "{green} of {} cells green\n",
        LANGUAGES.len() * SHAPES.len()
    ));
    for ((l, s), cell) in &cells {
        if cell.wrong.is_empty() {
            continue;
        }
        table.push_str(&format!("\n{} x {}:\n", LANGUAGES[*l], SHAPES[*s].name()));
        for problem in cell.wrong.iter().take(8) {
            table.push_str(&format!("  - {problem}\n"));
        }
        if cell.wrong.len() > 8 {
            table.push_str(&format!("  … and {} more\n", cell.wrong.len() - 8));
        }
    }
    eprintln!("{table}");
    if let Ok(path) = std::env::var("CRASH_MATRIX_REPORT") {
        std::fs::write(path, &table).unwrap();
    }
    assert_eq!(
        green,
        LANGUAGES.len() * SHAPES.len(),
        "every cell of the crash matrix must be green (table above)"
    );
}
