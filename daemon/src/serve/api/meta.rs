//! `/healthz`, `/metrics`, `/schema`, `/account`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::{ApiError, ApiResult, Caller, reply};
use crate::serve::ServerState;

/// Healthy when the database answers: a load balancer in front of several nodes then stops
/// sending requests to one that lost it (builds need it for everything).
pub async fn healthz(State(state): State<Arc<ServerState>>) -> ApiResult {
    match state.db.ping().await {
        Ok(()) => reply(StatusCode::OK, json!({ "status": "ok" })),
        Err(err) => {
            tracing::warn!("health check: {err:#}");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The database is not answering.",
            ))
        }
    }
}

pub async fn metrics(State(state): State<Arc<ServerState>>) -> ApiResult {
    let counts = state.db.build_counts().await?;
    let depth = state.db.queue_depth().await?;
    let text = state.metrics.render(&counts, depth, state.queue.running());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

pub async fn schema() -> ApiResult {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema.json")).map_err(anyhow::Error::from)?;
    reply(StatusCode::OK, schema)
}

pub async fn account(Caller(user): Caller) -> ApiResult {
    reply(
        StatusCode::OK,
        json!({
            "id": user.id,
            "email": user.email,
            "allow_tracking": false,
            "beta": false,
            "created_at": "1980-01-01T00:00:01Z",
            "updated_at": "1980-01-01T00:00:01Z",
            "last_login": null,
            "name": null,
            "sms_number": null,
            "suspended_at": null,
            "delinquent_at": null,
            "two_factor_authentication": false,
            "verified": true,
            "default_organization": null,
            "default_team": null,
            "identity_provider": null,
            "federated": false,
        }),
    )
}
