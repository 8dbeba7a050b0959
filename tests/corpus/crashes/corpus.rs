//! The corpus of real crashes (tests/corpus/crashes): each raw trace, what it must become
//! (expected.toml), shared by tests/crash_matrix.rs and tests/crash_properties.rs.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The languages, in table order.
pub const LANGUAGES: &[&str] = &["python", "java", "node", "rust", "go", "ruby", "csharp"];

/// What a pair of raw files (run 1, run 2) must become; see expected.toml for each field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub language: String,
    #[serde(default = "one")]
    pub traces: usize,
    pub exceptions: Vec<String>,
    #[serde(default)]
    pub exception_match: Match,
    pub app_files: Vec<String>,
    pub library_frames: Vec<String>,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    #[default]
    Exact,
    Prefix,
}

/// One raw file of the corpus.
#[derive(Debug, Clone)]
pub struct RawTrace {
    /// `python_a_single_1`
    pub name: String,
    /// `python_a_single` (the expected.toml key)
    pub key: String,
    pub lang: String,
    pub bug: String,
    pub variant: String,
    pub run: u8,
    /// The program's output without the blank lines before and after it (Rust prints a blank
    /// line before a panic, Node and Mono around theirs): the trace as a log holds it.
    pub text: String,
    pub expected: Expected,
}

impl RawTrace {
    pub fn lines(&self) -> Vec<&str> {
        self.text.split('\n').collect()
    }
}

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/crashes")
}

/// Every raw trace, in the order language, bug, variant, run.
pub fn load() -> Vec<RawTrace> {
    let expected_text =
        std::fs::read_to_string(dir().join("expected.toml")).expect("expected.toml");
    let expected: BTreeMap<String, Expected> =
        toml::from_str(&expected_text).expect("expected.toml parses");
    let mut traces = Vec::new();
    for lang in LANGUAGES {
        for (key, expected) in expected
            .iter()
            .filter(|(key, _)| key.split('_').next() == Some(lang))
        {
            let mut parts = key.splitn(3, '_');
            let (_, bug, variant) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
            for run in [1u8, 2] {
                let name = format!("{key}_{run}");
                let raw = std::fs::read_to_string(dir().join("raw").join(format!("{name}.txt")))
                    .unwrap_or_else(|error| panic!("raw/{name}.txt: {error}"));
                let lines: Vec<&str> = raw.lines().collect();
                let start = lines.iter().position(|l| !l.trim().is_empty()).unwrap();
                let end = lines.iter().rposition(|l| !l.trim().is_empty()).unwrap();
                traces.push(RawTrace {
                    name,
                    key: key.clone(),
                    lang: lang.to_string(),
                    bug: bug.to_string(),
                    variant: variant.to_string(),
                    run,
                    text: lines[start..=end].join("\n"),
                    expected: expected.clone(),
                });
            }
        }
    }
    assert_eq!(
        traces.len(),
        56,
        "7 languages x 2 bugs x 2 variants x 2 runs"
    );
    traces
}
