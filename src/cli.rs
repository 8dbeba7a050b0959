//! Command-line views of the agent's state (`tailfix incidents`).

use std::fmt::Write;
use std::io::{Read, Write as _};
use std::path::Path;
use std::time::Duration;

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
