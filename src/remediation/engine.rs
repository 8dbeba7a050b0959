//! The remediation engine the `remediate` sink drives: it counts occurrences per fingerprint,
//! decides when to act (DESIGN §6.3), and runs each analysis (context → redaction → model →
//! validation → proposal) as a task of its own, at most `max_concurrent` at a time.
//!
//! Counting is in memory and written to the incident store once a second in one transaction:
//! an error storm of a million entries is a million map updates, not a million SQLite writes.
//! Decisions and their outcomes are written at once, so a restart neither repeats an analysis
//! nor loses one that was under way (an `analysing` incident found at start resumes; the model
//! cache answers it without a new request).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::mpsc;

use super::context::{self, ContextBudget, PathMap};
use super::incident::{
    Attempt, ChangeRequestRef, ContextRange, Incident, IncidentState, IncidentStore, MAX_HISTORY,
};
use super::model::service::ModelService;
use super::model::{ModelError, ModelRequest, ToolTurn};
use super::prompt;
use super::redact::Redactor;
use super::report;
use super::repository::RepositoryClient;
use super::tools;
use super::validate::{FileSource, Validator};
use super::verify::{self, Checkout, Verification};
use super::{ProposedFix, Solution};
use crate::event::{Frame, LogEntry, StackTrace, Value, encode_json};
use crate::fingerprint::Fingerprinter;
use crate::fingerprint::template::MinerConfig;
use crate::metrics::MetricsCollector;
use crate::time::Timestamp;

/// Start times of model requests, kept for an hour.
#[derive(Debug, Clone, Default)]
pub struct RequestLog(Arc<std::sync::Mutex<VecDeque<Instant>>>);

impl RequestLog {
    fn recent(&self, now: Instant) -> usize {
        let mut log = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        log.retain(|at| now.duration_since(*at) < Duration::from_secs(3600));
        log.len()
    }

    fn record(&self, now: Instant) {
        let mut log = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        log.push_back(now);
    }

    /// Records a request if fewer than `limit` were made in the last hour.
    fn take(&self, now: Instant, limit: u32) -> bool {
        let taken = self.recent(now) < limit as usize;
        if taken {
            self.record(now);
        }
        taken
    }
}

/// How a fix is checked before it is proposed (`[sinks.X.verify]`).
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub plan: verify::Plan,
    /// Requests after the first, each with the reason the last answer failed.
    pub repair_rounds: u32,
    /// Propose a fix whose verification failed, labelled unverified.
    pub propose_unverified: bool,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            plan: verify::Plan {
                syntax_check: true,
                ..verify::Plan::default()
            },
            repair_rounds: 2,
            propose_unverified: false,
        }
    }
}

/// The tools a model may call before it answers (`[sinks.X.context]`): opt-in.
#[derive(Debug, Clone)]
pub struct ToolSettings {
    pub enabled: bool,
    /// Rounds of tool calls before the model must answer.
    pub max_tool_rounds: u32,
    /// Bytes of tool results per analysis.
    pub max_tool_bytes: usize,
}

impl Default for ToolSettings {
    fn default() -> Self {
        ToolSettings {
            enabled: false,
            max_tool_rounds: 5,
            max_tool_bytes: 64 * 1024,
        }
    }
}

/// When and how much to act.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Occurrences of one fingerprint within `window` before acting.
    pub min_occurrences: u64,
    pub window: Duration,
    /// Never act twice on one fingerprint within this.
    pub cooldown: Duration,
    pub max_concurrent: usize,
    /// Model requests started per hour, at most.
    pub max_requests_per_hour: u32,
    pub path_map: PathMap,
    /// Repository path prefix of the code (a monorepo's subfolder).
    pub base_path: String,
    pub budget: ContextBudget,
    /// Attempts of a failing incident before it stays failed.
    pub max_attempts: u32,
    /// First wait before a failed incident is tried again (doubling each time).
    pub retry_failed_after: Duration,
    pub data_dir: PathBuf,
    pub verify: VerifySettings,
    pub tools: ToolSettings,
}

/// Proposes a validated solution (a branch, a pull or merge request).
pub trait Proposer: Send + Sync {
    fn propose<'a>(
        &'a self,
        incident: &'a Incident,
        solution: &'a Solution,
        redacted_trace: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<ChangeRequestRef, String>> + Send + 'a>,
    >;
}

