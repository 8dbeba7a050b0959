//! Where the units of a source file are, read from its shape: the function that encloses a
//! failing line, the names that line uses, and where a name is defined.
//!
//! A fixed window of lines around a frame misses what a fix needs: the start of a long
//! function (where the wrong value came from) and a table or helper defined in another file.
//! No parser per language is needed to find them: Python's blocks are its indentation, Ruby's
//! run from `def` to the `end` at the same indentation, and the C family's (Java, JavaScript,
//! TypeScript, Go, Rust, C#, Kotlin, …) are their braces, counted outside strings and comments.
//! A definition is a line that introduces the name the way its language does (`def NAME`,
//! `function NAME`, `const NAME =`, `func NAME(`, `fn NAME`, a method signature, a module-level
//! assignment), and runs to the end of its block or statement.
//!
//! Everything here is a pure function of text; it never fails, it only finds less.

use regex::Regex;

/// Most lines of a function shown whole; a longer one is shown as its first lines and the lines
/// around the frame.
pub const MAX_FUNCTION_LINES: usize = 150;
/// Most lines of one definition shown.
pub const MAX_DEFINITION_LINES: usize = 80;
/// Names shorter than this are too common to look up.
const MIN_NAME_LEN: usize = 3;

/// How a file's blocks are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeShape {
    /// Blocks by indentation (Python).
    Indented,
    /// `def` … `end`, indented (Ruby).
    Ended,
    /// Braces; `quotes` says whether `'` opens a string (JavaScript, TypeScript, PHP) rather
    /// than a character literal or a lifetime.
    Braced { single_quoted_strings: bool },
}

/// The shape of a file by its extension, if it is code this module reads.
pub fn shape_of(path: &str) -> Option<CodeShape> {
    let extension = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "py" | "pyw" => CodeShape::Indented,
        "rb" => CodeShape::Ended,
        "js" | "mjs" | "cjs" | "jsx" | "ts" | "mts" | "cts" | "tsx" | "php" => CodeShape::Braced {
            single_quoted_strings: true,
        },
        "java" | "kt" | "kts" | "scala" | "go" | "rs" | "cs" | "c" | "h" | "cc" | "cpp" | "hpp"
        | "swift" | "dart" | "groovy" => CodeShape::Braced {
            single_quoted_strings: false,
        },
        _ => return None,
    })
}

/// Whether two files are read the same way (a definition is looked for in files like the one
/// that uses it).
pub fn same_family(a: CodeShape, b: CodeShape) -> bool {
    std::mem::discriminant(&a) == std::mem::discriminant(&b)
        && match (a, b) {
            (
                CodeShape::Braced {
                    single_quoted_strings: x,
                },
                CodeShape::Braced {
                    single_quoted_strings: y,
                },
            ) => x == y,
            _ => true,
        }
}

/// Lines `start..=end`, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineRange {
    pub start: usize,
    pub end: usize,
}

impl LineRange {
    pub fn len(&self) -> usize {
        self.end + 1 - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }

