//! The crate's modules depend one way. The layer list at the top of `src/lib.rs` says which
//! module sits where; this test reads it, reads every `crate::…` (and `super::…` that reaches the
//! crate root) path in `src/` and `plugins/`, and fails on an import from a layer above the
//! importer's own, on a cycle between modules, and on a module that no layer names. Each problem
//! is reported with its file and line.
//!
//! Paths are found in code, not in comments or string literals; `use crate::{a, b::c}` groups
//! and inline paths (`crate::time::Timestamp::now()`) count like `use` lines, tests included: a
//! unit test that needs a higher layer belongs in `tests/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// One module's use of another, where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    file: PathBuf,
    line: usize,
    from: String,
    to: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Problem {
    Upward {
        import: Import,
        from_layer: usize,
        to_layer: usize,
    },
    Cycle {
        modules: Vec<String>,
        /// One import for each step of the cycle.
        imports: Vec<Import>,
    },
    Unplaced {
        module: String,
        file: PathBuf,
    },
    NoLayers,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Upward {
                import,
                from_layer,
                to_layer,
            } => write!(
                f,
                "{}:{}: `{}` (layer {from_layer}) imports `{}` (layer {to_layer}, above it)",
                import.file.display(),
                import.line,
                import.from,
                import.to
            ),
            Problem::Cycle { modules, imports } => {
                write!(f, "cycle: {}", modules.join(" -> "))?;
                for import in imports {
                    write!(
                        f,
                        "\n  {}:{}: `{}` uses `{}`",
                        import.file.display(),
                        import.line,
                        import.from,
                        import.to
                    )?;
                }
                Ok(())
            }
            Problem::Unplaced { module, file } => write!(
                f,
                "{}: module `{module}` is in no layer of the list in src/lib.rs",
                file.display()
            ),
            Problem::NoLayers => write!(f, "src/lib.rs has no `## Layers` list"),
        }
    }
}

/// Layer number (1 = bottom) of each top-level module, from the crate's doc comment: the lines
/// `//! N. \`a\`, \`b\` — …` after a `## Layers` heading.
fn read_layers(lib_rs: &str) -> BTreeMap<String, usize> {
    let mut layers = BTreeMap::new();
    let mut in_list = false;
    for line in lib_rs.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc.starts_with("## ") {
            in_list = doc == "## Layers";
            continue;
        }
        if !in_list {
            continue;
        }
        let Some((number, rest)) = doc.split_once(". ") else {
            continue;
        };
        let Ok(number) = number.parse::<usize>() else {
            continue;
        };
        // The modules are the backticked names before the dash that starts the description.
        let names = rest.split(" — ").next().unwrap_or(rest);
        for name in names.split('`').skip(1).step_by(2) {
            layers.insert(name.to_string(), number);
        }
    }
    layers
}

/// The module path of a source file: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`;
/// `plugins/x.rs` is `plugins::x` (lib.rs mounts the folder as `plugins`).
fn module_path(root: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(root).unwrap_or(file);
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    match parts.first().map(String::as_str) {
        Some("src") => {
            parts.remove(0);
        }
        Some("plugins") => {}
        _ => return Vec::new(),
    }
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "mod" | "lib" | "main") {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// The text with comments and the contents of string and char literals blanked out (newlines
/// kept, so line numbers stay right).
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let blank = |b: u8| if b == b'\n' { b'\n' } else { b' ' };
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < bytes.len() {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        out.push(blank(bytes[i]));
                        i += 1;
                    }
                }
            }
            b'r' if raw_string_hashes(&bytes[i..]).is_some() && !ident_before(bytes, i) => {
                let hashes = raw_string_hashes(&bytes[i..]).unwrap_or(0);
                let opening = 2 + hashes;
                out.extend(std::iter::repeat_n(b' ', opening));
                i += opening;
                let closing: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                while i < bytes.len() && !bytes[i..].starts_with(&closing) {
                    out.push(blank(bytes[i]));
                    i += 1;
                }
                out.extend(std::iter::repeat_n(b' ', closing.len()));
                i += closing.len();
            }
            b'"' => {
                out.push(b' ');
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        out.push(b' ');
                        i += 1;
                    }
                    out.push(blank(bytes[i]));
                    i += 1;
                }
                out.push(b' ');
                i += 1;
            }
            // A char literal ('x', '\n', '\''), not a lifetime ('a).
            b'\'' if char_literal_len(&bytes[i..]).is_some() => {
                let len = char_literal_len(&bytes[i..]).unwrap_or(1);
                out.extend(std::iter::repeat_n(b' ', len));
                i += len;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    out.truncate(bytes.len());
    String::from_utf8_lossy(&out).into_owned()
}

