//! The HTTP API on `[api].address` (DESIGN §5): `GET /health`, `GET /metrics`, and under
//! `/api/v1` the incidents. When `[api].token` is set, every `/api/v1` request needs
//! `Authorization: Bearer <token>` (reads too: incidents hold traces); `/health` and
//! `/metrics` stay open.

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::health::Health;
use crate::metrics::MetricsCollector;
use crate::remediation::incident::IncidentStore;
use crate::state::StateStore;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub metrics: MetricsCollector,
    pub health: Health,
    pub state: StateStore,
    pub token: Secret,
}

pub fn router(state: ApiState) -> Router {
    let v1 = Router::new()
        .route("/incidents", get(list_incidents))
        .route("/incidents/{fingerprint}", get(get_incident))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .nest("/api/v1", v1)
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
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
    let body = json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "components": state.health.snapshot(),
    });
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
        Ok(Some(incident)) => axum::Json(incident.to_api_json()).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such incident"})),
        )
            .into_response(),
        Err(error) => internal_error(error),
    }
}
