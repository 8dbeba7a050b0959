//! The seed's `RemoteRepositoryService`: the one way a validated solution becomes a change
//! request, whatever the host. It builds the request (title, body with the marker, commit
//! message, diff), checks the changes again against the guard's path rules (a second line of
//! defence after validation), refuses hosted providers without a token, and records
//! `change_requests_total{provider,status}`. The clients below it never merge, never push to
//! the base branch and never force-push.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::RepositoryClient;
use crate::metrics::MetricsCollector;
use crate::remediation::engine::Proposer;
use crate::remediation::incident::{ChangeRequestRef, Incident};
use crate::remediation::validate::Validator;
use crate::remediation::{ChangeRequest, Solution, proposal};

pub struct RemoteRepositoryService {
    client: Arc<dyn RepositoryClient>,
    validator: Arc<Validator>,
    metrics: MetricsCollector,
    /// Hosted providers act only with a token.
    has_token: bool,
}

impl RemoteRepositoryService {
    pub fn new(
        client: Arc<dyn RepositoryClient>,
        validator: impl Into<Arc<Validator>>,
        metrics: MetricsCollector,
        has_token: bool,
    ) -> Self {
        RemoteRepositoryService {
            client,
            validator: validator.into(),
            metrics,
            has_token,
        }
    }

    fn count(&self, status: &str) {
        self.metrics
            .remediation()
            .change_requests
            .with_label_values(&[self.client.provider(), status])
            .inc();
    }

    async fn create(
        &self,
        incident: &Incident,
        solution: &Solution,
        redacted_trace: &str,
    ) -> Result<ChangeRequestRef, String> {
        let provider = self.client.provider();
        if provider != "local" && !self.has_token {
            self.count("refused");
            return Err(format!(
                "no token for the {provider} repository: refusing to propose"
            ));
        }
        for change in &solution.changes {
            if let Err(reason) = self.validator.check_change_path(&change.path) {
                self.count("refused");
                return Err(reason);
            }
        }
        let mut originals = HashMap::new();
        for change in &solution.changes {
            let content = self
                .client
                .get_file(&change.path)
                .await
                .map_err(|error| error.to_string())?;
            originals.insert(change.path.clone(), content);
        }
        let diff = proposal::diff(solution, &|path| originals.get(path).cloned().flatten());
        let mut metadata = serde_json::Map::new();
        metadata.insert(
            "fingerprint".to_string(),
            incident.fingerprint.clone().into(),
        );
        metadata.insert(
            "commit_message".to_string(),
            proposal::commit_message(incident, solution).into(),
        );
        metadata.insert(
            "branch".to_string(),
            proposal::branch_name(&incident.fingerprint).into(),
        );
        let request = ChangeRequest {
            id: solution.id.clone(),
            title: proposal::title(incident),
            description: proposal::body(incident, solution, redacted_trace, &diff),
            changes: solution.changes.clone(),
            metadata,
        };
        match self.client.create_change_request(&request).await {
            Ok(reference) => {
                self.count("success");
                Ok(reference)
            }
            Err(error) => {
                self.count("failure");
                Err(error.to_string())
            }
        }
    }
}

impl Proposer for RemoteRepositoryService {
    fn propose<'a>(
        &'a self,
        incident: &'a Incident,
        solution: &'a Solution,
        redacted_trace: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<ChangeRequestRef, String>> + Send + 'a>> {
        Box::pin(self.create(incident, solution, redacted_trace))
    }
}