fn ident_before(bytes: &[u8], i: usize) -> bool {
    i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')
}

/// `r"`, `r#"`, `r##"` …: how many `#`.
fn raw_string_hashes(bytes: &[u8]) -> Option<usize> {
    let hashes = bytes[1..].iter().take_while(|&&b| b == b'#').count();
    (bytes.get(1 + hashes) == Some(&b'"')).then_some(hashes)
}

fn char_literal_len(bytes: &[u8]) -> Option<usize> {
    if bytes.get(1) == Some(&b'\\') {
        let end = bytes[2..].iter().position(|&b| b == b'\'')?;
        return (end <= 10).then_some(end + 3);
    }
    let text = std::str::from_utf8(&bytes[1..bytes.len().min(6)])
        .ok()
        .or_else(|| {
            // A multi-byte char may be cut at the slice's end: take what decodes.
            (2..6)
                .rev()
                .find_map(|n| std::str::from_utf8(&bytes[1..bytes.len().min(n)]).ok())
        })?;
    let c = text.chars().next()?;
    (text[c.len_utf8()..].starts_with('\'')).then_some(c.len_utf8() + 2)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every top-level module that `code` names through `crate::` or a `super::` chain reaching the
/// crate root, with its byte offset.
fn referenced_modules(code: &str, own_path: &[String]) -> Vec<(usize, String)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b'$');
        if at_word_start && bytes[i..].starts_with(b"crate::") {
            i += "crate::".len();
            collect_heads(bytes, &mut i, &mut found);
            continue;
        }
        // `super::super::x` from a file at depth d reaches the root after d supers.
        if at_word_start
            && bytes[i..].starts_with(b"super::")
            && (i < 2 || &bytes[i - 2..i] != b"::")
        {
            let start = i;
            let mut supers = 0;
            while bytes[i..].starts_with(b"super::") {
                supers += 1;
                i += "super::".len();
            }
            if supers >= own_path.len() {
                collect_heads(bytes, &mut i, &mut found);
            } else {
                i = start + "super::".len() * supers;
            }
            continue;
        }
        i += 1;
    }
    found
}

/// Reads the first segment after `crate::` (or each first segment of a `{…}` group).
fn collect_heads(bytes: &[u8], i: &mut usize, found: &mut Vec<(usize, String)>) {
    skip_space(bytes, i);
    if bytes.get(*i) == Some(&b'{') {
        *i += 1;
        let mut depth = 1;
        let mut expect_head = true;
        while *i < bytes.len() && depth > 0 {
            skip_space(bytes, i);
            match bytes.get(*i) {
                Some(b'{') => {
                    depth += 1;
                    *i += 1;
                }
                Some(b'}') => {
                    depth -= 1;
                    *i += 1;
                }
                Some(b',') => {
                    expect_head = depth == 1;
                    *i += 1;
                }
                Some(&b) if is_ident(b) => {
                    let start = *i;
                    while *i < bytes.len() && is_ident(bytes[*i]) {
                        *i += 1;
                    }
                    if expect_head && depth == 1 {
                        found.push((start, String::from_utf8_lossy(&bytes[start..*i]).into()));
                        expect_head = false;
                    }
                }
                Some(_) => *i += 1,
                None => break,
            }
        }
    } else {
        let start = *i;
        while *i < bytes.len() && is_ident(bytes[*i]) {
            *i += 1;
        }
        if *i > start {
            found.push((start, String::from_utf8_lossy(&bytes[start..*i]).into()));
        }
    }
}

