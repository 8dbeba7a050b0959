//! Stack traces as types of the event model: a [`StackTrace`] is an exception (its type and
//! message), the [`Frame`]s it was raised through, innermost first, and the exceptions chained
//! to it. The trace parser (`parse::trace`) makes them; fingerprinting and remediation read them.
//!
//! An entry's JSON line (DESIGN §5) shows a trace as metadata keys: `language`, `exception`,
//! `causes` (the causes' types) and `frames` (`[{file, line, function, in_app}]`). Those keys
//! are written once, from the type ([`StackTrace::write_metadata`]), when the trace is parsed,
//! so that they keep their place among the entry's other keys; [`StackTrace::from_metadata`] and
//! the type's `Deserialize` read them back where an entry arrives as JSON. What the JSON line
//! does not carry (the messages, modules and columns) is `None` in a trace read back.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

use super::{LogEntry, Metadata, Value};

/// The language a trace was written by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Python,
    Java,
    Go,
    Rust,
    Node,
    Ruby,
    DotNet,
}

impl Language {
    pub const ALL: [Language; 7] = [
        Language::Python,
        Language::Java,
        Language::Go,
        Language::Rust,
        Language::Node,
        Language::Ruby,
        Language::DotNet,
    ];

    /// The name in `metadata.language` (a contract).
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Java => "java",
            Language::Go => "go",
            Language::Rust => "rust",
            Language::Node => "node",
            Language::Ruby => "ruby",
            Language::DotNet => "dotnet",
        }
    }

    pub fn from_name(name: &str) -> Option<Language> {
        Language::ALL
            .into_iter()
            .find(|language| language.as_str() == name)
    }
}

/// One frame: where the code ran, and whether that code is the application's own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// As written in the trace (Java: derived from the package, `shop/Cart.java`).
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Where the trace gives one (Node, Rust).
    pub column: Option<u32>,
    /// As the trace names it, qualified as the language does (`Cart.add`, `main.(*Cache).Put`).
    pub function: Option<String>,
    /// The class or module the function belongs to, where the trace names it (Java: the class).
    pub module: Option<String>,
    /// The application's code, as opposed to a library's or the standard library's: only these
    /// frames say where a fix goes and what makes two traces one bug.
    pub in_app: bool,
}

/// An exception and the frames it was raised through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StackTrace {
    /// `None` only for a trace read back from an entry whose `language` this version does not
    /// know (or that names none).
    pub language: Option<Language>,
    /// The exception type (`ZeroDivisionError`, `java.lang.IllegalStateException`), or for a Go
    /// or Rust panic the panic's kind.
    pub exception: Option<String>,
    pub message: Option<String>,
    /// Every frame of the trace, innermost first, block by block with the root cause's block
    /// first (the exception that started a chain), the raised exception's last: where a chain
    /// began takes part in the fingerprint and reaches the model first.
    pub frames: Vec<Frame>,
    /// Chained exceptions, the nearest cause first and the root cause last, whatever order the
    /// runtime prints them in (Java, Node.js, .NET and Ruby print the raised exception first,
    /// Python the root cause). Each has a type, a message and its own block's frames (also in
    /// `frames`).
    pub causes: Vec<StackTrace>,
}

impl StackTrace {
    /// Whether the trace says anything that identifies it: fingerprints are made of the
    /// exception type and the frames, so a trace with neither is treated as a plain message.
    pub fn is_identified(&self) -> bool {
        self.exception.is_some() || !self.frames.is_empty()
    }

    /// Writes the trace's keys into an entry's metadata, in this order: `language`,
    /// `exception`, `causes` (the causes' types; only if there are any) and `frames`.
    pub fn write_metadata(&self, metadata: &mut Metadata) {
        if let Some(language) = self.language {
            metadata.insert("language", language.as_str());
        }
        if let Some(exception) = &self.exception {
            metadata.insert("exception", exception.clone());
        }
        if !self.causes.is_empty() {
            let causes = self
                .causes
                .iter()
                .filter_map(|cause| cause.exception.clone().map(Value::from))
                .collect();
            metadata.insert("causes", Value::Array(causes));
        }
        let frames = self.frames.iter().map(Frame::to_value).collect();
        metadata.insert("frames", Value::Array(frames));
    }

    /// The trace that an entry's metadata describes (its `exception` and `frames` keys, as
    /// [`write_metadata`](Self::write_metadata) writes them, or as an application that logs
    /// JSON may name them itself), if it names an exception or a frame. Values of other types
    /// than these keys' are ignored, as if absent.
    pub fn from_metadata(metadata: &Metadata) -> Option<StackTrace> {
        let exception = metadata.get("exception").and_then(text);
        let frames: &[Value] = match metadata.get("frames") {
            Some(Value::Array(frames)) => frames,
            _ => &[],
        };
        let frames: Vec<Frame> = frames
            .iter()
            .filter_map(|frame| match frame {
                Value::Map(map) => Some(Frame::from_metadata(map)),
                _ => None,
            })
            .collect();
        if exception.is_none() && frames.is_empty() {
            return None;
        }
        let language = metadata
            .get("language")
            .and_then(Value::as_str_lossy)
            .and_then(|name| Language::from_name(&name));
        let causes = match metadata.get("causes") {
            Some(Value::Array(causes)) => causes
                .iter()
                .filter_map(text)
                .map(|exception| StackTrace {
                    language,
                    exception: Some(exception),
                    ..StackTrace::default()
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(StackTrace {
            language,
            exception,
            message: None,
            frames,
            causes,
        })
    }
}

/// Reads a trace from the JSON object of an entry's `metadata` (see
/// [`StackTrace::from_metadata`]); an object that names neither an exception nor a frame is
/// an error.
impl<'de> Deserialize<'de> for StackTrace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let metadata = Metadata::deserialize(deserializer)?;
        StackTrace::from_metadata(&metadata).ok_or_else(|| {
            serde::de::Error::custom("the metadata names neither an exception nor a frame")
        })
    }
}

impl Frame {
    /// The frame as an element of `metadata.frames`: `{file, line, function, in_app}`, each
    /// key only when known but `in_app`.
    fn to_value(&self) -> Value {
        let mut map = Metadata::with_capacity(4);
        if let Some(file) = &self.file {
            map.push("file", file.clone());
        }
        if let Some(line) = self.line {
            map.push("line", Value::Int(i64::from(line)));
        }
        if let Some(function) = &self.function {
            map.push("function", function.clone());
        }
        map.push("in_app", Value::Bool(self.in_app));
        Value::Map(map)
    }

