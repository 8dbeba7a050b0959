//! What a change request says (DESIGN §6.8): its branch, title, commit message and body. The
//! body holds the summary, the root cause, the occurrences and nodes, a redacted sample trace,
//! the diff, and the marker `<!-- tailfix:fingerprint=… -->` by which an existing proposal for
//! the same bug is found again, so there are never two.

use std::fmt::Write;

use similar::TextDiff;

use super::incident::Incident;
use super::verify::{Status, Verification};
use super::{Operation, Solution};

/// Label put on pull and merge requests.
pub const LABEL: &str = "tailfix";

/// `tailfix/<first 12 hex digits of the fingerprint>`.
pub fn branch_name(fingerprint: &str) -> String {
    format!("tailfix/{}", &fingerprint[..fingerprint.len().min(12)])
}

/// The hidden marker that identifies the bug a proposal is for.
pub fn marker(fingerprint: &str) -> String {
    format!("<!-- tailfix:fingerprint={fingerprint} -->")
}

pub fn title(incident: &Incident) -> String {
    let title: String = incident.title.chars().take(90).collect();
    format!("tailfix: fix {title}")
}

/// The commit message: the title, then the summary and root cause.
pub fn commit_message(incident: &Incident, solution: &Solution) -> String {
    format!(
        "{}\n\n{}\n\nFingerprint: {}\nProposed by tailfix; review before merging.\n",
        title(incident),
        solution.description,
        incident.fingerprint
    )
}

/// A unified diff of every change, against the original contents.
pub fn diff(solution: &Solution, original: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    for change in &solution.changes {
        let before = match change.operation {
            Operation::Create => String::new(),
            Operation::Update => original(&change.path).unwrap_or_default(),
        };
        let old_name = match change.operation {
            Operation::Create => "/dev/null".to_string(),
            Operation::Update => format!("a/{}", change.path),
        };
        let diff = TextDiff::from_lines(&before, &change.content);
        let _ = write!(
            out,
            "{}",
            diff.unified_diff()
                .context_radius(3)
                .header(&old_name, &format!("b/{}", change.path))
        );
    }
    out
}

/// The Markdown body of a pull or merge request (or of the local proposal file).
pub fn body(incident: &Incident, solution: &Solution, redacted_trace: &str, diff: &str) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "## Summary\n\n{}\n", solution.description);
    let _ = writeln!(body, "## Incident\n");
    let _ = writeln!(body, "- **Error:** {}", incident.title);
    if let Some(exception) = &incident.exception {
        let _ = writeln!(body, "- **Exception:** `{exception}`");
    }
    if let Some(top_frame) = &incident.top_frame {
        let _ = writeln!(body, "- **Top frame:** `{top_frame}`");
    }
    let _ = writeln!(
        body,
        "- **Occurrences:** {} between {} and {}",
        incident.count,
        incident.first_seen.to_rfc3339(),
        incident.last_seen.to_rfc3339()
    );
    let nodes: Vec<&str> = incident.nodes.iter().map(String::as_str).collect();
    let _ = writeln!(body, "- **Nodes:** {} ({})", nodes.len(), nodes.join(", "));
    let _ = writeln!(body, "- **Model confidence:** {:.2}", solution.confidence);
    let _ = writeln!(body, "- **Fingerprint:** `{}`\n", incident.fingerprint);
    let _ = writeln!(
        body,
        "## Sample trace (redacted)\n\n```\n{}\n```\n",
        redacted_trace.replace("```", "``\u{200b}`")
    );
    let _ = writeln!(
        body,
        "## Diff\n\n```diff\n{}```\n",
        diff.replace("```", "``\u{200b}`")
    );
    body.push_str(&verification_section(solution));
    let _ = writeln!(
        body,
        "This change was proposed by tailfix from production logs. It was checked against the \
         repository (every edit anchored on text found exactly once, paths and size within limits) \
         and run as the Verification section says: review it before merging.\n"
    );
    body.push_str(&marker(&incident.fingerprint));
    body.push('\n');
    body
}

/// `## Verification`: each step the fix went through, its command, how it ended and how long it
/// took; a fix proposed although a step failed says so first.
pub fn verification_section(solution: &Solution) -> String {
    let mut text = String::from("## Verification\n\n");
    let verification: Verification = solution
        .metadata
        .get("verification")
        .and_then(|value| serde_json::from_value(value.clone()).ok())
        .unwrap_or_default();
    match solution
        .metadata
        .get("verified")
        .and_then(serde_json::Value::as_bool)
    {
        Some(true) => {}
        Some(false) => {
            text.push_str("**Unverified:** a check failed (`verify.propose_unverified` is on).\n\n")
        }
        None => {
            text.push_str("**Not verified:** this change was not run.\n\n");
            return text;
        }
    }
    if verification.steps.is_empty() {
        text.push_str("Nothing was run: no check applies to this change.\n\n");
        return text;
    }
    text.push_str("| Step | Command | Result | Duration |\n| --- | --- | --- | --- |\n");
    let cell = |value: &str| value.replace('|', "\\|").replace('\n', " ");
    for step in &verification.steps {
        let result = match (&step.status, &step.reason) {
            (Status::Passed, _) => "passed".to_string(),
            (Status::Failed, Some(reason)) => format!("failed: {reason}"),
            (Status::Failed, None) => "failed".to_string(),
            (Status::Skipped, Some(reason)) => format!("skipped: {reason}"),
            (Status::Skipped, None) => "skipped".to_string(),
        };
        let command = if step.command.is_empty() {
            String::new()
        } else {
            format!("`{}`", cell(&step.command))
        };
        let _ = writeln!(
            text,
            "| {} | {command} | {} | {:.1} s |",
            cell(&step.name),
            cell(&result),
            step.duration_ms as f64 / 1000.0
        );
    }
    if let Some(failed) = verification.failure() {
        let _ = writeln!(
            text,
            "\nOutput of `{}` (end, redacted):\n\n```\n{}\n```",
            cell(&failed.name),
            failed.output_tail.replace("```", "``\u{200b}`")
        );
    }
    text.push('\n');
    text
}

/// The fingerprint a body's marker names, if any.
pub fn fingerprint_in(body: &str) -> Option<&str> {
    let start = body.find("<!-- tailfix:fingerprint=")? + "<!-- tailfix:fingerprint=".len();
    let end = start + body[start..].find(" -->")?;
    Some(&body[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::Change;

    #[test]
    fn branch_marker_and_diff() {
        let fingerprint = "0123456789abcdef0123456789abcdef";
        assert_eq!(branch_name(fingerprint), "tailfix/0123456789ab");
        let body = format!("text\n{}\n", marker(fingerprint));
        assert_eq!(fingerprint_in(&body), Some(fingerprint));
        let solution = Solution {
            id: "s".to_string(),
            description: "guard".to_string(),
            changes: vec![Change {
                path: "shop/cart.py".to_string(),
                operation: Operation::Update,
                content: "def f(a, b):\n    return a / b if b else 0\n".to_string(),
                line_start: 2,
                line_end: 2,
                metadata: Default::default(),
            }],
            confidence: 0.9,
            metadata: Default::default(),
        };
        let diff = diff(&solution, &|_| {
            Some("def f(a, b):\n    return a / b\n".to_string())
        });
        assert!(
            diff.contains("--- a/shop/cart.py\n+++ b/shop/cart.py\n"),
            "{diff}"
        );
        assert!(
            diff.contains("-    return a / b\n+    return a / b if b else 0\n"),
            "{diff}"
        );
    }
}