fn skip_space(bytes: &[u8], i: &mut usize) {
    while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
        *i += 1;
    }
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// Every import between two different top-level modules of the crate at `root`.
fn imports(root: &Path) -> (Vec<Import>, BTreeMap<String, PathBuf>) {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("plugins"), &mut files);
    files.sort();
    let mut modules = BTreeMap::new();
    let mut found = Vec::new();
    for file in files {
        let path = module_path(root, &file);
        let Some(own) = path.first().cloned() else {
            continue; // lib.rs and main.rs: the crate root and the binary sit above every layer.
        };
        let relative = file.strip_prefix(root).unwrap_or(&file).to_path_buf();
        modules
            .entry(own.clone())
            .or_insert_with(|| relative.clone());
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let code = code_only(&text);
        for (offset, head) in referenced_modules(&code, &path) {
            if head == own || head == "self" || head == "super" {
                continue;
            }
            let line = code.as_bytes()[..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            found.push(Import {
                file: relative.clone(),
                line,
                from: own.clone(),
                to: head,
            });
        }
    }
    // Only names of the crate's own top-level modules are imports between modules: a `super::x`
    // inside an inline `mod tests` resolves to its file's module, not to a root module `x`.
    found.retain(|import| modules.contains_key(&import.to));
    (found, modules)
}

fn check(root: &Path) -> Vec<Problem> {
    let lib_rs = std::fs::read_to_string(root.join("src/lib.rs")).unwrap_or_default();
    let layers = read_layers(&lib_rs);
    if layers.is_empty() {
        return vec![Problem::NoLayers];
    }
    let (imports, modules) = imports(root);
    let mut problems = Vec::new();
    for (module, file) in &modules {
        if !layers.contains_key(module) {
            problems.push(Problem::Unplaced {
                module: module.clone(),
                file: file.clone(),
            });
        }
    }
    for import in &imports {
        if let (Some(&from_layer), Some(&to_layer)) =
            (layers.get(&import.from), layers.get(&import.to))
            && to_layer > from_layer
        {
            problems.push(Problem::Upward {
                import: import.clone(),
                from_layer,
                to_layer,
            });
        }
    }
    problems.extend(cycles(&imports));
    problems
}

/// Cycles in the module graph, each reported once, with one import per step.
fn cycles(imports: &[Import]) -> Vec<Problem> {
    let mut edges: BTreeMap<&str, BTreeMap<&str, &Import>> = BTreeMap::new();
    for import in imports {
        edges
            .entry(import.from.as_str())
            .or_default()
            .entry(import.to.as_str())
            .or_insert(import);
    }
    let mut problems = Vec::new();
    let mut reported = BTreeSet::new();
    let mut finished = BTreeSet::new();
    for start in edges.keys() {
        let mut path = Vec::new();
        find_cycles(start, &edges, &mut path, &mut finished, &mut |cycle| {
            let members: BTreeSet<&str> = cycle.iter().copied().collect();
            if !reported.insert(members) {
                return;
            }
            let mut modules: Vec<String> = cycle.iter().map(|m| m.to_string()).collect();
            modules.push(cycle[0].to_string());
            let imports = modules
                .windows(2)
                .filter_map(|step| {
                    edges
                        .get(step[0].as_str())
                        .and_then(|targets| targets.get(step[1].as_str()))
                        .map(|import| (*import).clone())
                })
                .collect();
            problems.push(Problem::Cycle { modules, imports });
        });
    }
    problems
}

fn find_cycles<'e>(
    node: &'e str,
    edges: &BTreeMap<&'e str, BTreeMap<&'e str, &Import>>,
    path: &mut Vec<&'e str>,
    finished: &mut BTreeSet<&'e str>,
    report: &mut dyn FnMut(&[&'e str]),
) {
    if finished.contains(node) {
        return;
    }
    if let Some(position) = path.iter().position(|on_path| *on_path == node) {
        report(&path[position..]);
        return;
    }
    path.push(node);
    for next in edges
        .get(node)
        .into_iter()
        .flat_map(|targets| targets.keys())
    {
        find_cycles(next, edges, path, finished, report);
    }
    path.pop();
    finished.insert(node);
}

#[test]
fn every_module_imports_only_its_own_layer_and_those_below() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let problems = check(root);
    let report: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        problems.is_empty(),
        "layer violations:\n{}",
        report.join("\n")
    );
    // The check saw the crate: every layer's module is found and imports were read.
    let (imports, modules) = imports(root);
    assert!(modules.len() >= 20, "modules found: {modules:?}");
    assert!(imports.len() >= 100, "imports found: {}", imports.len());
}