/// What the engine needs to analyse; `model` is `None` in report-only mode.
pub struct Services {
    pub model: Option<ModelService>,
    pub repository: Option<Arc<dyn RepositoryClient>>,
    pub proposer: Option<Arc<dyn Proposer>>,
    /// Shared with the proposer, which checks paths with the same guard.
    pub validator: Arc<Validator>,
    pub redactor: Redactor,
    pub metrics: MetricsCollector,
}

/// How an analysis ended.
#[derive(Debug)]
enum Outcome {
    Reported(PathBuf),
    /// No code of the repository matched the trace's frames: nothing to ask a model about.
    Unmatched(PathBuf),
    Proposed(Solution, ChangeRequestRef),
    /// Validated, nowhere to propose it.
    Solved(Solution),
    Rejected {
        reason: String,
        fix: Option<ProposedFix>,
    },
    Failed(String),
}

struct Live {
    incident: Incident,
    window_start: Timestamp,
    window_count: u64,
    dirty: bool,
}

pub struct Remediator {
    config: EngineConfig,
    store: IncidentStore,
    services: Arc<Services>,
    live: HashMap<String, Live>,
    in_flight: usize,
    /// Start times of model requests in the last hour (the budget), shared with the analyses
    /// (each repair round is a request of its own).
    requests: RequestLog,
    outcomes: mpsc::UnboundedReceiver<(String, Outcome, Vec<Attempt>)>,
    outcome_sender: mpsc::UnboundedSender<(String, Outcome, Vec<Attempt>)>,
    fingerprinter: Fingerprinter,
    tasks: tokio::task::JoinSet<()>,
}

impl Remediator {
    /// Loads the incidents and resumes those an earlier run left `analysing`.
    pub fn new(
        config: EngineConfig,
        store: IncidentStore,
        services: Services,
    ) -> Result<Self, String> {
        let incidents = store.list().map_err(|error| error.to_string())?;
        let (outcome_sender, outcomes) = mpsc::unbounded_channel();
        let mut remediator = Remediator {
            config,
            store,
            services: Arc::new(services),
            live: HashMap::new(),
            in_flight: 0,
            requests: RequestLog::default(),
            outcomes,
            outcome_sender,
            fingerprinter: Fingerprinter::new(
                crate::fingerprint::DEFAULT_FRAMES,
                MinerConfig::default(),
            ),
            tasks: tokio::task::JoinSet::new(),
        };
        let mut interrupted = Vec::new();
        for incident in incidents {
            if incident.state == IncidentState::Analysing {
                interrupted.push(incident.fingerprint.clone());
            }
            remediator.live.insert(
                incident.fingerprint.clone(),
                Live {
                    window_start: incident.last_seen,
                    window_count: 0,
                    dirty: false,
                    incident,
                },
            );
        }
        for fingerprint in interrupted {
            tracing::info!(%fingerprint, "resuming an analysis interrupted by a restart");
            remediator.start(&fingerprint);
        }
        remediator.update_gauges();
        Ok(remediator)
    }

    /// Counts one entry and acts if its incident is due.
    pub fn observe(&mut self, entry: &LogEntry) {
        let fingerprint = match entry
            .metadata
            .get("fingerprint")
            .and_then(Value::as_str_lossy)
        {
            Some(fingerprint) => fingerprint.into_owned(),
            None => self.fingerprinter.fingerprint(entry).hex,
        };
        let timestamp = entry.timestamp;
        let window = self.config.window.as_nanos() as i64;
        let live = match self.live.get_mut(&fingerprint) {
            Some(live) => live,
            None => {
                let incident = new_incident(&fingerprint, entry, &mut self.fingerprinter);
                self.live.insert(
                    fingerprint.clone(),
                    Live {
                        window_start: timestamp,
                        window_count: 0,
                        dirty: true,
                        incident,
                    },
                );
                self.live.get_mut(&fingerprint).expect("just inserted")
            }
        };
        let incident = &mut live.incident;
        incident.count += 1;
        incident.last_seen = incident.last_seen.max(timestamp);
        incident.first_seen = incident.first_seen.min(timestamp);
        if !incident.nodes.contains(&*entry.node_id) {
            incident.nodes.insert(entry.node_id.to_string());
        }
        if timestamp.0 - live.window_start.0 > window {
            live.window_start = timestamp;
            live.window_count = 0;
        }
        live.window_count += 1;
        live.dirty = true;
        if self.is_due(&fingerprint, Instant::now()) {
            self.start(&fingerprint);
        }
    }

