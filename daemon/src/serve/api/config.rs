//! `/apps/{app}/config-vars` and `/apps/{app}/buildpack-installations`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiResult, Caller, JsonBody, find_app, reply};
use crate::serve::ServerState;

pub async fn get(State(state): State<Arc<ServerState>>, Path(app): Path<String>) -> ApiResult {
    let app = find_app(&state, &app).await?;
    reply(StatusCode::OK, json!(state.db.config_vars(app.id).await?))
}

pub async fn patch(
    State(state): State<Arc<ServerState>>,
    Caller(user): Caller,
    Path(app): Path<String>,
    JsonBody(body): JsonBody<BTreeMap<String, Option<serde_json::Value>>>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    let mut patch = BTreeMap::new();
    for (key, value) in body {
        let valid = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(ApiError::invalid(format!(
                "Invalid config var name {key:?}: names match ^\\w+$."
            )));
        }
        let value = match value {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(other @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                Some(other.to_string())
            }
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "Config var {key} must be a string or null."
                )));
            }
        };
        patch.insert(key, value);
    }
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

#[derive(Deserialize)]
pub struct Update {
    buildpack: String,
}

#[derive(Deserialize)]
pub struct SetInstallations {
    updates: Vec<Update>,
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
