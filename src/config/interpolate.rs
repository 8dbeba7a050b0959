//! `${VAR}` and `${VAR:-default}` interpolation of a config file's text from the environment.
//!
//! Interpolation runs on the raw text before TOML parsing, so a variable may stand anywhere (a
//! port number, part of a string). A value may not contain a newline: that would let the
//! environment add keys to the file and would shift every line number after it. `$$` is a
//! literal `$`. Comment lines are left alone.

/// A `${…}` that could not be resolved, with its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Replaces every variable reference in `text` using `lookup`.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<InterpolationError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (line_index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
                continue;
            }
            let Some(body) = after.strip_prefix('{') else {
                out.push('$');
                rest = after;
                continue;
            };
            let column = line.len() - rest.len() + dollar + 1;
            let Some(close) = body.find('}') else {
                errors.push(InterpolationError {
                    line: line_index + 1,
                    column,
                    message: "unterminated `${` (expected `}`)".to_string(),
                });
                out.push_str(&rest[dollar..]);
                rest = "";
                break;
            };
            let reference = &body[..close];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            let valid_name =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            let value = if !valid_name {
                Err(format!(
                    "`${{{reference}}}` is not a valid variable reference"
                ))
            } else {
                match (lookup(name).filter(|v| !v.is_empty()), default) {
                    (Some(value), _) => Ok(value),
                    (None, Some(default)) => Ok(default.to_string()),
                    (None, None) if lookup(name).is_some() => Ok(String::new()),
                    (None, None) => Err(format!(
                        "environment variable `{name}` is not set (use `${{{name}:-default}}` for a default)"
                    )),
                }
            };
            match value {
                Ok(value) if value.contains(['\n', '\r']) => errors.push(InterpolationError {
                    line: line_index + 1,
                    column,
                    message: format!("environment variable `{name}` contains a newline"),
                }),
                Ok(value) => out.push_str(&value),
                Err(message) => errors.push(InterpolationError {
                    line: line_index + 1,
                    column,
                    message,
                }),
            }
            rest = &body[close + 1..];
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("web-1".to_string()),
            "EMPTY" => Some(String::new()),
            "EVIL" => Some("x\"\n[sources.evil]".to_string()),
            _ => None,
        }
    }

    #[test]
    fn replaces_variables_and_defaults() {
        let text = "a = \"${HOST}\"\nb = \"${MISSING:-fallback}\"\nc = \"${EMPTY:-d}\"\nd = \"$$5 ${EMPTY}\"\n";
        assert_eq!(
            interpolate(text, env).unwrap(),
            "a = \"web-1\"\nb = \"fallback\"\nc = \"d\"\nd = \"$5 \"\n"
        );
    }

    #[test]
    fn reports_unset_variables_with_position() {
        let errors = interpolate("x = 1\ny = \"${NOPE}\"\n", env).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].column), (2, 6));
        assert!(errors[0].message.contains("NOPE"));
    }

    #[test]
    fn refuses_newlines_and_leaves_comments() {
        assert!(interpolate("x = \"${EVIL}\"", env).is_err());
        assert_eq!(interpolate("# ${NOPE}\n", env).unwrap(), "# ${NOPE}\n");
    }
}
