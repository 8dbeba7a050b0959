//! Report-only mode (`provider = "none"`): the incident gets a Markdown report in
//! `data_dir/incidents/` with its trace, the source context and the exact prompt that would
//! have been sent (DESIGN §6.9), so a person can take it from there, or paste it into a model.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::context::Snippet;
use super::incident::Incident;
use super::model::ModelRequest;

/// Brings an existing report's occurrences, last-seen time and nodes up to date (the incident
/// recurs after its report was written); a report that is not there is left so.
pub fn refresh_counts(data_dir: &Path, incident: &Incident) -> std::io::Result<()> {
    let path = data_dir
        .join("incidents")
        .join(format!("{}.md", incident.fingerprint));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    // Only the header, before the trace: a trace line may start the same way.
    let header_end = text.find("\n## ").unwrap_or(text.len());
    let nodes: Vec<&str> = incident.nodes.iter().map(String::as_str).collect();
    let header: Vec<String> = text[..header_end]
        .lines()
        .map(|line| {
            if line.starts_with("- occurrences: ") {
                format!("- occurrences: {}", incident.count)
            } else if line.starts_with("- last seen: ") {
                format!("- last seen: {}", incident.last_seen.to_rfc3339())
            } else if line.starts_with("- nodes: ") {
                format!("- nodes: {}", nodes.join(", "))
            } else {
                line.to_string()
            }
        })
        .collect();
    let updated = format!("{}{}", header.join("\n"), &text[header_end..]);
    if updated != text {
        let temporary = path.with_extension("md.tmp");
        std::fs::write(&temporary, updated)?;
        std::fs::rename(&temporary, &path)?;
    }
    Ok(())
}

/// Writes (or rewrites) the report; returns its path.
pub fn write_report(
    data_dir: &Path,
    incident: &Incident,
    redacted_trace: &str,
    snippets: &[Snippet],
    request: &ModelRequest,
) -> std::io::Result<PathBuf> {
    let dir = data_dir.join("incidents");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.md", incident.fingerprint));
    let mut text = String::new();
    let _ = writeln!(text, "# {}\n", incident.title);
    let _ = writeln!(text, "- fingerprint: `{}`", incident.fingerprint);
    if let Some(exception) = &incident.exception {
        let _ = writeln!(text, "- exception: `{exception}`");
    }
    if let Some(top_frame) = &incident.top_frame {
        let _ = writeln!(text, "- top frame: `{top_frame}`");
    }
    let _ = writeln!(text, "- occurrences: {}", incident.count);
    let _ = writeln!(text, "- first seen: {}", incident.first_seen.to_rfc3339());
    let _ = writeln!(text, "- last seen: {}", incident.last_seen.to_rfc3339());
    let nodes: Vec<&str> = incident.nodes.iter().map(String::as_str).collect();
    let _ = writeln!(text, "- nodes: {}", nodes.join(", "));
    text.push_str("\n## Trace (redacted)\n\n```\n");
    text.push_str(redacted_trace);
    text.push_str("\n```\n\n## Source context\n");
    if snippets.is_empty() {
        text.push_str("\nNo source file of the repository matched the trace's frames.\n");
    }
    for snippet in snippets {
        let note = snippet
            .note
            .as_deref()
            .map(|note| format!(" ({note})"))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "\n### `{}` lines {}–{}{note}\n\n```",
            snippet.path, snippet.start_line, snippet.end_line
        );
        text.push_str(&snippet.text);
        text.push_str("\n```\n");
    }
    text.push_str("\n## Prompt that would be sent\n\n### System\n\n```\n");
    text.push_str(&request.system);
    text.push_str("\n```\n\n### User\n\n```\n");
    text.push_str(&request.prompt);
    text.push_str("\n```\n");
    std::fs::write(&path, text)?;
    Ok(path)
}