/// A throwaway crate: `src/lib.rs` with `layers`, and the given files.
fn tree(layers: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write(
        "src/lib.rs",
        &format!("//! Test crate.\n//!\n//! ## Layers\n//!\n{layers}\n"),
    );
    for (path, text) in files {
        write(path, text);
    }
    dir
}

const THREE_LAYERS: &str =
    "//! 1. `time` — bottom\n//! 2. `event`, `parse` — middle\n//! 3. `plugins` — top";

#[test]
fn an_upward_import_is_named_with_its_file_and_line() {
    let dir = tree(
        THREE_LAYERS,
        &[
            ("src/time.rs", "pub struct Timestamp;\n"),
            (
                "src/event/mod.rs",
                "use crate::time::Timestamp;\n\nfn f() {\n    let _ = crate::plugins::sources::x();\n}\n",
            ),
            ("plugins/mod.rs", "use crate::time;\n"),
        ],
    );
    let problems = check(dir.path());
    assert_eq!(
        problems,
        vec![Problem::Upward {
            import: Import {
                file: PathBuf::from("src/event/mod.rs"),
                line: 4,
                from: "event".into(),
                to: "plugins".into(),
            },
            from_layer: 2,
            to_layer: 3,
        }],
        "{problems:?}"
    );
    assert!(
        problems[0]
            .to_string()
            .starts_with("src/event/mod.rs:4: `event` (layer 2) imports `plugins` (layer 3")
    );
}

#[test]
fn grouped_and_super_paths_count_and_comments_and_strings_do_not() {
    let dir = tree(
        THREE_LAYERS,
        &[
            (
                "src/time.rs",
                "// crate::plugins in a comment\n/* crate::event */\nconst S: &str = \"crate::plugins\";\nconst R: &str = r#\"crate::event\"#;\nconst C: char = '\"';\nfn g<'a>(x: &'a str) -> &'a str { x }\n",
            ),
            (
                "src/parse/json.rs",
                "use crate::{\n    time::Timestamp,\n    event::{Value, Level},\n};\nuse super::super::plugins::registry;\n",
            ),
            ("plugins/registry.rs", "use super::sources;\n"),
        ],
    );
    let problems = check(dir.path());
    assert_eq!(problems.len(), 1, "{problems:?}");
    let Problem::Upward { import, .. } = &problems[0] else {
        panic!("{problems:?}");
    };
    assert_eq!((import.line, import.to.as_str()), (5, "plugins"));
}

#[test]
fn a_cycle_within_one_layer_is_reported_with_each_step() {
    let dir = tree(
        THREE_LAYERS,
        &[
            ("src/event/mod.rs", "use crate::parse::json;\n"),
            ("src/parse/mod.rs", "\n\nuse crate::event::LogEntry;\n"),
        ],
    );
    let problems = check(dir.path());
    let [Problem::Cycle { modules, imports }] = problems.as_slice() else {
        panic!("{problems:?}");
    };
    assert_eq!(modules, &["event", "parse", "event"]);
    assert_eq!(imports.len(), 2);
    assert_eq!(imports[1].line, 3);
}

#[test]
fn a_module_in_no_layer_is_reported() {
    let dir = tree(THREE_LAYERS, &[("src/cache.rs", "use crate::time;\n")]);
    let problems = check(dir.path());
    assert_eq!(
        problems,
        vec![Problem::Unplaced {
            module: "cache".into(),
            file: PathBuf::from("src/cache.rs"),
        }]
    );
}

/// The README's Layout table shows the same layers as `src/lib.rs`, so the two never drift.
#[test]
fn the_readme_shows_the_layers_of_lib_rs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib_rs = std::fs::read_to_string(root.join("src/lib.rs")).expect("src/lib.rs");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let layout = readme
        .split("## Layout")
        .nth(1)
        .and_then(|section| section.split("\n## ").next())
        .expect("README has a Layout section");
    let mut shown = BTreeMap::new();
    for row in layout.lines().filter(|line| line.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(number), Some(modules)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Ok(number) = number.parse::<usize>() else {
            continue;
        };
        // `main.rs` is named for the reader; it is the binary, not a module of the library.
        for name in modules.split('`').skip(1).step_by(2) {
            if name != "main.rs" {
                shown.insert(name.to_string(), number);
            }
        }
    }
    assert_eq!(shown, read_layers(&lib_rs));
}
