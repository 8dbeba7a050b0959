//! Command-line views of the agent's state (`tailfix incidents`).

use std::fmt::Write;
use std::path::Path;

use crate::remediation::incident::{Incident, IncidentStore};
use crate::state::{DATABASE_FILE, StateStore};

/// The incidents as a table, most recently seen first.
pub fn incidents_table(incidents: &[Incident]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12}  {:<9}  {:>8}  {:>5}  {:<24}  {:<40}  CHANGE REQUEST",
        "FINGERPRINT", "STATE", "COUNT", "NODES", "LAST SEEN", "TITLE"
    );
    for incident in incidents {
        let title: String = incident.title.chars().take(40).collect();
        let change_request = incident
            .change_request
            .as_ref()
            .map(|cr| cr.url.clone())
            .or_else(|| {
                incident
                    .reason
                    .clone()
                    .map(|reason| format!("({})", reason.chars().take(60).collect::<String>()))
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<12}  {:<9}  {:>8}  {:>5}  {:<24}  {:<40}  {}",
            &incident.fingerprint[..incident.fingerprint.len().min(12)],
            incident.state.as_str(),
            incident.count,
            incident.nodes.len(),
            incident.last_seen.to_rfc3339(),
            title,
            change_request
        );
    }
    out
}

/// Prints the incidents of the state store under `data_dir`.
pub fn print_incidents(data_dir: &Path) -> Result<(), String> {
    if !data_dir.join(DATABASE_FILE).exists() {
        return Err(format!(
            "no state store in {} (has the agent run?)",
            data_dir.display()
        ));
    }
    let store = StateStore::open(data_dir).map_err(|error| error.to_string())?;
    let incidents = IncidentStore::new(store)
        .list()
        .map_err(|error| error.to_string())?;
    print!("{}", incidents_table(&incidents));
    Ok(())
}
