//! The HTTP API on `[api].address` (DESIGN §5): `GET /health`, `GET /metrics`, and under
//! `/api/v1` the incidents. When `[api].token` is set, every `/api/v1` request needs
//! `Authorization: Bearer <token>` (reads too: incidents hold traces); `/health` and
//! `/metrics` stay open. `POST /api/v1/reload` reloads the config; it needs a token to be
//! set (an open loopback API does not reload on anyone's say).

use std::io::Read;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::HeaderMap;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::ingest::{IngestError, IngestHub, entry_from_json};
use crate::metrics::MetricsCollector;
use crate::nodes::{NodeError, NodeManager, Registration};
use crate::remediation::incident::IncidentStore;
use crate::settings::Secret;
use crate::state::StateStore;
use crate::topology::Changes;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub metrics: MetricsCollector,
    pub health: Health,
    pub state: StateStore,
    pub token: Secret,
    /// `/api/v1` is closed: the API is reachable from other machines and has no token.
    pub v1_closed: bool,
    pub ingest: IngestHub,
    pub nodes: NodeManager,
    /// Largest accepted body, compressed and decompressed alike.
    pub max_body_bytes: usize,
    /// Where `POST /api/v1/reload` asks the agent to reload (`None`: not offered).
    pub reload: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
}

/// A reload asked for over the API, and where its outcome goes.
pub struct ReloadRequest {
    pub reply: tokio::sync::oneshot::Sender<ReloadOutcome>,
}

/// How a reload went.
#[derive(Debug, Clone)]
pub enum ReloadOutcome {
    Applied {
        changes: Changes,
        /// The files the new config is made of (what `--watch-config` watches next).
        files: Vec<std::path::PathBuf>,
    },
    /// The new config is invalid: the messages `tailfix validate` prints. Nothing changed.
    Rejected { errors: Vec<String> },
}

pub fn router(state: ApiState) -> Router {
    let v1 = Router::new()
        .route("/incidents", get(list_incidents))
        .route("/incidents/{fingerprint}", get(get_incident))
        .route("/events", post(ingest_events))
        .route("/nodes", get(list_nodes))
        .route("/nodes/register", post(register_node))
        .route("/nodes/{id}/heartbeat", post(heartbeat))
        .route("/reload", post(reload))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .nest("/api/v1", v1)
        .with_state(state)
}

/// A client that has not sent a whole request head within this is disconnected: a
/// connection trickling a header a byte at a time must not hold a descriptor for ever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP connections served at once; beyond, new clients wait in the listen backlog. Below the
/// descriptors the agent has, so `/health` keeps answering when a source is flooded.
const MAX_CONNECTIONS: usize = 1024;

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets the requests in
/// flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: ApiTls,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and similar: back off instead of spinning.
                    tracing::warn!(%error, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        let acceptor = tls
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        connections.spawn(async move {
            let _slot = slot;
            match acceptor {
                None => serve_connection(stream, service, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, service, shutdown).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "API: TLS handshake refused");
                        }
                        Err(_) => tracing::debug!("API: TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// The API's TLS acceptor (`[api].tls`), replaced in place when a reload re-reads the
/// certificates; `None`: plain HTTP.
pub type ApiTls = std::sync::Arc<std::sync::RwLock<Option<tokio_rustls::TlsAcceptor>>>;

/// Serves HTTP/1.1 on one connection until it closes or `shutdown` asks it to finish.
async fn serve_connection<S>(
    stream: S,
    service: hyper_util::service::TowerToHyperService<Router>,
    shutdown: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Equal-time comparison, so the token cannot be guessed byte by byte from response times.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if state.v1_closed {
        return error(
            StatusCode::FORBIDDEN,
            "/api/v1 is closed on a non-loopback address without [api].token",
        );
    }
    if let Some(expected) = state.token.expose() {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(given.as_bytes(), expected.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(json!({"error": "missing or wrong bearer token"})),
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn health(State(state): State<ApiState>) -> Response {
    let healthy = state.health.is_healthy();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "components": state.health.snapshot(),
    });
    // The pipeline still runs on its old config after a failed reload: healthy, but it says so.
    if let Some(reload) = state.health.reload() {
        body["last_reload"] = json!(reload);
    }
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

fn internal_error(error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "API request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({"error": error.to_string()})),
    )
        .into_response()
}

async fn list_incidents(State(state): State<ApiState>) -> Response {
    match IncidentStore::new(state.state).list() {
        Ok(incidents) => {
            let body: Vec<serde_json::Value> = incidents
                .iter()
                .map(|incident| incident.to_api_json())
                .collect();
            axum::Json(body).into_response()
        }
        Err(error) => internal_error(error),
    }
}

async fn get_incident(State(state): State<ApiState>, Path(fingerprint): Path<String>) -> Response {
    match IncidentStore::new(state.state).get(&fingerprint) {
        Ok(Some(incident)) => axum::Json(incident.to_detail_json()).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such incident"})),
        )
            .into_response(),
        Err(error) => internal_error(error),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// The body, gunzipped when sent with `Content-Encoding: gzip`, within `limit` bytes.
fn decoded_body(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<Vec<u8>, (StatusCode, String)> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(body.to_vec());
    }
    let mut decoded = Vec::new();
    let mut reader = flate2::read::GzDecoder::new(&body[..]).take(limit as u64 + 1);
    reader
        .read_to_end(&mut decoded)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad gzip body: {e}")))?;
    if decoded.len() > limit {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("decompressed body over {limit} bytes"),
        ));
    }
    Ok(decoded)
}

/// Malformed lines listed in a 400 answer, at most; `rejected_total` counts them all.
const MAX_REPORTED_REJECTIONS: usize = 20;

/// `POST /api/v1/events`: NDJSON entries from an agent. 200 once every sink has them; 400 lists
/// the malformed lines (the good ones were accepted, so an agent does not retry a 400); 503 when
/// the node's buffer is full or no `aggregator` source runs (retry later).
async fn ingest_events(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match decoded_body(&headers, body, state.max_body_bytes.saturating_mul(8)) {
        Ok(body) => body,
        Err((status, message)) => return error(status, message),
    };
    let source: std::sync::Arc<str> = std::sync::Arc::from("aggregator");
    let mut entries = Vec::new();
    let mut rejected = Vec::new();
    let mut rejected_total = 0usize;
    for (index, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match entry_from_json(line, &source) {
            Ok(entry) => entries.push(entry),
            Err(reason) => {
                rejected_total += 1;
                // A body of a million bad one-byte lines must not become a million answers.
                if rejected.len() < MAX_REPORTED_REJECTIONS {
                    rejected.push(json!({"line": index + 1, "error": reason}));
                }
            }
        }
    }
    let accepted = entries.len();
    let mut nodes: Vec<String> = entries
        .iter()
        .map(|entry| entry.node_id.to_string())
        .collect();
    nodes.sort();
    nodes.dedup();
    if accepted > 0 {
        match state.ingest.submit(entries, Duration::from_secs(30)).await {
            Ok(()) => {}
            Err(IngestError::NoSource) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no aggregator source is running",
                );
            }
            Err(IngestError::Busy(node)) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "1")],
                    axum::Json(json!({"error": format!("buffer full for node `{node}`")})),
                )
                    .into_response();
            }
            Err(IngestError::Timeout) => {
                return error(StatusCode::SERVICE_UNAVAILABLE, "not delivered in time");
            }
            Err(IngestError::Failed) => {
                return error(StatusCode::SERVICE_UNAVAILABLE, "a sink failed to deliver");
            }
        }
        for node in &nodes {
            state.nodes.seen(node);
        }
    }
    if rejected.is_empty() {
        axum::Json(json!({"accepted": accepted})).into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "accepted": accepted,
                "rejected": rejected,
                "rejected_total": rejected_total,
            })),
        )
            .into_response()
    }
}

