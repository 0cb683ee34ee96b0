//! `/apps/{app}/config-vars` and `/apps/{app}/buildpack-installations`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;

use super::{ApiError, ApiResult, Caller, JsonBody, find_app, reply};
use crate::serve::ServerState;
use crate::serve::bodies::{ConfigPatch, SetInstallations, config_patch};

pub async fn get(State(state): State<Arc<ServerState>>, Path(app): Path<String>) -> ApiResult {
    let app = find_app(&state, &app).await?;
    reply(StatusCode::OK, json!(state.db.config_vars(app.id).await?))
}

pub async fn patch(
    State(state): State<Arc<ServerState>>,
    Caller(user): Caller,
    Path(app): Path<String>,
    JsonBody(body): JsonBody<ConfigPatch>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    let patch = config_patch(body).map_err(ApiError::invalid)?;
    reply(
        StatusCode::OK,
        json!(state.db.patch_config_vars(app.id, patch, user.id).await?),
    )
}

pub async fn of_release(
    State(state): State<Arc<ServerState>>,
    Path((app, key)): Path<(String, String)>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    let release = state
        .db
        .release(app.id, key)
        .await?
        .ok_or_else(|| ApiError::not_found("release"))?;
    reply(StatusCode::OK, json!(release.config))
}

fn installation_list(list: &[String]) -> serde_json::Value {
    list.iter()
        .enumerate()
        .map(|(i, bp)| json!({ "ordinal": i + 1, "buildpack": { "url": bp, "name": bp } }))
        .collect()
}

pub async fn installations(
    State(state): State<Arc<ServerState>>,
    Path(app): Path<String>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    reply(
        StatusCode::OK,
        installation_list(&state.db.installations(app.id).await?),
    )
}

pub async fn set_installations(
    State(state): State<Arc<ServerState>>,
    Path(app): Path<String>,
    JsonBody(body): JsonBody<SetInstallations>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    let mut list = Vec::new();
    for update in body.updates {
        if state.buildpack(&update.buildpack).is_none() {
            return Err(ApiError::invalid(format!(
                "Unknown buildpack {:?}.",
                update.buildpack
            )));
        }
        list.push(update.buildpack);
    }
    reply(
        StatusCode::OK,
        installation_list(&state.db.set_installations(app.id, list).await?),
    )
}