    fn is_due(&self, fingerprint: &str, now: Instant) -> bool {
        let Some(live) = self.live.get(fingerprint) else {
            return false;
        };
        let incident = &live.incident;
        let state_allows = match incident.state {
            IncidentState::Open => incident
                .last_action_at
                .is_none_or(|at| elapsed_since(at) >= self.config.cooldown),
            IncidentState::Failed => {
                incident.attempts < self.config.max_attempts
                    && incident
                        .next_attempt_at
                        .is_none_or(|at| at <= Timestamp::now())
            }
            IncidentState::Analysing | IncidentState::Proposed | IncidentState::Rejected => false,
        };
        state_allows
            && live.window_count >= self.config.min_occurrences
            && self.in_flight < self.config.max_concurrent.max(1)
            && self.within_budget(now)
    }

    fn within_budget(&self, now: Instant) -> bool {
        self.services.model.is_none()
            || self.requests.recent(now) < self.config.max_requests_per_hour as usize
    }

    /// Marks the incident `analysing` (written at once) and starts its analysis.
    fn start(&mut self, fingerprint: &str) {
        let Some(live) = self.live.get_mut(fingerprint) else {
            return;
        };
        live.incident.state = IncidentState::Analysing;
        live.incident.attempts += 1;
        live.incident.last_action_at = Some(Timestamp::now());
        live.dirty = false;
        if let Err(error) = self.store.save(&[&live.incident]) {
            tracing::warn!(%error, "cannot write the incident");
        }
        if self.services.model.is_some() {
            self.requests.record(Instant::now());
        }
        self.in_flight += 1;
        let incident = live.incident.clone();
        let services = self.services.clone();
        let config = self.config.clone();
        let sender = self.outcome_sender.clone();
        let requests = self.requests.clone();
        self.tasks.spawn(async move {
            let fingerprint = incident.fingerprint.clone();
            let mut history = Vec::new();
            let outcome = analyse(&config, &services, &incident, &requests, &mut history).await;
            let _ = sender.send((fingerprint, outcome, history));
        });
        self.update_gauges();
    }