    fn from_metadata(map: &Metadata) -> Frame {
        Frame {
            file: map.get("file").and_then(text),
            line: match map.get("line") {
                Some(Value::Int(line)) => u32::try_from(*line).ok(),
                _ => None,
            },
            column: None,
            function: map.get("function").and_then(text),
            module: None,
            in_app: matches!(map.get("in_app"), Some(Value::Bool(true))),
        }
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str_lossy().map(Cow::into_owned)
}

impl LogEntry {
    /// The entry's stack trace: the one parsed from its `error_trace` (or read back with it at
    /// an aggregator), else the one its metadata names (an application that logs JSON may set
    /// `exception` itself). Finding none costs two metadata lookups.
    pub fn stack_trace(&self) -> Option<Cow<'_, StackTrace>> {
        match &self.trace {
            Some(trace) => Some(Cow::Borrowed(&**trace)),
            None => StackTrace::from_metadata(&self.metadata).map(Cow::Owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn java() -> StackTrace {
        StackTrace {
            language: Some(Language::Java),
            exception: Some("java.lang.IllegalStateException".to_string()),
            message: Some("order A-1 could not be loaded".to_string()),
            frames: vec![
                Frame {
                    file: Some("com/acme/shop/Cart.java".to_string()),
                    line: Some(42),
                    function: Some("com.acme.shop.Cart.add".to_string()),
                    module: Some("com.acme.shop.Cart".to_string()),
                    in_app: true,
                    ..Frame::default()
                },
                Frame {
                    file: None,
                    line: None,
                    function: Some("jdk.internal.Native.invoke".to_string()),
                    in_app: false,
                    ..Frame::default()
                },
            ],
            causes: vec![StackTrace {
                language: Some(Language::Java),
                exception: Some("java.lang.NullPointerException".to_string()),
                message: Some("name is null".to_string()),
                ..StackTrace::default()
            }],
        }
    }

    #[test]
    fn a_trace_written_into_metadata_reads_back_without_what_the_keys_do_not_carry() {
        let trace = java();
        let mut metadata = Metadata::new();
        metadata.insert("host", "web-1");
        trace.write_metadata(&mut metadata);
        let keys: Vec<&str> = metadata.iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["host", "language", "exception", "causes", "frames"]);
        let back = StackTrace::from_metadata(&metadata).unwrap();
        let mut expected = trace;
        expected.message = None;
        expected.frames[0].module = None;
        expected.causes[0].message = None;
        assert_eq!(back, expected);
    }

    #[test]
    fn metadata_without_an_exception_or_a_frame_is_no_trace() {
        let mut metadata = Metadata::new();
        metadata.insert("language", "python");
        metadata.insert("frames", Value::Array(vec![Value::from("not a frame")]));
        assert_eq!(StackTrace::from_metadata(&metadata), None);
        // An application's own `exception` field names one.
        metadata.insert("exception", "TimeoutError");
        let trace = StackTrace::from_metadata(&metadata).unwrap();
        assert_eq!(trace.exception.as_deref(), Some("TimeoutError"));
        assert!(trace.frames.is_empty());
    }

    #[test]
    fn a_trace_deserializes_from_the_metadata_of_an_entrys_json() {
        let json = serde_json::json!({
            "host": "web-1",
            "language": "kotlin",
            "exception": "ValueError",
            "causes": ["KeyError", 3],
            "frames": [
                {"file": "/app/shop/cart.py", "line": 6, "function": "discount", "in_app": true},
                {"file": "/usr/lib/python3.12/json.py", "line": -1, "in_app": "yes"},
                "garbage"
            ]
        });
        let trace = StackTrace::deserialize(&json).unwrap();
        assert_eq!(
            trace.language, None,
            "a language this version does not know"
        );
        assert_eq!(trace.causes.len(), 1);
        assert_eq!(trace.frames.len(), 2);
        assert_eq!(trace.frames[0].line, Some(6));
        assert!(trace.frames[0].in_app);
        assert_eq!(
            (trace.frames[1].line, trace.frames[1].in_app),
            (None, false)
        );
        assert!(StackTrace::deserialize(&serde_json::json!({"host": "web-1"})).is_err());
        assert!(StackTrace::deserialize(&serde_json::json!(null)).is_err());
    }
}