    pub fn contains(&self, line: usize) -> bool {
        (self.start..=self.end).contains(&line)
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// The function or method that encloses 1-based `line`, with its decorators or annotations.
pub fn enclosing_function(lines: &[&str], line: usize, shape: CodeShape) -> Option<LineRange> {
    if line == 0 || line > lines.len() {
        return None;
    }
    match shape {
        CodeShape::Indented => indented_function(lines, line, &["def ", "async def "], false),
        CodeShape::Ended => indented_function(lines, line, &["def "], true),
        CodeShape::Braced {
            single_quoted_strings,
        } => braced_function(lines, line, single_quoted_strings),
    }
}

/// The innermost `def` whose indented block holds `line`.
fn indented_function(
    lines: &[&str],
    line: usize,
    headers: &[&str],
    ends_with_end: bool,
) -> Option<LineRange> {
    let at = line - 1;
    // A blank frame line takes the indentation of the code after it.
    let mut level = (at..lines.len())
        .find(|&i| !blank(lines[i]))
        .map_or(usize::MAX, |i| indent(lines[i]));
    for header in (0..=at).rev() {
        let text = lines[header];
        if blank(text) || (header < at && indent(text) >= level) {
            continue;
        }
        if header < at || indent(text) < level {
            level = indent(text);
        }
        let code = text.trim_start();
        if headers.iter().any(|h| code.starts_with(h)) {
            let mut start = header;
            while start > 0 && lines[start - 1].trim_start().starts_with('@') {
                start -= 1;
            }
            let end = block_end_by_indent(lines, header, ends_with_end);
            return (end + 1 >= line).then_some(LineRange {
                start: start + 1,
                end: end + 1,
            });
        }
        if level == 0 {
            break;
        }
    }
    None
}

/// The last line (0-based) of the block that the line at `header` opens: up to the next
/// non-blank line indented no deeper than it (Ruby: that line, if it is the `end`).
fn block_end_by_indent(lines: &[&str], header: usize, ends_with_end: bool) -> usize {
    let level = indent(lines[header]);
    // A signature over several lines (`def f(\n    a,\n):`) belongs to the header.
    let mut last = header;
    for (i, text) in lines.iter().enumerate().skip(header + 1) {
        if blank(text) {
            continue;
        }
        if indent(text) <= level {
            let code = text.trim_start();
            let closes_signature = code.starts_with(')') || code.starts_with(']');
            if ends_with_end && code.split_whitespace().next() == Some("end") {
                return i;
            }
            if !closes_signature {
                break;
            }
        }
        last = i;
    }
    last
}

/// Brace-delimited blocks of the file: (line the `{` is on, line the `}` is on), 0-based, and
/// the byte offset of the `{` in its line.
fn brace_blocks(lines: &[&str], single_quoted_strings: bool) -> Vec<(usize, usize, usize)> {
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut blocks = Vec::new();
    let mut in_block_comment = false;
    for (number, text) in lines.iter().enumerate() {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if in_block_comment {
                if b == b'*' && bytes.get(i + 1) == Some(&b'/') {
                    in_block_comment = false;
                    i += 1;
                }
                i += 1;
                continue;
            }
            match b {
                b'/' if bytes.get(i + 1) == Some(&b'/') => break,
                b'#' if !single_quoted_strings && text.trim_start().starts_with("#[") => break,
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    in_block_comment = true;
                    i += 1;
                }
                b'"' | b'`' => i = skip_string(bytes, i, b),
                b'\'' if single_quoted_strings => i = skip_string(bytes, i, b'\''),
                // A character literal (`'a'`, `'\n'`); a Rust lifetime (`'a`) is not one.
                b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 2,
                b'\'' if bytes.get(i + 1) == Some(&b'\\') => {
                    i = skip_string(bytes, i, b'\'');
                }
                b'{' => open.push((number, i)),
                b'}' => {
                    if let Some((line, column)) = open.pop() {
                        blocks.push((line, number, column));
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    blocks
}

/// The index of the quote that closes the string opened at `start` (or the line's last byte).
fn skip_string(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b if b == quote => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len().saturating_sub(1)
}

/// Words that open a block that is not a function.
const CONTROL: &[&str] = &[
    "if",
    "else",
    "for",
    "foreach",
    "while",
    "do",
    "switch",
    "match",
    "catch",
    "try",
    "finally",
    "synchronized",
    "lock",
    "using",
    "select",
    "loop",
    "unsafe",
    "return",
    "when",
];

/// The text that leads to the `{` at (`line`, `column`): the statement it ends, over as many
/// lines as it spans (back to the previous `;`, `{` or `}`), joined with spaces.
fn header_of(lines: &[&str], line: usize, column: usize) -> (usize, String) {
    let mut parts = vec![lines[line][..column].to_string()];
    let mut first = line;
    let ends_statement = |s: &str| {
        let t = s.trim_end();
        t.ends_with(';') || t.ends_with('{') || t.ends_with('}')
    };
    if lines[line][..column].trim().is_empty() || !lines[line][..column].contains('(') {
        while first > 0
            && line - first < 8
            && !ends_statement(lines[first - 1])
            && !blank(lines[first - 1])
        {
            first -= 1;
            parts.insert(0, lines[first].to_string());
        }
    }
    (first, parts.join(" "))
}

/// Whether the text before a `{` opens a function: a signature with a parameter list (or an
/// arrow), not a control statement, a class or a type.
fn is_function_header(header: &str) -> bool {
    let code = header.trim();
    let first_word = code
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .find(|w| !w.is_empty())
        .unwrap_or_default();
    if CONTROL.contains(&first_word) || code.starts_with('}') && code.contains(" else") {
        return false;
    }
    let declares_type = code.split_whitespace().any(|word| {
        matches!(
            word,
            "class" | "struct" | "enum" | "interface" | "trait" | "impl" | "namespace" | "object"
        )
    });
    if declares_type && !code.contains("=>") && !code.contains("fn ") {
        return false;
    }
    code.contains("=>") || code.contains('(') || code.starts_with("fn ") || code.contains(" fn ")
}

/// Whether a function header names its function (`fn total(`, `function total(`,
/// `int total(`, `total(x) {`), as opposed to a closure or callback (`=> {`, `function (`,
/// `func(`, `|x| {`).
fn is_named(header: &str) -> bool {
    let code = header.trim_end();
    if code.ends_with("=>") || code.ends_with('|') || code.ends_with("->") {
        return false;
    }
    let Some(open) = code.find('(') else {
        return code.contains("fn ");
    };
    let before = code[..open].trim_end();
    let name = before
        .rsplit(|c: char| !c.is_alphanumeric() && c != '_' && c != '$')
        .next()
        .unwrap_or_default();
    !name.is_empty() && !matches!(name, "function" | "func" | "async" | "fn")
}

fn braced_function(lines: &[&str], line: usize, single_quoted_strings: bool) -> Option<LineRange> {
    let at = line - 1;
    let mut holding: Vec<(usize, usize, usize)> = brace_blocks(lines, single_quoted_strings)
        .into_iter()
        .filter(|&(open, close, _)| open <= at && at <= close)
        .collect();
    // Innermost first.
    holding.sort_by_key(|&(open, close, _)| close - open);
    let functions: Vec<(usize, usize, bool)> = holding
        .iter()
        .filter_map(|&(open, close, column)| {
            let (first, header) = header_of(lines, open, column);
            is_function_header(&header).then(|| (first, close, is_named(&header)))
        })
        .collect();
    // The innermost named function; a callback alone says little of where its values came
    // from, unless it is all there is.
    let (first, close, _) = functions
        .iter()
        .find(|(_, _, named)| *named)
        .or_else(|| functions.first())
        .copied()?;
    let mut start = first;
    while start > 0 {
        let above = lines[start - 1].trim_start();
        if above.starts_with('@') || above.starts_with("#[") {
            start -= 1;
        } else {
            break;
        }
    }
    Some(LineRange {
        start: start + 1,
        end: close + 1,
    })
}

/// Words that are never looked up: keywords and literals of the languages read here.
const KEYWORDS: &[&str] = &[
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "def",
    "default",
    "defer",
    "del",
    "delete",
    "do",
    "elif",
    "else",
    "elsif",
    "end",
    "enum",
    "except",
    "export",
    "extends",
    "false",
    "final",
    "finally",
    "fn",
    "for",
    "foreach",
    "from",
    "func",
    "function",
    "global",
    "go",
    "if",
    "impl",
    "import",
    "in",
    "instanceof",
    "interface",
    "is",
    "lambda",
    "let",
    "loop",
    "match",
    "mod",
    "module",
    "mut",
    "new",
    "nil",
    "none",
    "None",
    "not",
    "null",
    "or",
    "package",
    "pass",
    "private",
    "protected",
    "pub",
    "public",
    "raise",
    "range",
    "require",
    "rescue",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "super",
    "switch",
    "this",
    "throw",
    "throws",
    "trait",
    "True",
    "true",
    "False",
    "try",
    "type",
    "typeof",
    "undefined",
    "unless",
    "use",
    "var",
    "void",
    "where",
    "while",
    "with",
    "yield",
    "int",
    "str",
    "len",
    "string",
    "bool",
    "float",
    "double",
    "long",
    "char",
    "byte",
    "usize",
    "isize",
    "u8",
    "u16",
    "u32",
    "u64",
    "i32",
    "i64",
    "f32",
    "f64",
    "Some",
    "Ok",
    "Err",
    "print",
    "println",
    "console",
    "log",
    "err",
    "error",
    "value",
    "args",
    "kwargs",
];

/// The names a line of code uses, in the order they appear, each once: identifiers outside
/// strings and comments, not keywords, at least three characters long.
pub fn names_used(line: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' | b'\'' | b'`' => {
                i = skip_string(bytes, i, b) + 1;
                continue;
            }
            b'#' if !line[i..].starts_with("#[") => break,
            b'/' if bytes.get(i + 1) == Some(&b'/') => break,
            _ => {}
        }
        if b.is_ascii_alphabetic() || b == b'_' || b == b'$' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
            {
                i += 1;
            }
            let name = &line[start..i];
            if name.len() >= MIN_NAME_LEN
                && !KEYWORDS.contains(&name)
                && !names.iter().any(|known| known == name)
            {
                names.push(name.to_string());
            }
            continue;
        }
        i += 1;
    }
    names
}

/// A pattern that matches a line defining `name` in files of `shape`.
pub fn definition_pattern(name: &str, shape: CodeShape) -> Option<Regex> {
    let n = regex::escape(name);
    let pattern = match shape {
        CodeShape::Indented => {
            format!(r"^(?:\s*(?:async\s+)?def\s+{n}\s*\(|\s*class\s+{n}\b|{n}\s*(?::[^=]*)?=[^=])")
        }
        CodeShape::Ended => {
            format!(r"^(?:\s*def\s+(?:self\.)?{n}\b|\s*(?:class|module)\s+{n}\b|\s*{n}\s*=[^=~])")
        }
        CodeShape::Braced { .. } => format!(
            concat!(
                r"^\s*(?:",
                // function NAME, fn NAME, func NAME( / func (r T) NAME(
                r"(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*{n}\b",
                r"|(?:pub(?:\([^)]*\))?\s+)?(?:const\s+|async\s+|unsafe\s+)*fn\s+{n}\b",
                r"|func\s+(?:\([^)]*\)\s*)?{n}\s*[\[(]",
                // const/let/var/static NAME = …, Go's var/const, Rust's const/static NAME:
                r"|(?:export\s+)?(?:pub\s+)?(?:const|let|var|static|val)\s+(?:mut\s+)?{n}\b\s*[:=]",
                r"|(?:export\s+)?(?:pub\s+)?(?:abstract\s+)?(?:class|interface|struct|enum|trait|type|object|record)\s+{n}\b",
                // A method or typed function: modifiers and a return type, NAME(, no `;` after.
                r"|(?:[\w<>\[\],.?]+\s+)+{n}\s*\([^;]*$",
                // A typed field or constant: modifiers and a type, NAME =.
                r"|(?:[\w<>\[\],.?]+\s+)+{n}\s*=[^=]",
                // A JavaScript method in a class or object: NAME(…) {{
                r"|(?:async\s+|static\s+|get\s+|set\s+)*{n}\s*\([^;]*\)\s*\{{",
                // NAME = (…) => / NAME: function
                r"|(?:this\.)?{n}\s*[:=]\s*(?:async\s*)?(?:function\b|\([^)]*\)\s*=>|\w+\s*=>)",
                r")"
            ),
            n = n
        ),
    };
    Regex::new(&pattern).ok()
}

/// Where `name` is defined in `lines`, and the lines its definition spans.
pub fn find_definition(lines: &[&str], name: &str, shape: CodeShape) -> Option<LineRange> {
    let pattern = definition_pattern(name, shape)?;
    let at = lines
        .iter()
        .position(|line| pattern.is_match(line) && !line.trim_start().starts_with("return "))?;
    let end = match shape {
        CodeShape::Indented | CodeShape::Ended => {
            let code = lines[at].trim_start();
            if code.starts_with("def ")
                || code.starts_with("async def ")
                || code.starts_with("class ")
                || code.starts_with("module ")
            {
                block_end_by_indent(lines, at, shape == CodeShape::Ended)
            } else {
                statement_end(lines, at)
            }
        }
        CodeShape::Braced {
            single_quoted_strings,
        } => braced_definition_end(lines, at, single_quoted_strings),
    };
    let end = end.min(at + MAX_DEFINITION_LINES - 1);
    Some(LineRange {
        start: at + 1,
        end: end + 1,
    })
}

/// The last line of a statement that starts at `at`: where its brackets balance again.
fn statement_end(lines: &[&str], at: usize) -> usize {
    let mut depth: i32 = 0;
    for (i, text) in lines.iter().enumerate().skip(at) {
        for b in text.bytes() {
            match b {
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                _ => {}
            }
        }
        if depth <= 0 {
            return i;
        }
        if i - at >= MAX_DEFINITION_LINES {
            return i;
        }
    }
    lines.len().saturating_sub(1)
}

/// The last line of a braced definition: the block its first `{` opens, or the statement if a
/// `;` comes first.
fn braced_definition_end(lines: &[&str], at: usize, single_quoted_strings: bool) -> usize {
    let window_end = (at + MAX_DEFINITION_LINES).min(lines.len());
    for (i, text) in lines.iter().enumerate().take(window_end).skip(at) {
        let brace = text.find('{');
        let semicolon = text.find(';');
        match (brace, semicolon) {
            (Some(b), Some(s)) if s < b => return i,
            (None, Some(_)) => return i,
            (Some(_), _) => {
                let blocks = brace_blocks(&lines[i..window_end], single_quoted_strings);
                return blocks
                    .iter()
                    .filter(|(open, _, _)| *open == 0)
                    .map(|(_, close, _)| i + close)
                    .max()
                    .unwrap_or(i);
            }
            (None, None) => {}
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    const PY: &str = "import os\n\nRATES = {\n    \"EUR\": 1.0,\n    \"USD\": 0.9,\n}\n\n\n@cached\ndef convert(amount, currency):\n    rate = RATES[currency]\n\n    # a long way down\n    total = amount * rate\n    return round(total / 0, 2)\n\n\ndef other():\n    pass\n";

    #[test]
    fn a_python_function_is_its_def_and_indented_block_with_decorators() {
        let text = lines(PY);
        let range = enclosing_function(&text, 15, CodeShape::Indented).unwrap();
        assert_eq!((range.start, range.end), (9, 15));
        // A blank line inside the function belongs to it.
        let range = enclosing_function(&text, 12, CodeShape::Indented).unwrap();
        assert_eq!((range.start, range.end), (9, 15));
        // Module level: no function.
        assert_eq!(enclosing_function(&text, 3, CodeShape::Indented), None);
    }

    #[test]
    fn a_nested_python_method_is_the_innermost_def() {
        let text = lines(
            "class Cart:\n    def total(self):\n        def add(a, b):\n            return a + b\n        return add(1, None)\n\n    def other(self):\n        pass\n",
        );
        let range = enclosing_function(&text, 5, CodeShape::Indented).unwrap();
        assert_eq!((range.start, range.end), (2, 5));
        let range = enclosing_function(&text, 4, CodeShape::Indented).unwrap();
        assert_eq!((range.start, range.end), (3, 4));
    }

    #[test]
    fn a_ruby_method_runs_to_its_end() {
        let text = lines(
            "class Cart\n  def total(items)\n    items.sum do |i|\n      i.price\n    end\n  end\n\n  def other\n  end\nend\n",
        );
        let range = enclosing_function(&text, 4, CodeShape::Ended).unwrap();
        assert_eq!((range.start, range.end), (2, 6));
    }

    #[test]
    fn a_braced_function_is_the_innermost_named_one_with_its_annotations() {
        let java = lines(
            "package shop;\n\npublic class Cart {\n    private int n;\n\n    @Override\n    public int total(List<Item> items) {\n        int sum = 0;\n        for (Item i : items) {\n            if (i == null) {\n                throw new IllegalStateException(\"}\");\n            }\n        }\n        return sum;\n    }\n}\n",
        );
        let range = enclosing_function(
            &java,
            11,
            CodeShape::Braced {
                single_quoted_strings: false,
            },
        )
        .unwrap();
        assert_eq!((range.start, range.end), (6, 15));
        // A callback inside a named function: the named function.
        let js = lines(
            "const x = 1;\n\nfunction total(items) {\n  // a comment with a { brace\n  return items.map((item) => {\n    return item.price * lookupTier(item);\n  });\n}\n",
        );
        let range = enclosing_function(
            &js,
            6,
            CodeShape::Braced {
                single_quoted_strings: true,
            },
        )
        .unwrap();
        assert_eq!((range.start, range.end), (3, 8));
        // A signature over several lines (Go, Rust).
        let go = lines(
            "package main\n\nfunc Put(\n\tkey string,\n\tvalue int,\n) error {\n\tif key == \"\" {\n\t\tpanic(\"empty\")\n\t}\n\treturn nil\n}\n",
        );
        let range = enclosing_function(
            &go,
            8,
            CodeShape::Braced {
                single_quoted_strings: false,
            },
        )
        .unwrap();
        assert_eq!((range.start, range.end), (3, 11));
        let rust = lines(
            "#[inline]\npub fn reserve<'a>(stock: &'a mut u32, n: u32) -> &'a u32 {\n    let c = '{';\n    assert!(n <= *stock, \"{c}\");\n    stock\n}\n",
        );
        let range = enclosing_function(
            &rust,
            4,
            CodeShape::Braced {
                single_quoted_strings: false,
            },
        )
        .unwrap();
        assert_eq!((range.start, range.end), (1, 6));
    }

    #[test]
    fn names_on_a_line_skip_strings_keywords_and_short_names() {
        assert_eq!(
            names_used("    return round(amount * RATES_TO_EUR[currency] / 0, 2)  # \"why\""),
            ["round", "amount", "RATES_TO_EUR", "currency"]
        );
        assert_eq!(
            names_used("  const tier = lookupTier(user.plan, 'gold');"),
            ["tier", "lookupTier", "user", "plan"]
        );
    }

    #[test]
    fn definitions_are_found_by_how_each_language_introduces_a_name() {
        let py = lines(PY);
        let range = find_definition(&py, "RATES", CodeShape::Indented).unwrap();
        assert_eq!((range.start, range.end), (3, 6));
        let range = find_definition(&py, "convert", CodeShape::Indented).unwrap();
        assert_eq!((range.start, range.end), (10, 15));
        // A use is not a definition, nor is a function's local variable.
        assert_eq!(find_definition(&py, "rate", CodeShape::Indented), None);
        assert_eq!(find_definition(&py, "round", CodeShape::Indented), None);

        let braced = CodeShape::Braced {
            single_quoted_strings: true,
        };
        let js = lines(
            "import x from 'y';\n\nexport function lookupTier(plan) {\n  return TIERS[plan];\n}\n\nconst TIERS = {\n  gold: 3,\n};\nconst total = (a) => a + lookupTier(a);\n",
        );
        let range = find_definition(&js, "lookupTier", braced).unwrap();
        assert_eq!((range.start, range.end), (3, 5));
        let range = find_definition(&js, "TIERS", braced).unwrap();
        assert_eq!((range.start, range.end), (7, 9));
        let range = find_definition(&js, "total", braced).unwrap();
        assert_eq!((range.start, range.end), (10, 10));

        let java_shape = CodeShape::Braced {
            single_quoted_strings: false,
        };
        let java = lines(
            "class Rates {\n    static final Map<String, Double> TABLE = Map.of();\n\n    public static double rateOf(String currency) {\n        return TABLE.get(currency);\n    }\n}\n",
        );
        let range = find_definition(&java, "rateOf", java_shape).unwrap();
        assert_eq!((range.start, range.end), (4, 6));
        let range = find_definition(&java, "TABLE", java_shape).unwrap();
        assert_eq!((range.start, range.end), (2, 2));
        let go = lines("package shop\n\nfunc (c *Cache) Put(k string) {\n\tc.m[k] = 1\n}\n");
        let range = find_definition(&go, "Put", java_shape).unwrap();
        assert_eq!((range.start, range.end), (3, 5));
    }
}