    /// Writes what changed, applies finished analyses, starts incidents that became due.
    pub fn tick(&mut self) {
        while let Ok((fingerprint, outcome, history)) = self.outcomes.try_recv() {
            self.apply(&fingerprint, outcome, history);
        }
        let now = Instant::now();
        let waiting: Vec<String> = self
            .live
            .iter()
            .filter(|(_, live)| {
                matches!(
                    live.incident.state,
                    IncidentState::Open | IncidentState::Failed
                )
            })
            .map(|(fingerprint, _)| fingerprint.clone())
            .collect();
        for fingerprint in waiting {
            if self.is_due(&fingerprint, now) {
                self.start(&fingerprint);
            }
        }
        let dirty: Vec<&Incident> = self
            .live
            .values()
            .filter(|live| live.dirty)
            .map(|live| &live.incident)
            .collect();
        // A report-only incident's report shows its counts as they are now.
        for incident in &dirty {
            let reported = incident
                .reason
                .as_deref()
                .is_some_and(|reason| reason.starts_with("report-only"));
            if reported && let Err(error) = report::refresh_counts(&self.config.data_dir, incident)
            {
                tracing::warn!(%error, "cannot update the incident's report");
            }
        }
        if !dirty.is_empty() {
            match self.store.save(&dirty) {
                Ok(()) => self.live.values_mut().for_each(|live| live.dirty = false),
                Err(error) => tracing::warn!(%error, "cannot write incidents"),
            }
        }
        self.update_gauges();
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Waits up to `timeout` for analyses under way, then writes everything.
    pub async fn shutdown(mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.in_flight > 0 {
            match tokio::time::timeout_at(deadline, self.outcomes.recv()).await {
                Ok(Some((fingerprint, outcome, history))) => {
                    self.apply(&fingerprint, outcome, history)
                }
                _ => break,
            }
        }
        self.tick();
        self.tasks.abort_all();
    }

    fn apply(&mut self, fingerprint: &str, outcome: Outcome, history: Vec<Attempt>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(live) = self.live.get_mut(fingerprint) else {
            return;
        };
        let incident = &mut live.incident;
        incident.history.extend(history);
        let excess = incident.history.len().saturating_sub(MAX_HISTORY);
        incident.history.drain(..excess);
        match outcome {
            Outcome::Reported(path) => {
                incident.state = IncidentState::Open;
                incident.reason = Some(format!(
                    "report-only (no model configured): {}",
                    path.display()
                ));
            }
            Outcome::Unmatched(path) => {
                incident.state = IncidentState::Open;
                incident.reason = Some(format!(
                    "report-only (no code of the repository matched the trace's frames): {}",
                    path.display()
                ));
            }
            Outcome::Proposed(solution, change_request) => {
                incident.state = IncidentState::Proposed;
                incident.solution = serde_json::to_value(&solution).ok();
                incident.change_request = Some(change_request);
                incident.reason = None;
            }
            Outcome::Solved(solution) => {
                incident.state = IncidentState::Proposed;
                incident.solution = serde_json::to_value(&solution).ok();
                incident.reason = Some("validated; no repository to propose it to".to_string());
            }
            Outcome::Rejected { reason, fix } => {
                incident.state = IncidentState::Rejected;
                incident.solution = fix.and_then(|fix| serde_json::to_value(fix).ok());
                incident.reason = Some(reason);
            }
            Outcome::Failed(reason) => {
                incident.state = IncidentState::Failed;
                let doubling = 2u32.saturating_pow(incident.attempts.saturating_sub(1).min(10));
                let wait = self.config.retry_failed_after.saturating_mul(doubling);
                incident.next_attempt_at = Some(Timestamp::now().saturating_add(wait));
                incident.reason = Some(reason);
            }
        }
        tracing::info!(
            fingerprint,
            state = incident.state.as_str(),
            reason = incident.reason.as_deref().unwrap_or(""),
            "incident analysed"
        );
        if let Err(error) = self.store.save(&[incident]) {
            tracing::warn!(%error, "cannot write the incident");
        }
        live.dirty = false;
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let gauges = &self.services.metrics.remediation().incidents;
        for state in IncidentState::ALL {
            let count = self
                .live
                .values()
                .filter(|live| live.incident.state == state)
                .count();
            gauges
                .with_label_values(&[state.as_str()])
                .set(count as i64);
        }
    }
}

fn elapsed_since(at: Timestamp) -> Duration {
    Duration::from_nanos(Timestamp::now().0.saturating_sub(at.0).max(0) as u64)
}

/// A new incident from its first entry.
fn new_incident(
    fingerprint: &str,
    entry: &LogEntry,
    fingerprinter: &mut Fingerprinter,
) -> Incident {
    let text = |key: &str| {
        entry
            .metadata
            .get(key)
            .and_then(Value::as_str_lossy)
            .map(|t| t.into_owned())
    };
    let title = text("template").unwrap_or_else(|| fingerprinter.fingerprint(entry).template);
    let trace = entry.stack_trace();
    let top_frame = trace.as_deref().and_then(|trace| {
        context::frames_to_read(trace)
            .first()
            .copied()
            .map(describe)
    });
    let mut sample = Vec::new();
    encode_json(entry, &mut sample);
    Incident {
        fingerprint: fingerprint.to_string(),
        title,
        state: IncidentState::Open,
        count: 0,
        first_seen: entry.timestamp,
        last_seen: entry.timestamp,
        nodes: Default::default(),
        exception: trace.as_ref().and_then(|trace| trace.exception.clone()),
        top_frame,
        sample: serde_json::from_slice(&sample).unwrap_or(serde_json::Value::Null),
        solution: None,
        reason: None,
        change_request: None,
        attempts: 0,
        last_action_at: None,
        next_attempt_at: None,
        history: Vec::new(),
    }
}

/// The trace of a sample entry (its `error_trace`, else its message).
fn sample_trace(sample: &serde_json::Value) -> String {
    sample["error_trace"]
        .as_str()
        .or_else(|| sample["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A frame as an incident shows it: `function (file:line)`.
fn describe(frame: &Frame) -> String {
    let file = frame.file.as_deref().unwrap_or_default();
    let location = match frame.line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_string(),
    };
    match &frame.function {
        Some(function) => format!("{function} ({location})"),
        None => location,
    }
}

/// Files an answer's edits touch, read before validation (validation itself is synchronous).
struct Prefetched(HashMap<String, Option<String>>);

impl FileSource for Prefetched {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("{path} was not read from the repository"))
    }
}

async fn analyse(
    config: &EngineConfig,
    services: &Services,
    incident: &Incident,
    requests: &RequestLog,
    history: &mut Vec<Attempt>,
) -> Outcome {
    let trace = sample_trace(&incident.sample);
    // The sample is the entry's JSON line: its metadata holds the trace's keys.
    let stack_trace = StackTrace::deserialize(&incident.sample["metadata"]).ok();
    let frames = stack_trace
        .as_ref()
        .map(context::frames_to_read)
        .unwrap_or_default();
    let snippets = match &services.repository {
        Some(repository) => {
            match context::gather(
                &frames,
                repository.as_ref(),
                &services.validator,
                &config.path_map,
                &config.base_path,
                config.budget,
            )
            .await
            {
                Ok(snippets) => snippets,
                Err(error) => return Outcome::Failed(format!("reading the repository: {error}")),
            }
        }
        None => Vec::new(),
    };
    let redact = |text: &str| services.redactor.redact(text).text;
    // Source code leaves the machine too (in the prompt, in reports): redacted like log text.
    let snippets: Vec<context::Snippet> = snippets
        .into_iter()
        .map(|mut snippet| {
            snippet.text = redact(&snippet.text);
            snippet
        })
        .collect();
    let request = prompt::build(incident, &trace, &snippets, &redact);
    let redacted_trace = redact(&trace);
    // A model asked without the failing code guesses; a fix it invents would be proposed on
    // nothing it was shown.
    let unmatched = services.model.is_some() && snippets.is_empty();
    let model = match &services.model {
        Some(model) if !unmatched => model,
        _ => {
            return match report::write_report(
                &config.data_dir,
                incident,
                &redacted_trace,
                &snippets,
                &request,
            ) {
                Ok(path) if unmatched => Outcome::Unmatched(path),
                Ok(path) => Outcome::Reported(path),
                Err(error) => Outcome::Failed(format!("writing the report: {error}")),
            };
        }
    };
    let context: Vec<ContextRange> = snippets
        .iter()
        .map(|snippet| ContextRange {
            path: snippet.path.clone(),
            start_line: snippet.start_line,
            end_line: snippet.end_line,
            note: snippet.note.clone(),
        })
        .collect();
    let mut record = |round: u32,
                      outcome: &str,
                      reason: Option<&str>,
                      fix: Option<&ProposedFix>,
                      verification: Option<&Verification>| {
        history.push(Attempt {
            at: Timestamp::now().to_rfc3339(),
            request: round + 1,
            outcome: outcome.to_string(),
            reason: reason.map(str::to_string),
            summary: fix.map(|fix| redact(&fix.summary)),
            edits: fix.map(|fix| fix.edits.clone()).unwrap_or_default(),
            verification: verification.cloned(),
            context: context.clone(),
        });
    };
    let mut request = request;
    let mut checkout: Option<Checkout> = None;
    let rounds = 1 + config.verify.repair_rounds;
    let mut last_failure = String::new();
    for round in 0..rounds {
        if round > 0 && !requests.take(Instant::now(), config.max_requests_per_hour) {
            return Outcome::Rejected {
                reason: format!(
                    "{last_failure} (no model budget left this hour for a repair round)"
                ),
                fix: None,
            };
        }
        let response = match ask(config, services, model, &request, requests, &redact).await {
            Ok(response) => response,
            Err(error)
                if !error.is_retryable()
                    && matches!(error, super::model::ModelError::Malformed(_)) =>
            {
                let reason = format!("the model's answer was rejected: {error}");
                record(round, "malformed", Some(&reason), None, None);
                if round + 1 < rounds {
                    request = prompt::repair(&request, None, &reason, None, &redact);
                    last_failure = reason;
                    continue;
                }
                return Outcome::Rejected { reason, fix: None };
            }
            Err(error) => return Outcome::Failed(format!("model request failed: {error}")),
        };
        let fix = response.fix;
        let solution = match checked(services, &fix).await {
            Checked::Valid(solution) => solution,
            Checked::Invalid(reason) => {
                record(round, "invalid", Some(&reason), Some(&fix), None);
                if round + 1 < rounds {
                    request = prompt::repair(&request, Some(&fix), &reason, None, &redact);
                    last_failure = reason;
                    continue;
                }
                return Outcome::Rejected {
                    reason,
                    fix: Some(fix),
                };
            }
            Checked::Failed(reason) => return Outcome::Failed(reason),
        };
        let verification = match run_verification(config, services, &mut checkout, &solution).await
        {
            Ok(verification) => verification,
            Err(error) => return Outcome::Failed(format!("verifying the fix: {error}")),
        };
        let redacted_verification = redact_verification(verification, &redact);
        if let Some(step) = redacted_verification.failure().cloned() {
            let reason = format!(
                "verification failed: {} ({}): {}",
                step.name,
                step.command,
                step.reason.as_deref().unwrap_or("failed")
            );
            if config.verify.propose_unverified {
                record(
                    round,
                    "unverified",
                    Some(&reason),
                    Some(&fix),
                    Some(&redacted_verification),
                );
                return propose(
                    services,
                    incident,
                    with_verification(solution, &redacted_verification, false),
                    &redacted_trace,
                )
                .await;
            }
            record(
                round,
                "verification_failed",
                Some(&reason),
                Some(&fix),
                Some(&redacted_verification),
            );
            if round + 1 < rounds {
                request = prompt::repair(
                    &request,
                    Some(&fix),
                    &reason,
                    Some(&step.output_tail),
                    &redact,
                );
                last_failure = reason;
                continue;
            }
            return Outcome::Rejected {
                reason: format!("{reason}\n{}", step.output_tail),
                fix: Some(fix),
            };
        }
        record(
            round,
            "verified",
            None,
            Some(&fix),
            Some(&redacted_verification),
        );
        return propose(
            services,
            incident,
            with_verification(solution, &redacted_verification, true),
            &redacted_trace,
        )
        .await;
    }
    Outcome::Rejected {
        reason: last_failure,
        fix: None,
    }
}

/// The model's answer to `request`; with tools on, after the rounds of tool calls it makes
/// first (each a request of its own, within the hourly budget), their results sent back.
async fn ask(
    config: &EngineConfig,
    services: &Services,
    model: &ModelService,
    request: &ModelRequest,
    requests: &RequestLog,
    redact: &(dyn Fn(&str) -> String + Send + Sync),
) -> Result<super::model::ModelResponse, ModelError> {
    let repository = match &services.repository {
        Some(repository) if config.tools.enabled => repository,
        _ => return model.solve(request).await.map(|(response, _)| response),
    };
    let mut conversation = request.clone();
    conversation.tools = tools::specs();
    let mut runner = tools::ToolRunner::new(
        repository.as_ref(),
        &services.validator,
        redact,
        config.tools.max_tool_bytes,
    );
    let rounds = config.tools.max_tool_rounds;
    for round in 0..=rounds {
        if round > 0 && !requests.take(Instant::now(), config.max_requests_per_hour) {
            return Err(ModelError::Budget(config.max_requests_per_hour));
        }
        conversation.final_round = round == rounds;
        let (response, _cached) = model.solve(&conversation).await?;
        if response.tool_calls.is_empty() {
            return Ok(response);
        }
        if conversation.final_round {
            return Err(ModelError::Malformed(
                "the model called tools when it had to answer".to_string(),
            ));
        }
        let mut results = Vec::new();
        for call in &response.tool_calls {
            results.push(runner.run(call).await);
        }
        conversation.turns.push(ToolTurn {
            calls: response.tool_calls,
            results,
        });
    }
    Err(ModelError::Malformed(
        "no answer after the tool rounds".to_string(),
    ))
}

/// What checking a model's answer against the repository found.
enum Checked {
    Valid(Solution),
    /// The answer is wrong (a path it may not touch, text not found): the model may try again.
    Invalid(String),
    /// The repository could not be read: the incident is tried again later.
    Failed(String),
}

/// Checks a model's answer: its paths before any request (`../../user`, a `#` or `?` in it,
/// `.github/workflows/ci.yml` are never fetched with the token), symbolic links, then the edits
/// against the files they touch.
async fn checked(services: &Services, fix: &ProposedFix) -> Checked {
    let Some(model) = &services.model else {
        return Checked::Failed("no model".to_string());
    };
    for edit in &fix.edits {
        if let Err(reason) = services.validator.check_change_path(&edit.path) {
            return Checked::Invalid(format!("the model's answer was rejected: {reason}"));
        }
    }
    if let Some(repository) = &services.repository {
        let links = match repository.symlinks().await {
            Ok(links) => links,
            Err(error) => return Checked::Failed(format!("listing the repository: {error}")),
        };
        let through = |path: &str| {
            links.iter().find(|link| {
                path == link.as_str()
                    || path
                        .strip_prefix(link.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        };
        if let Some((edit, link)) = fix
            .edits
            .iter()
            .find_map(|edit| through(&edit.path).map(|link| (edit, link)))
        {
            return Checked::Invalid(format!(
                "the model's answer was rejected: {} is or goes through the symbolic link {link}",
                edit.path
            ));
        }
    }
    let mut files = HashMap::new();
    for edit in &fix.edits {
        if files.contains_key(&edit.path) {
            continue;
        }
        let content = match &services.repository {
            Some(repository) => match repository.get_file(&edit.path).await {
                Ok(content) => content,
                Err(error) => return Checked::Failed(format!("reading {}: {error}", edit.path)),
            },
            None => None,
        };
        files.insert(edit.path.clone(), content);
    }
    match model
        .provider()
        .validate_solution(fix, &services.validator, &Prefetched(files))
    {
        Ok(solution) => Checked::Valid(solution),
        Err(rejection) => Checked::Invalid(rejection.to_string()),
    }
}

/// Verifies `solution` in a worktree of the repository (made once per analysis, reused by its
/// repair rounds); without a repository, nothing can be run.
async fn run_verification(
    config: &EngineConfig,
    services: &Services,
    checkout: &mut Option<Checkout>,
    solution: &Solution,
) -> Result<Verification, verify::VerifyError> {
    let Some(repository) = &services.repository else {
        return Ok(Verification::default());
    };
    if checkout.is_none() {
        let made = match repository.checkout().await {
            Ok(Some((repo, commit))) => Checkout::existing(repo, commit),
            Ok(None) => Checkout::copy_of(repository.as_ref()).await?,
            Err(error) => return Err(verify::VerifyError::Copy(error.to_string())),
        };
        *checkout = Some(made);
    }
    let Some(checkout) = checkout.as_ref() else {
        return Ok(Verification::default());
    };
    verify::verify(
        &checkout.repo,
        &checkout.commit,
        &solution.changes,
        &config.verify.plan,
    )
    .await
}

/// Output tails leave the machine (in the prompt of a repair round, in the change request):
/// redacted like log text.
fn redact_verification(
    mut verification: Verification,
    redact: &dyn Fn(&str) -> String,
) -> Verification {
    for step in &mut verification.steps {
        step.output_tail = redact(&step.output_tail);
    }
    verification
}

/// The solution with its verification in its metadata (`verification`, `verified`), where the
/// change request's description finds it.
fn with_verification(
    mut solution: Solution,
    verification: &Verification,
    verified: bool,
) -> Solution {
    if let Ok(steps) = serde_json::to_value(verification) {
        solution.metadata.insert("verification".to_string(), steps);
    }
    solution
        .metadata
        .insert("verified".to_string(), serde_json::Value::Bool(verified));
    solution
}

async fn propose(
    services: &Services,
    incident: &Incident,
    solution: Solution,
    redacted_trace: &str,
) -> Outcome {
    match &services.proposer {
        Some(proposer) => match proposer.propose(incident, &solution, redacted_trace).await {
            Ok(change_request) => Outcome::Proposed(solution, change_request),
            Err(error) => Outcome::Failed(format!("proposing the change: {error}")),
        },
        None => Outcome::Solved(solution),
    }
}
