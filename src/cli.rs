//! Command-line views of the agent's state (`tailfix incidents`).

use std::fmt::Write;
use std::io::{Read, Write as _};
use std::path::Path;
use std::time::Duration;

use crate::remediation::incident::{Incident, IncidentStore};
use crate::state::{DATABASE_FILE, StateStore};

/// The incidents as a table, most recently seen first; each column as wide as its content.
pub fn incidents_table(incidents: &[Incident]) -> String {
    let header = [
        "FINGERPRINT",
        "STATE",
        "COUNT",
        "NODES",
        "LAST SEEN",
        "TITLE",
        "CHANGE REQUEST",
    ];
    let rows: Vec<[String; 7]> = incidents
        .iter()
        .map(|incident| {
            let change_request = incident
                .change_request
                .as_ref()
                .map(|cr| cr.url.clone())
                .or_else(|| {
                    incident
                        .reason
                        .as_ref()
                        .map(|reason| format!("({})", one_line(reason, 60)))
                })
                .unwrap_or_default();
            [
                incident.fingerprint[..incident.fingerprint.len().min(12)].to_string(),
                incident.state.as_str().to_string(),
                incident.count.to_string(),
                incident.nodes.len().to_string(),
                incident.last_seen.to_rfc3339(),
                one_line(&incident.title, 60),
                change_request,
            ]
        })
        .collect();
    let mut widths = header.map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let numeric = matches!(index, 2 | 3);
            let pad = width.saturating_sub(cell.chars().count());
            if index > 0 {
                text.push_str("  ");
            }
            if numeric {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if index + 1 < cells.len() {
                    text.push_str(&" ".repeat(pad));
                }
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&mut out, &header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut out, &cells);
    }
    out
}

/// `text` on one line, at most `max` characters (an ellipsis marks a cut).
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn open_store(data_dir: &Path) -> Result<IncidentStore, String> {
    if !data_dir.join(DATABASE_FILE).exists() {
        return Err(format!(
            "no state store in {} (has the agent run?)",
            data_dir.display()
        ));
    }
    let store = StateStore::open(data_dir).map_err(|error| error.to_string())?;
    Ok(IncidentStore::new(store))
}

/// Prints the incidents of the state store under `data_dir`.
pub fn print_incidents(data_dir: &Path) -> Result<(), String> {
    let incidents = open_store(data_dir)?
        .list()
        .map_err(|error| error.to_string())?;
    print!("{}", incidents_table(&incidents));
    Ok(())
}

/// Prints one incident whole: its trace, the code sent, every attempt with its edits, outcome,
/// reason and checks, and its change request. `fingerprint` may be a prefix that names one.
pub fn print_incident(data_dir: &Path, fingerprint: &str) -> Result<(), String> {
    let incidents = open_store(data_dir)?
        .list()
        .map_err(|error| error.to_string())?;
    let matching: Vec<&Incident> = incidents
        .iter()
        .filter(|incident| incident.fingerprint.starts_with(fingerprint))
        .collect();
    match matching.as_slice() {
        [incident] => {
            print!("{}", incident_detail(incident));
            Ok(())
        }
        [] => Err(format!(
            "no incident's fingerprint starts with {fingerprint}"
        )),
        _ => Err(format!(
            "{} incidents' fingerprints start with {fingerprint}: give more of it",
            matching.len()
        )),
    }
}

/// One incident as `tailfix incidents show` prints it.
pub fn incident_detail(incident: &Incident) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", incident.title);
    let field = |out: &mut String, name: &str, value: &str| {
        let _ = writeln!(out, "{name:<15} {value}");
    };
    field(&mut out, "fingerprint", &incident.fingerprint);
    field(&mut out, "state", incident.state.as_str());
    field(&mut out, "count", &incident.count.to_string());
    let nodes: Vec<&str> = incident.nodes.iter().map(String::as_str).collect();
    field(&mut out, "nodes", &nodes.join(", "));
    field(&mut out, "first seen", &incident.first_seen.to_rfc3339());
    field(&mut out, "last seen", &incident.last_seen.to_rfc3339());
    if let Some(exception) = &incident.exception {
        field(&mut out, "exception", exception);
    }
    if let Some(frame) = &incident.top_frame {
        field(&mut out, "top frame", frame);
    }
    if let Some(reason) = &incident.reason {
        field(&mut out, "reason", &one_line(reason, 200));
    }
    if let Some(cr) = &incident.change_request {
        field(
            &mut out,
            "change request",
            &format!("{} ({})", cr.url, cr.id),
        );
    }
    if let Some(trace) = incident.sample.get("error_trace").and_then(|t| t.as_str()) {
        let _ = writeln!(out, "\ntrace:\n{trace}");
    }
    if let Some(last) = incident.history.last() {
        let _ = writeln!(out, "\ncode sent:");
        for range in &last.context {
            let note = range
                .note
                .as_deref()
                .map(|note| format!("  ({note})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}:{}-{}{note}",
                range.path, range.start_line, range.end_line
            );
        }
    }
    for (index, attempt) in incident.history.iter().enumerate() {
        let _ = writeln!(
            out,
            "\nattempt {} (request {} of its analysis, {}): {}",
            index + 1,
            attempt.request,
            attempt.at,
            attempt.outcome
        );
        if let Some(reason) = &attempt.reason {
            let _ = writeln!(out, "  reason: {}", one_line(reason, 300));
        }
        if let Some(summary) = &attempt.summary {
            let _ = writeln!(out, "  summary: {}", one_line(summary, 300));
        }
        for edit in &attempt.edits {
            let _ = writeln!(out, "  edit {}:", edit.path);
            for line in edit.old.lines() {
                let _ = writeln!(out, "    - {line}");
            }
            for line in edit.new.lines() {
                let _ = writeln!(out, "    + {line}");
            }
        }
        if let Some(verification) = &attempt.verification {
            for step in &verification.steps {
                let status = serde_json::to_value(&step.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let reason = step
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  check {} [{}] {status}{reason} ({:.1} s)",
                    step.name,
                    step.command,
                    step.duration_ms as f64 / 1000.0
                );
            }
            if let Some(failed) = verification.failure()
                && !failed.output_tail.trim().is_empty()
            {
                let _ = writeln!(out, "  output of {}:", failed.name);
                for line in failed.output_tail.lines() {
                    let _ = writeln!(out, "    | {line}");
                }
            }
        }
    }
    out
}

/// `GET /health` of an agent at `address` (for container health checks, without curl).
pub fn health(address: &str) -> Result<(), String> {
    let mut stream = std::net::TcpStream::connect(address)
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status = response.split_whitespace().nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        Err(format!("/health answered {status}"))
    }
}