fn node_error(failure: NodeError) -> Response {
    match failure {
        NodeError::Invalid(invalid) => error(StatusCode::BAD_REQUEST, invalid.to_string()),
        NodeError::Unknown(id) => error(
            StatusCode::NOT_FOUND,
            format!("unknown node `{id}`: register first"),
        ),
        NodeError::Full(_) => error(StatusCode::SERVICE_UNAVAILABLE, failure.to_string()),
        NodeError::State(state) => internal_error(state),
    }
}

/// How long a reload over the API may take before the caller is told to look at `/health`.
const RELOAD_WAIT: Duration = Duration::from_secs(120);

async fn reload(State(state): State<ApiState>) -> Response {
    if state.token.expose().is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "reloading over the API needs [api].token; send SIGHUP or use --watch-config instead",
        );
    }
    let Some(requests) = &state.reload else {
        return error(
            StatusCode::NOT_FOUND,
            "this agent does not reload over the API",
        );
    };
    let (reply, outcome) = tokio::sync::oneshot::channel();
    if requests.send(ReloadRequest { reply }).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping");
    }
    match tokio::time::timeout(RELOAD_WAIT, outcome).await {
        Ok(Ok(ReloadOutcome::Applied { changes, .. })) => {
            let mut body = json!(changes);
            body["status"] = json!("applied");
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Ok(Ok(ReloadOutcome::Rejected { errors })) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({ "status": "rejected", "errors": errors })),
        )
            .into_response(),
        Ok(Err(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping"),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "the reload is still under way; /health says how it ends",
        ),
    }
}

async fn list_nodes(State(state): State<ApiState>) -> Response {
    match state.nodes.list() {
        Ok(nodes) => axum::Json(nodes).into_response(),
        Err(failure) => node_error(failure),
    }
}

async fn register_node(State(state): State<ApiState>, body: Bytes) -> Response {
    let registration: Registration = match serde_json::from_slice(&body) {
        Ok(registration) => registration,
        Err(parse) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid registration: {parse}"),
            );
        }
    };
    match state.nodes.register(&registration) {
        Ok(node) => axum::Json(node).into_response(),
        Err(failure) => node_error(failure),
    }
}

async fn heartbeat(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.nodes.heartbeat(&id) {
        Ok(node) => axum::Json(node).into_response(),
        Err(failure) => node_error(failure),
    }
}
